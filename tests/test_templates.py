"""Chat templates: the model's own or a fallback, the prompt/reply split, and the template saved with the tokenizer."""

import pytest

from hive import templates
from hive.config import load_config
from hive.errors import ConfigError, HiveError

CONVERSATION = [
    {"role": "user", "content": "are we still on for dinner?"},
    {"role": "assistant", "content": "yes!! 7pm"},
    {"role": "user", "content": "great, where?"},
    {"role": "assistant", "content": "luigi's 🍝"},
]


def fresh_tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def test_unknown_template_is_a_config_error():
    with pytest.raises(ConfigError, match="model.chat_template"):
        load_config(None, {"model.chat_template": "mistral"})


def test_apply_refuses_an_unknown_name():
    class Tok:
        chat_template = None

    with pytest.raises(HiveError, match="chatml or llama3"):
        templates.apply(Tok(), "mistral")


@pytest.mark.slow
def test_auto_keeps_the_models_own_template(smollm2_dir):
    tok = fresh_tokenizer(smollm2_dir)
    own = tok.chat_template
    assert templates.apply(tok, "auto") == "own"
    assert tok.chat_template == own
    assert templates.end_of_turn(tok) == "<|im_end|>"


@pytest.mark.slow
def test_chatml_when_the_model_has_none(smollm2_dir):
    tok = fresh_tokenizer(smollm2_dir)
    tok.chat_template = None
    assert templates.apply(tok, "auto") == "chatml"
    assert templates.render(tok, CONVERSATION[:1], add_generation_prompt=True) == (
        "<|im_start|>user\nare we still on for dinner?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_llama3_template_and_its_end_of_turn(smollm2_dir):
    tok = fresh_tokenizer(smollm2_dir)
    assert templates.apply(tok, "llama3") == "llama3"
    text = templates.render(tok, CONVERSATION[:2])
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\nyes!! 7pm<|eot_id|>")
    assert templates.end_of_turn(tok) == "<|eot_id|>"


@pytest.mark.slow
def test_split_gives_the_last_reply_and_its_end_of_turn(smollm2_dir):
    tok = fresh_tokenizer(smollm2_dir)
    templates.apply(tok, "auto")
    prompt, completion = templates.split(tok, CONVERSATION)
    assert completion == "luigi's 🍝<|im_end|>"
    assert prompt.endswith("<|im_start|>user\ngreat, where?<|im_end|>\n<|im_start|>assistant\n")
    assert "yes!! 7pm<|im_end|>" in prompt  # earlier replies are context
    assert prompt + completion == templates.render(tok, CONVERSATION).rstrip("\n")


@pytest.mark.slow
def test_the_training_template_travels_with_the_saved_tokenizer(smollm2_dir, tmp_path):
    tok = fresh_tokenizer(smollm2_dir)
    templates.apply(tok, "chatml")
    tok.save_pretrained(tmp_path)
    assert fresh_tokenizer(tmp_path).chat_template == templates.CHATML
