"""validate_dataset.py, fix_dataset.py and clean_incomplete.py on broken files (tests/fixtures/jsonl): exit codes,
.bak copies, every line accounted for."""

import json
import shutil

import pytest

import clean_incomplete
import fix_dataset
import validate_dataset
from hive.checks import fix_lines, read_lines, validate
from hive.cli import run
from tests.conftest import FIXTURES


@pytest.fixture
def copy(tmp_path):
    def make(name: str):
        target = tmp_path / name
        shutil.copy(FIXTURES / "jsonl" / name, target)
        return target
    return make


def test_validate_exit_codes(copy, tmp_path, capsys):
    assert validate_dataset.main(["--input", str(copy("good.jsonl")), "--tokenizer", "estimate", "--sample", "1"]) == 0
    out = capsys.readouterr().out
    assert "READY, but small: 3 samples" in out and "   system: \"You are Sam.\"" in out
    assert "roles                 system 1, user 4, assistant 4" in out
    assert validate_dataset.main(["--input", str(copy("broken.jsonl")), "--tokenizer", "estimate"]) == 1
    assert "NOT READY" in capsys.readouterr().out
    assert run(lambda: validate_dataset.main(["--input", str(tmp_path / "nope.jsonl"), "--tokenizer", "estimate"])) == 2
    assert "dataset file not found" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert validate_dataset.main(["--input", str(tmp_path / "empty.jsonl"), "--tokenizer", "estimate"]) == 1


def test_validate_finds_every_kind_of_problem(copy):
    report = validate(copy("broken.jsonl"), None, 2048)
    kinds = {(p.line, p.kind) for p in report.problems}
    assert {(1, "invalid JSON"), (3, "role"), (4, "schema"), (7, "invalid JSON"), (9, "no user turn"),
            (10, "invalid JSON"), (12, "invalid JSON"), (13, "no assistant turn"), (14, "invalid UTF-8")} <= kinds
    assert report.blank == 1 and len(report.samples) == 1
    dup = copy("good.jsonl")
    dup.write_text(dup.read_text() + dup.read_text().splitlines()[1] + "\n")
    report = validate(dup, None, 2048)
    assert [str(p) for p in report.warnings] == ["line 4: duplicate: same sample as line 2"] and not report.problems
    assert "1 duplicate(s) skipped" in report.verdict()


def test_fix_repairs_keeps_bak_and_loses_nothing(copy, capsys):
    path = copy("broken.jsonl")
    original = path.read_bytes()
    assert fix_dataset.main(["--input", str(path)]) == 1  # a line was dropped and one stays incomplete
    out = capsys.readouterr().out
    assert "line 12: not JSON: 'this is not json'" in out and "line 11: blank line" in out
    assert (path.parent / "broken.jsonl.bak").read_bytes() == original
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 13 and lines[1] == original.split(b"\n")[1].decode()  # untouched lines stay byte for byte
    samples = [json.loads(line)["messages"] for line in lines]
    assert samples[0] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey 👋"}]
    assert samples[3] == [{"role": "user", "content": "where are you"}, {"role": "assistant", "content": "home"}]
    assert samples[4][1] == {"role": "assistant", "content": "always"}
    assert samples[5] == [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "sup"}]
    assert [s[0]["content"] for s in samples[6:9]] == ["a", "c", "e"]
    assert samples[9] == [{"role": "user", "content": "dinner?"}, {"role": "assistant", "content": "sure"}]
    assert samples[10][1]["content"] == "C:\\Users\\sam\\docs"
    assert samples[12] == [{"role": "user", "content": "caf\ufffd?"}, {"role": "assistant", "content": "yes"}]
    report = validate(path, None, 2048)
    assert [(p.line, p.kind) for p in report.problems] == [(12, "no assistant turn")]  # kept for clean_incomplete
    assert fix_dataset.main(["--input", str(path)]) == 1  # nothing left to repair: the file is not rewritten
    assert "nothing to repair" in capsys.readouterr().out


