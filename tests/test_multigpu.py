"""Data-parallel training: the README's `accelerate launch` command, run with two processes on CPU (gloo backend).

    python -m pytest -q tests/test_multigpu.py          # slow: trains the bundled model for 3 steps, ~1 min

Checks the semantics that must not change with the process count: one saved adapter, each loss logged once, the
effective batch reported, and as many optimizer steps as that effective batch implies.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from hive import runs
from tests.conftest import REPO

ACCELERATE_CONFIG = REPO / "configs" / "accelerate_multi_gpu.yaml"
CHATS = [
    ("hey, you coming tonight?", "yeah def, 8ish"), ("did you see the match", "ya crazy ending lol"),
    ("what are you eating", "pizza again haha"), ("call me when free", "ok in 10"),
    ("lol that meme", "i cant 😂"), ("are we still on for sunday", "yes! where"),
    ("happy birthday!!", "thank youuu"), ("u up?", "yep what's up"),
    ("can you send the notes", "sent, check mail"), ("movie tonight?", "which one"),
    ("traffic is bad", "same here ugh"), ("good morning", "morning ☀️"),
]


def write_samples(path, pairs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for user, me in pairs:
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": me}]
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def test_accelerate_config_is_data_parallel():
    import yaml

    config = yaml.safe_load(ACCELERATE_CONFIG.read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["num_machines"] == 1
    # precision is train.py's choice (fp16 on T4, bf16 on Ampere+); the launcher must not force one
    assert config["mixed_precision"] == "no"


@pytest.mark.slow
def test_two_processes_train_like_one(project, smollm2_dir):
    final = project / "dataset" / "final"
    write_samples(final / "personality.jsonl", CHATS)
    write_samples(final / "personality.val.jsonl", CHATS[:2])
    batch, accumulation, processes = 2, 1, 2
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
        "--num_processes", str(processes), str(REPO / "train.py"), "--model", smollm2_dir, "--run", "ddp",
        "--set", "model.max_seq_length=64", "--set", "training.num_train_epochs=1",
        "--set", f"training.per_device_train_batch_size={batch}",
        "--set", f"training.gradient_accumulation_steps={accumulation}",
        "--set", "training.logging_steps=1", "--set", "training.save_steps=2", "--set", "training.eval_steps=2",
    ]
    # one thread per process: two processes share the CI machine's cores
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]

    run_dir = project / "outputs" / "ddp"
    assert sorted(p.name for p in (project / "outputs").iterdir()) == ["ddp"]
    assert (run_dir / "final_model" / "adapter_model.safetensors").is_file()
    effective = batch * accumulation * processes
    assert out.count(f"effective batch up to {effective} samples per optimizer step") == 1
    assert out.count("train: done") == 1

    info = runs.load_run(run_dir, project / "outputs").record
    steps = math.ceil(len(CHATS) / effective)
    assert (info.world_size, info.effective_batch, info.steps) == (processes, effective, steps)
    # every sample's tokens are counted once, gathered from both processes
    assert info.tokens_seen == info.train.tokens
    logged = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if "loss" in e] == list(range(1, steps + 1))
    assert sum("'loss':" in line for line in out.splitlines()) == steps


HANGING_RANK = """
import os, sys, time
sys.path.insert(0, {repo!r})
import train
from hive import cli, trainer

if os.environ["RANK"] == "1":  # this process stops answering after its first step
    real = trainer.HiveTrainer.training_step

    def hang(self, *args, **kwargs):
        if self.state.global_step >= 1:
            time.sleep(600)
        return real(self, *args, **kwargs)

    trainer.HiveTrainer.training_step = hang
sys.exit(cli.run(lambda: train.main(sys.argv[1:])))
"""


@pytest.mark.slow
def test_a_hung_process_stops_the_run_within_the_collective_timeout(project, smollm2_dir, tmp_path):
    """Kaggle quota is not burnt waiting for a process that hangs: training.ddp_timeout_minutes ends the run."""
    write_samples(project / "dataset" / "final" / "personality.jsonl", CHATS)
    script = tmp_path / "hanging_train.py"
    script.write_text(HANGING_RANK.format(repo=str(REPO)))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
        "--num_processes", "2", str(script), "--model", smollm2_dir, "--run", "hang",
        "--set", "model.max_seq_length=64", "--set", "training.per_device_train_batch_size=2",
        "--set", "training.max_steps=4", "--set", "training.save_steps=1", "--set", "training.ddp_timeout_minutes=0.25",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=400)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "another training process stopped answering for 0.25 minutes" in out, out[-3000:]
    assert "checkpoint-1" in [p.name for p in (project / "outputs" / "hang").iterdir()]
