"""bench/bench_quality.py is the measurement of clone fidelity that the README quotes, and its full run needs a GPU
that a maintainer may get only rarely: its harness (extract, a held-out split, convert per mode, train with the
shipped defaults, evaluate, the table, the goals, --out) must work before anyone spends GPU time on it."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_bench_quality_with_the_shipped_defaults_runs_end_to_end(tmp_path):
    from hive.synthetic import TINY, build_model_dir

    raw = REPO / "samples"
    chats = [p.read_text(encoding="utf-8") for p in sorted(raw.glob("*.txt"))]
    model = build_model_dir(tmp_path / "tiny", chats, TINY, 8192)
    out = tmp_path / "fidelity.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_quality.py"), str(raw), "--work", str(tmp_path / "work"),
         "--model", str(model), "--defaults", "--heldout", "0.3", "--compare", "modes", "--eval-samples", "6",
         "--style-samples", "4", "--eval-batch", "4", "--curve", "1", "--set", "training.max_steps=2",
         "--set", "model.max_seq_length=128", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failed"] == []
    rows = {row["model"]: row for row in result["rows"]}
    assert list(rows) == ["me (real)", "base", "reply", "sliding"]
    for name in ("base", "reply", "sliding"):
        assert {"nll", "words_per_reply", "multiline_share", "stop_rate", "auc"} <= set(rows[name]), rows[name]
    assert 0 <= rows["reply"]["stop_rate"] <= 1 and rows["reply"]["nll"] > 0
    goals = [goal["goal"] for goal in result["goals"]]
    assert any("below the base" in goal for goal in goals) and any("end by themselves" in goal for goal in goals)
    assert set(result["curves"]) >= {"reply", "sliding"}
    assert "Goals, for the run named reply" in done.stdout
