"""evaluate.py and hive/evaluation.py: inputs and their errors, reply scoring on the right tokens
(batch-invariant; a zero LoRA scores exactly like its base), and the report end to end on the bundled model."""

import json
import shutil

import pytest

from hive import conversations, runs
from hive.evaluation import spread
from tests.conftest import FIXTURES

HELDOUT = FIXTURES / "heldout.jsonl"


def test_spread_picks_evenly_in_order():
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread([1, 2], 5) == [1, 2] and spread([1, 2], None) == [1, 2]


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
    sample = conversations.read(HELDOUT)[1]
    ids, n = encode_sample(tok, sample, 256, eot)
    assert tok.decode(ids[-n:]) == "i know i know\nstarting now<|im_end|>"
    last_pair, _ = encode_sample(tok, sample[2:], 256, eot)
    assert encode_sample(tok, sample, len(last_pair), eot) == (last_pair, n)
    assert encode_sample(tok, sample, n, eot) is None


@pytest.mark.slow
def test_zero_lora_scores_like_the_base_and_batching_changes_nothing(make_run, project):
    from hive.evaluation import encode_sample, load_run_model, reply_nll
    from hive.templates import end_of_turn

    run = runs.load_run(make_run(project / "outputs" / "zero", std=0, max_seq_length=256), project / "outputs")
    model, tok = load_run_model(run)
    encoded = [encode_sample(tok, s, run.record.max_seq_length, end_of_turn(tok)) for s in conversations.read(HELDOUT)]
    one = reply_nll(model, encoded, tok.pad_token_id, batch_size=1, desc="b1")
    three = reply_nll(model, encoded, tok.pad_token_id, batch_size=3, desc="b3")
    with model.disable_adapter():
        base = reply_nll(model, encoded, tok.pad_token_id, batch_size=3, desc="base")
    assert one.tokens == three.tokens == base.tokens
    assert three.nll_sums == pytest.approx(one.nll_sums, rel=1e-4)
    assert base.nll_sums == pytest.approx(three.nll_sums, rel=1e-5)
    assert 0 < base.nll < 10


@pytest.mark.slow
def test_evaluate_script_writes_report_json_and_charts(make_run, project, capsys):
    import evaluate

    run = make_run(project / "outputs" / "random", max_seq_length=256)
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
    assert set(result["stop_rate"]) == set(result["auc"]) == {"base", "tuned"}
    assert result["auc"] == {"base": None, "tuned": None}  # 3 contexts are too few for 5 folds
    for name in ("base", "tuned"):
        assert result["stop_rate"][name] == sum(result["ended"][name]) / 3
    report = (run / "eval_report.md").read_text()
    assert "## Held-out reply likelihood" in report and report.count("### Example") == 2
    assert "| ends by itself (stop rate) | 1.00 |" in report and "told apart from me" in report
    for png in ("eval_nll.png", "eval_style.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "| model | NLL / reply token | perplexity |" in out and "next: python export_model.py" in out


@pytest.mark.slow
def test_a_reply_ends_by_itself_only_before_its_token_budget(make_run, project):
    """With room for one token, a reply has ended exactly when that token was the stop token (nothing left); with
    room for 48, the replies that did not end are the ones that used all 48 tokens."""
    from hive.config import Config
    from hive.evaluation import generate_replies, load_run_model

    run = runs.load_run(make_run(project / "outputs" / "zero", std=0, max_seq_length=256), project / "outputs")
    model, tok = load_run_model(run)
    cfg = Config()
    cfg.generation.temperature, cfg.evaluate.batch_size = 0.0, 5
    contexts = conversations.read(HELDOUT)
    cfg.generation.max_new_tokens = 1
    replies, ended = generate_replies(model, tok, contexts, cfg, 256, "replies")
    assert len(replies) == len(ended) == 5
    assert ended == [r == "" for r in replies]
    cfg.generation.max_new_tokens = 48
    replies, ended = generate_replies(model, tok, contexts, cfg, 256, "replies")
    lengths = [len(tok(r, add_special_tokens=False)["input_ids"]) for r in replies]
    assert all(n < 48 for n, e in zip(lengths, ended) if e)
    assert all(n >= 44 for n, e in zip(lengths, ended) if not e)  # re-tokenizing the text may merge a few tokens
