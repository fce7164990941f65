"""evaluate.py and hive/evaluation.py: style metrics, inputs and their errors, reply scoring on the right tokens
(batch-invariant; a zero LoRA scores exactly like its base), and the report end to end on the bundled model."""

import json
import shutil

import pytest

from hive.errors import HiveError
from hive.evaluation import load_samples, spread, style_metrics, words
from tests.conftest import FIXTURES, make_run

HELDOUT = FIXTURES / "heldout.jsonl"


def test_style_metrics_by_hand():
    replies = ["yeah!! be there at 8 😂", "Sure, which ones?", "i know\nstarting now", "ok"]
    m = style_metrics(replies, vocabulary={"yeah", "be", "there", "ok"})
    assert m["words_per_reply"] == pytest.approx(13 / 4)  # "8" is a word
    assert m["chars_per_reply"] == pytest.approx(sum(map(len, replies)) / 4)
    assert m["lowercase_start"] == pytest.approx(3 / 4)
    assert m["punctuation_per_word"] == pytest.approx(4 / 13)  # ! ! , ?
    assert m["emoji_share"] == pytest.approx(1 / 4)
    assert m["question_share"] == pytest.approx(1 / 4)
    assert m["vocab_overlap"] == pytest.approx(4 / 13)
    assert m["multiline_share"] == pytest.approx(1 / 4)


def test_words_keep_apostrophes_and_skip_emoji_and_punctuation():
    assert words("I'm SO done... 😂 don't-care") == ["i'm", "so", "done", "don't", "care"]


def test_spread_picks_evenly_in_order():
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread([1, 2], 5) == [1, 2] and spread([1, 2], None) == [1, 2]


def test_style_metrics_of_nothing_is_zero_not_a_crash():
    assert set(style_metrics([], set()).values()) == {0.0}


def test_load_samples_limit_and_errors(tmp_path):
    assert len(load_samples(HELDOUT, None)) == 5
    assert [s[-1]["content"] for s in load_samples(HELDOUT, 2)] == ["yeah!! be there at 8 😂", "honestly the tacos are mid but the salsa is amazing"]
    with pytest.raises(HiveError, match="convert.py"):
        load_samples(tmp_path / "none.val.jsonl", None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "hello?"}]}\n')
    with pytest.raises(HiveError, match=r"bad.jsonl:1: .*validate_dataset.py"):
        load_samples(bad, None)


def test_evaluate_without_a_run_names_the_stage_that_makes_one(project, capsys):
    import evaluate
    from hive import cli

    assert cli.run(lambda: evaluate.main([])) == 1
    assert "train.py" in capsys.readouterr().err


# ---------------------------------------------------------------- with the bundled model


@pytest.mark.slow
def test_reply_tokens_are_the_reply_and_old_turns_go_first(smollm2_dir):
    from transformers import AutoTokenizer

    from hive.evaluation import encode_sample
    from hive.templates import end_of_turn

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    eot = end_of_turn(tok)
    sample = load_samples(HELDOUT, None)[1]
    ids, n = encode_sample(tok, sample, 256, eot)
    assert tok.decode(ids[-n:]) == "i know i know\nstarting now<|im_end|>"
    last_pair, _ = encode_sample(tok, sample[2:], 256, eot)
    assert encode_sample(tok, sample, len(last_pair), eot) == (last_pair, n)
    assert encode_sample(tok, sample, n, eot) is None


@pytest.mark.slow
def test_zero_lora_scores_like_the_base_and_batching_changes_nothing(smollm2_dir, project):
    from hive.evaluation import encode_sample, load_run_model, reply_nll
    from hive.templates import end_of_turn

    from hive.chat import load_run

    run = load_run(make_run(project / "outputs" / "zero", smollm2_dir, lora_std=0, max_seq_length=256), project / "outputs")
    model, tok = load_run_model(run)
    encoded = [encode_sample(tok, s, run.max_seq_length, end_of_turn(tok)) for s in load_samples(HELDOUT, None)]
    one = reply_nll(model, encoded, tok.pad_token_id, batch_size=1, desc="b1")
    three = reply_nll(model, encoded, tok.pad_token_id, batch_size=3, desc="b3")
    with model.disable_adapter():
        base = reply_nll(model, encoded, tok.pad_token_id, batch_size=3, desc="base")
    assert one.tokens == three.tokens == base.tokens
    assert three.nll_sums == pytest.approx(one.nll_sums, rel=1e-4)
    assert base.nll_sums == pytest.approx(three.nll_sums, rel=1e-5)
    assert 0 < base.nll < 10


@pytest.mark.slow
def test_evaluate_script_writes_report_json_and_charts(smollm2_dir, project, capsys):
    import evaluate

    run = make_run(project / "outputs" / "random", smollm2_dir, max_seq_length=256)
    (project / "dataset" / "final").mkdir(parents=True)
    shutil.copy(HELDOUT, project / "dataset" / "final" / "personality.val.jsonl")
    code = evaluate.main(["--set", "evaluate.style_samples=3", "--set", "evaluate.examples=2",
                          "--set", "generation.max_new_tokens=8", "--set", "evaluate.batch_size=2"])
    assert code == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["samples"] == 5 and result["style_samples"] == 3
    assert result["improved"] == (result["tuned_nll"] < result["base_nll"])
    assert result["base_nll"] != pytest.approx(result["tuned_nll"])
    assert set(result["style"]) == {"real", "base", "tuned"}
    report = (run / "eval_report.md").read_text()
    assert "## Held-out reply likelihood" in report and report.count("### Example") == 2
    for png in ("eval_nll.png", "eval_style.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "| model | NLL / reply token | perplexity |" in out and "next: python export_model.py" in out