def test_fix_accounts_for_every_line(copy):
    lines, bad = read_lines(copy("broken.jsonl"))
    report = fix_lines(lines, bad)
    kept = len(lines) - len(report.fixed) - len({p.line for p in report.dropped})
    assert (kept, len(report.fixed), len(report.dropped)) == (2, 10, 2)
    assert len(report.out) == kept + len(report.fixed) + 1  # line 7 held two samples


def test_fix_dry_run_and_clean_file(copy, capsys):
    path = copy("broken.jsonl")
    original = path.read_bytes()
    assert fix_dataset.main(["--input", str(path), "--dry-run"]) == 1
    assert path.read_bytes() == original and not (path.parent / "broken.jsonl.bak").exists()
    good = copy("good.jsonl")
    assert fix_dataset.main(["--input", str(good)]) == 0
    assert "nothing to repair" in capsys.readouterr().out and not (good.parent / "good.jsonl.bak").exists()


def test_fix_duplicated_keys_and_arrays():
    report = fix_lines([
        '{"messages": [{"role": "user", "content": "a", "content": "b"}, {"role": "assistant", "content": "c"}]}',
        '[{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}, '
        '{"messages": [{"role": "user", "content": "z"}, {"role": "assistant", "content": "w"}]}]',
        '[{"from": "human", "value": "q"}, {"from": "bot", "value": "r"}]',
    ])
    rows = [json.loads(line)["messages"] for line in report.out]
    assert rows[0][0] == {"role": "user", "content": "b"}
    assert "duplicated keys: content (kept the last value)" in report.fixed[1]
    assert [r[0]["content"] for r in rows[1:3]] == ["x", "z"]
    assert rows[3] == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]
    assert not report.dropped and not report.remaining


def test_clean_incomplete(copy, capsys):
    path = copy("incomplete.jsonl")
    original = path.read_text()
    assert clean_incomplete.main(["--input", str(path)]) == 0
    out = capsys.readouterr().out
    for row in ("line 2: no assistant turn", "line 3: no user turn", "line 4: empty turn", "line 5: blank line",
                "line 7: no turns"):
        assert row in out
    assert (path.parent / "incomplete.jsonl.bak").read_text() == original
    assert path.read_text().splitlines() == [original.splitlines()[0], original.splitlines()[5]]
    assert clean_incomplete.main(["--input", str(path)]) == 0
    assert "nothing to drop" in capsys.readouterr().out


def test_clean_refuses_lines_that_are_not_json(copy, capsys):
    path = copy("broken.jsonl")
    original = path.read_bytes()
    assert run(lambda: clean_incomplete.main(["--input", str(path)])) == 1
    err = capsys.readouterr().err
    assert "broken.jsonl:1 is not valid JSON" in err and "nothing was changed" in err and "fix_dataset.py" in err
    assert path.read_bytes() == original
    assert run(lambda: clean_incomplete.main(["--input", str(path.parent / "nope.jsonl")])) == 2


@pytest.mark.slow
def test_validate_counts_tokens_with_a_tokenizer(copy, smollm2_dir, capsys):
    path = copy("good.jsonl")
    assert validate_dataset.main(["--input", str(path), "--tokenizer", smollm2_dir]) == 0
    assert "tokens per sample     mean" in capsys.readouterr().out
    argv = ["--input", str(path), "--tokenizer", smollm2_dir, "--set", "model.max_seq_length=30"]
    assert validate_dataset.main(argv) == 1
    assert "too long" in capsys.readouterr().out


def test_fix_then_clean_keeps_every_original(copy, capsys):
    """validate's verdict suggests fix_dataset.py and then clean_incomplete.py: each keeps its own backup."""
    path = copy("broken.jsonl")
    original = path.read_bytes()
    fix_dataset.main(["--input", str(path)])
    fixed = path.read_bytes()
    assert clean_incomplete.main(["--input", str(path)]) == 0
    assert (path.parent / "broken.jsonl.bak").read_bytes() == original
    assert (path.parent / "broken.jsonl.bak2").read_bytes() == fixed
    assert f"(original: {path}.bak2)" in capsys.readouterr().out
