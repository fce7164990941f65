"""convert.py end to end in a temporary project: files, paths, determinism, errors; the bundled tokenizer (slow)."""

import json
import shutil

import pytest

import convert
import validate_dataset
from hive.fileio import read_jsonl
from tests.conftest import FIXTURES


@pytest.fixture
def cleaned(project):
    folder = project / "dataset" / "cleaned"
    shutil.copytree(FIXTURES / "cleaned", folder)
    return folder


def test_writes_training_and_validation_files(project, cleaned, capsys):
    assert convert.main(["--tokenizer", "estimate", "--set", "convert.validation_fraction=0.5"]) == 0
    final = project / "dataset" / "final"
    train, val = list(read_jsonl(final / "personality.jsonl")), list(read_jsonl(final / "personality.val.jsonl"))
    assert train and val and len(train) + len(val) == 7
    out = capsys.readouterr().out
    assert out.startswith("convert: settings\n  convert.mode: 'reply'")
    assert "tokens counted with: estimate" in out and "dropped: duplicate" in out
    assert "next: python validate_dataset.py" in out
    assert validate_dataset.main(["--tokenizer", "estimate", "--input", str(final / "personality.jsonl")]) == 0


def test_same_input_same_bytes(project, cleaned, tmp_path):
    outputs = []
    for name in ("a", "b"):
        target = tmp_path / name / "p.jsonl"
        argv = ["--tokenizer", "estimate", "--output", str(target), "--set", "convert.validation_fraction=0.5"]
        assert convert.main(argv) == 0
        outputs.append((target.read_bytes(), (tmp_path / name / "p.val.jsonl").read_bytes()))
    assert outputs[0] == outputs[1]


def test_input_output_flags_and_sliding(project, tmp_path):
    target = tmp_path / "out" / "s.jsonl"
    args = ["--tokenizer", "estimate", "--input", str(FIXTURES / "cleaned"), "--output", str(target),
            "--mode", "sliding"]
    assert convert.main(args + ["--set", "convert.validation_fraction=0"]) == 0
    first = json.loads(target.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"messages": [{"role": "user", "content": "yeah what's up"},
                                  {"role": "assistant", "content": "tell me"}]}
    assert '"cat fed 🐱"' in target.read_text(encoding="utf-8")  # UTF-8 kept readable, not \u escapes
    assert (tmp_path / "out" / "s.val.jsonl").read_text() == ""


def test_missing_or_empty_input_says_run_extract(project, capsys):
    from hive.cli import run

    assert run(lambda: convert.main([])) == 1
    assert "run that first" in capsys.readouterr().err
    (project / "dataset" / "cleaned").mkdir(parents=True)
    (project / "dataset" / "cleaned" / "notes.txt").write_text("not a chat")
    assert run(lambda: convert.main([])) == 1
    assert "extract.py" in capsys.readouterr().err


@pytest.mark.slow
def test_every_sample_fits_the_real_template(project, cleaned, smollm2_dir, capsys):
    from hive.tokens import load_counter

    limit = 60  # SmolLM2's template adds its 20-token default system prompt to every sample
    assert convert.main(["--tokenizer", smollm2_dir, "--set", f"model.max_seq_length={limit}",
                         "--set", "convert.validation_fraction=0"]) == 0
    samples = [row["messages"] for row in read_jsonl(project / "dataset" / "final" / "personality.jsonl")]
    assert "own chat template" in capsys.readouterr().out
    counter = load_counter(smollm2_dir, "unused")
    counts = counter.count_conversations(samples)
    assert samples and max(counts) <= limit
    assert validate_dataset.main(["--tokenizer", smollm2_dir, "--set", f"model.max_seq_length={max(counts) - 1}"]) == 1


def test_extract_then_convert_then_validate(project, tmp_path):
    """The stage contract: extract.py's cleaned files convert into a valid training file."""
    import extract

    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(FIXTURES / "whatsapp" / "android_en_features.txt", raw)
    assert extract.main(["--input", str(raw), "--me", "Sam"]) == 0
    assert convert.main(["--tokenizer", "estimate", "--set", "convert.validation_fraction=0"]) == 0
    samples = [row["messages"] for row in read_jsonl(project / "dataset" / "final" / "personality.jsonl")]
    assert samples and all(s[-1]["role"] == "assistant" and "<" not in s[-1]["content"] for s in samples)
    assert any(m["content"].startswith("Karan: hi") or "\nKaran: hi" in m["content"] for s in samples for m in s)
    assert validate_dataset.main(["--tokenizer", "estimate"]) == 0


def test_a_run_that_builds_nothing_keeps_the_good_training_file(project, cleaned, capsys):
    from hive.cli import run

    assert convert.main(["--tokenizer", "estimate"]) == 0
    final = project / "dataset" / "final" / "personality.jsonl"
    good = final.read_bytes()
    # every reply is too long for 16 tokens: nothing useful, so the file stays and the exit is non-zero
    assert run(lambda: convert.main(["--tokenizer", "estimate", "--set", "model.max_seq_length=16"])) == 1
    err = capsys.readouterr().err
    assert "no training sample could be built" in err and "was left as it was" in err
    assert final.read_bytes() == good


def test_a_missing_input_is_reported_before_the_tokenizer_loads(project, monkeypatch, capsys):
    from hive import tokens
    from hive.cli import run

    def never(*args, **kwargs):
        raise AssertionError("the tokenizer was loaded before the input was checked")

    monkeypatch.setattr(tokens, "load_counter", never)
    monkeypatch.setattr(convert, "load_counter", never)
    assert run(lambda: convert.main([])) == 1
    assert "extract.py" in capsys.readouterr().err
