"""demo.py: the sample chats and the demo config are valid, a non-demo folder is never emptied, and (slow) the whole
pipeline runs end to end on the bundled model in --quick mode, as `make demo` runs it with more steps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import demo
from hive import cli
from hive.config import load_config
from tests.conftest import REPO


def test_demo_config_loads_and_uses_the_bundled_model():
    cfg = load_config(demo.CONFIG)
    assert cfg.model.base_model == "smollm2-135m" and cfg.extract.me == ["Me"]
    assert cfg.training.run_name == "demo" and cfg.export.name == "demo"


def test_sample_chats_are_android_exports_with_me():
    chats = sorted((REPO / "samples").glob("*.txt"))
    assert len(chats) >= 5
    lines = [line for chat in chats for line in chat.read_text(encoding="utf-8").splitlines()]
    assert 300 <= len(lines) <= 2000
    assert sum(" - Me: " in line for line in lines) > len(lines) / 4


def test_a_folder_that_is_not_a_demo_workspace_is_never_emptied(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert cli.run(lambda: demo.main(["--workspace", str(tmp_path)])) == 1
    assert "not a demo workspace" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_prepare_copies_the_samples_and_empties_an_old_demo(tmp_path):
    workspace = tmp_path / "ws"
    assert demo.prepare(workspace) == len(list((REPO / "samples").glob("*.txt")))
    (workspace / "outputs").mkdir()
    demo.prepare(workspace)
    assert not (workspace / "outputs").exists() and (workspace / demo.MARKER).exists()


@pytest.mark.slow
def test_quick_demo_runs_every_stage(tmp_path):
    workspace = tmp_path / "ws"
    proc = subprocess.run([sys.executable, str(REPO / "demo.py"), "--quick", "--workspace", str(workspace)],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("extract", "convert", "validate", "train", "evaluate", "export", "chat"):
        assert f"  {stage} " in proc.stdout.split("demo: done")[1]
    result = json.loads((workspace / "outputs" / "demo" / "eval.json").read_text())
    assert {"base_nll", "tuned_nll", "improved"} <= set(result)
    assert list((workspace / "exports" / "demo").glob("*.gguf"))
    reply = proc.stdout.split("  reply")[1].splitlines()[0].strip()
    assert reply and not reply.startswith("clone>")
    command = proc.stdout.split("\nnext: ")[1].splitlines()[0]  # typed as printed, in the shell make demo ran in
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    chat = subprocess.run(["bash", "-c", f"{command} --prompt 'you free tonight?'"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PATH": path})
    assert chat.returncode == 0, chat.stdout[-2000:] + chat.stderr[-2000:]
    assert any(line.startswith("clone> ") for line in chat.stdout.splitlines())
