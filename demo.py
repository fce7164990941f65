"""The whole pipeline on the bundled sample chats (samples/), on CPU, in a few minutes: extract -> convert -> validate
-> train (bundled SmolLM2-135M) -> evaluate -> export (GGUF) -> one reply from the exported model.

    make demo                                   # creates .venv, installs requirements, runs this
    python demo.py                              # the same, in an existing environment
    python demo.py --quick                      # a few training steps only (what CI runs)

Every stage is the real script, run as you would run it, in its own project root (demo_workspace/, HIVE_HOME) with
samples/demo_config.yaml, so your dataset/, outputs/, exports/ and training_config.yaml are never touched. The
workspace is emptied at the start of each demo.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hive import cli
from hive.errors import HiveError

REPO = Path(__file__).resolve().parent
CONFIG = REPO / "samples" / "demo_config.yaml"
MARKER = ".hive-demo"  # only a folder holding this file (or none at all) is emptied
PROMPT = "hey! how was your weekend?"
# generation.max_new_tokens stays: export_model.py's check wants the reply to end within it
# 8 steps: after 3 or 5 the model can still ramble past max_new_tokens, which export_model.py's check (rightly) refuses
QUICK = ["training.max_steps=8", "evaluate.max_samples=8", "evaluate.style_samples=2", "evaluate.examples=1"]
STAGES = [  # (name, script, arguments); {gguf} is filled in once export_model.py has written it
    ("extract", "extract.py", []),
    ("convert", "convert.py", []),
    ("validate", "validate_dataset.py", []),
    ("train", "train.py", []),
    ("evaluate", "evaluate.py", ["--run", "outputs/demo"]),
    ("export", "export_model.py", ["--input", "outputs/demo"]),
    ("chat", "chat.py", ["{gguf}", "--prompt", PROMPT]),
]


def prepare(workspace: Path) -> int:
    """An empty workspace with the sample chats in dataset/raw; returns how many were copied."""
    if workspace.exists():
        if any(workspace.iterdir()) and not (workspace / MARKER).exists():
            raise HiveError(f"{workspace} is not empty and not a demo workspace; pass --workspace with a new folder")
        shutil.rmtree(workspace)
    raw = workspace / "dataset" / "raw"
    raw.mkdir(parents=True)
    (workspace / MARKER).write_text("made by demo.py; emptied by the next demo\n")
    chats = sorted((REPO / "samples").glob("*.txt"))
    for chat in chats:
        shutil.copy(chat, raw / chat.name)
    return len(chats)


def run_stage(workspace: Path, script: str, args: list[str]) -> tuple[int, list[str]]:
    """Run one stage script in the workspace; its output streams through, and its stdout lines are returned."""
    command = [sys.executable, os.path.relpath(REPO / script, workspace), *args]
    print(f"\n[{workspace.name}]$ HIVE_HOME=. python {' '.join(command[1:])}", flush=True)
    env = {**os.environ, "HIVE_HOME": str(workspace), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    lines = []
    with subprocess.Popen(command, cwd=workspace, env=env, stdout=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    return proc.returncode, lines


def exported_gguf(workspace: Path) -> str:
    ggufs = sorted(p for p in (workspace / "exports" / "demo").glob("*.gguf") if "-lora-" not in p.name)
    if not ggufs:
        raise HiveError(f"export_model.py wrote no .gguf in {workspace / 'exports' / 'demo'}")
    return os.path.relpath(ggufs[0], workspace)


def python_command(workspace: Path) -> str:
    """How to call the Python that runs the demo from the workspace: make demo's .venv is not on the PATH."""
    inside = Path(sys.executable).absolute().is_relative_to(REPO)
    return os.path.relpath(Path(sys.executable).absolute(), workspace) if inside else "python"


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    parser.add_argument("--workspace", type=Path, default=REPO / "demo_workspace", help="project root of the demo")
    parser.add_argument("--quick", action="store_true", help="8 training steps and a tiny evaluation (CI)")
    args, _ = cli.parse(parser, argv)  # also checks the --set overrides before anything runs
    workspace = args.workspace.resolve()
    config = Path(args.config).resolve() if args.config else CONFIG
    started = time.time()
    overrides = [f"--set={s}" for s in [*(QUICK if args.quick else []), *args.set_overrides]]
    print(f"demo: {prepare(workspace)} sample chats -> {workspace / 'dataset' / 'raw'}; config {config}")
    times, lines = {}, []
    for name, script, stage_args in STAGES:
        stage_started = time.time()
        stage_args = [exported_gguf(workspace) if a == "{gguf}" else a for a in stage_args]
        code, lines = run_stage(workspace, script,
                                [*stage_args, "--config", os.path.relpath(config, workspace), *overrides])
        times[name] = f"{time.time() - stage_started:6.1f} s"
        if code != 0:
            print(f"\ndemo: {name} failed (exit {code}); its output is above", file=sys.stderr)
            return code
    reply = " / ".join(line.removeprefix("clone> ") for line in lines if line.startswith("clone> "))
    chat_command = (f"cd {os.path.relpath(workspace)} && HIVE_HOME=. {python_command(workspace)} "
                    f"{os.path.relpath(REPO / 'chat.py', workspace)} {exported_gguf(workspace)} "
                    f"--config {os.path.relpath(config, workspace)}")
    cli.print_summary("demo", {**times, "report": str(workspace / "outputs" / "demo" / "eval_report.md"),
                               "model": str(workspace / exported_gguf(workspace)), "prompt": PROMPT, "reply": reply,
                               "API": f"{chat_command} --serve"},
                      next_command=chat_command, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
