"""The JSON file every benchmark writes with `--out FILE`: the rows of its printed table, plus the command that made
them, the machine and the date. bench/results/<name>.json holds the runs the README quotes, and
bench/readme_figures.py renders the README's figures from those files (make figures).
"""

import collections
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIBRARIES = ("torch", "transformers", "trl", "peft", "unsloth", "bitsandbytes")


def command(argv: list[str] | None) -> str:
    """The command line of this benchmark as someone would type it in the repository root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", str(shown), *map(shlex.quote, map(str, args))])


def machine() -> str:
    """GPUs (nvidia-smi), CPU model and count, the load average, Python and the training libraries installed."""
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):  # no NVIDIA driver: a CPU machine
        names = []
    gpus = collections.Counter(name.strip() for name in names if name.strip())
    parts = [f"{n} x {name}" for name, n in gpus.items()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        cpu = platform.processor()
    parts.append(f"{os.cpu_count()} CPUs{f' ({cpu})' if cpu else ''}, load {os.getloadavg()[0]:.1f}")
    versions = []
    for name in LIBRARIES if gpus else ():
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    parts.append(", ".join([f"Python {platform.python_version()}", *versions]))
    return "; ".join(parts)


def write(path: Path, rows: list[dict], argv: list[str] | None = None, **fields) -> None:
    """`rows` and `fields` as JSON at `path`, with the command, machine and date. Benchmarks call it after every
    row, so a run cut short keeps what it measured."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command(argv), "machine": machine(), "date": datetime.date.today().isoformat(), **fields,
              "rows": rows}
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
