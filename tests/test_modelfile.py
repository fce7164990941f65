"""The Ollama Modelfile: the Go TEMPLATE learnt from a chat template renders exactly what the Jinja template renders,
for ChatML with a default system prompt (SmolLM2), Llama-3 (BOS added by the tokenizer) and Zephyr; stop tokens,
SYSTEM and PARAMETER lines. Tokenizers here are tiny hand-made ones, so no model is loaded.

    python -m pytest -q tests/test_modelfile.py
"""

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive.errors import HiveError
from hive.modelfile import derive_parts, go_template, modelfile_text, render, stop_tokens

# SmolLM2-Instruct's own template: ChatML that inserts a default system prompt.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
ZEPHYR = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
           "</s>", "<|user|>", "<|assistant|>", "<|system|>"]


def tiny_tokenizer(template: str, eos: str, bos: str | None = None, adds_bos: bool = False):
    """A word-level tokenizer with the given chat template; `adds_bos`: it prepends BOS like Llama-3's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{t: i + 1 for i, t in enumerate(SPECIAL)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token=eos, bos_token=bos,
                                   additional_special_tokens=[t for t in SPECIAL if t not in (eos, bos)])
    fast.chat_template = template
    return fast


TOKENIZERS = {
    "smollm2": lambda: tiny_tokenizer(SMOLLM2, "<|im_end|>", "<|im_start|>"),
    "llama3": lambda: tiny_tokenizer(LLAMA3, "<|eot_id|>", "<|begin_of_text|>", adds_bos=True),
    "zephyr": lambda: tiny_tokenizer(ZEPHYR, "</s>"),
}

words = (st.text(st.characters(codec="utf-8", exclude_characters="\r"), min_size=1, max_size=20)
         .map(str.strip).filter(bool))
conversations = st.tuples(
    st.one_of(st.none(), words),
    st.lists(st.tuples(words, words), min_size=0, max_size=3),
    words,
)


def as_messages(system, pairs, last) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    for user, assistant in pairs:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return msgs + [{"role": "user", "content": last}]


def expected(tok, messages) -> str:
    """What the model saw in training, as text llama.cpp tokenizes (it adds BOS itself where the tokenizer does)."""
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text.removeprefix(tok.bos_token) if tok("x")["input_ids"][0] == tok.bos_token_id else text


@pytest.mark.parametrize("name", TOKENIZERS)
@settings(max_examples=40, deadline=None)
@given(conversation=conversations)
def test_go_template_renders_what_the_chat_template_renders(name, conversation):
    tok = TOKENIZERS[name]()
    messages = as_messages(*conversation)
    assert render(go_template(derive_parts(tok)), messages) == expected(tok, messages)


def test_modelfile_system_applies_only_without_a_system_message():
    tok = TOKENIZERS["smollm2"]()
    template = go_template(derive_parts(tok))
    hi = [{"role": "user", "content": "hi"}]
    sam = [{"role": "system", "content": "You are Sam."}, *hi]
    assert render(template, hi, system="You are Sam.") == expected(tok, sam)
    assert "named SmolLM" in render(template, hi)  # the template's default system prompt, as in training
    own = [{"role": "system", "content": "Be brief."}, *hi]
    assert render(template, own, system="You are Sam.") == expected(tok, own)


def test_parts_and_stops_of_known_templates():
    chatml = derive_parts(TOKENIZERS["smollm2"]())
    assert (chatml.user_prefix, chatml.user_suffix, chatml.generation_prompt) == (
        "<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n")
    assert stop_tokens(chatml, TOKENIZERS["smollm2"]()) == ["<|im_end|>", "<|im_start|>"]
    llama = TOKENIZERS["llama3"]()
    parts = derive_parts(llama)
    assert parts.system_prefix == "<|start_header_id|>system<|end_header_id|>\n\n"  # BOS left to llama.cpp
    assert parts.no_system_prefix == ""
    assert stop_tokens(parts, llama) == ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]


def test_template_that_drops_contents_is_refused():
    tok = tiny_tokenizer("{% for m in messages %}{{ m['role'] }}{% endfor %}", "</s>")
    with pytest.raises(HiveError, match="chat template"):
        derive_parts(tok)


def test_modelfile_text_has_template_system_parameters_and_stops():
    gen = SimpleNamespace(temperature=0.7, top_p=0.9, top_k=50, repetition_penalty=1.1, max_new_tokens=128)
    text = modelfile_text(["FROM ./m.gguf"], "T", ["<|im_end|>", "<|im_start|>"], "You are Sam.", gen, 2048)
    assert text.splitlines() == [
        "FROM ./m.gguf", 'TEMPLATE """T"""', 'SYSTEM """You are Sam."""',
        "PARAMETER temperature 0.7", "PARAMETER top_p 0.9", "PARAMETER top_k 50", "PARAMETER repeat_penalty 1.1",
        "PARAMETER num_predict 128", "PARAMETER num_ctx 2048",
        'PARAMETER stop "<|im_end|>"', 'PARAMETER stop "<|im_start|>"',
    ]
    assert "SYSTEM" not in modelfile_text(["FROM ./m.gguf"], "T", [], None, gen, 2048)
    with pytest.raises(HiveError, match='"""'):
        modelfile_text(["FROM ./m.gguf"], "T", [], 'say """hi"""', gen, 2048)


def test_renderer_rejects_what_it_does_not_implement():
    with pytest.raises(ValueError, match="unsupported"):
        render("{{ .Prompt }}", [])
