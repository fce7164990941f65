# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hive on Kaggle: fine-tune a model that texts like you
#
# This notebook runs the whole Hive pipeline on Kaggle's free **GPU T4 x2**: your WhatsApp exports -> training
# samples -> LoRA fine-tune on both GPUs -> evaluation -> a GGUF file and an Ollama Modelfile to download. Hive's
# code travels inside this notebook (the packed cell below the settings): the notebook and your exports are all
# it needs.
#
# **Before you press "Run all"**
# 1. *Settings -> Accelerator*: **GPU T4 x2**. *Settings -> Internet*: **on** (pip installs the training
#    libraries). *Settings -> Persistence*: **Files only**, so that `/kaggle/working` (checkpoints) survives the
#    end of a session.
# 2. Export your chats in WhatsApp (*chat -> More -> Export chat*, "without media"), upload the `.txt`/`.zip`
#    files as a **private** Kaggle dataset (*Add Input -> Upload*) and attach it. The notebook searches
#    `/kaggle/input` for them; or set `EXPORTS` below.
# 3. Set `ME` below to your name as it appears in the exports.
#
# **What stays private.** Your exports, the training samples, the evaluation report and `eval.json` (they quote
# real messages) and the full output of the stages that name your contacts (extract, convert, validate) stay in
# `/tmp/hive`, which Kaggle never saves; those cells show only counts. Only the adapter, its checkpoints and the
# exported model go to `/kaggle/working`, which Kaggle keeps, offers for download and publishes with the notebook
# if you make it public. `SHOW_CHAT_DETAILS = True` below shows the full stage output in the cells and keeps the
# evaluation report in `/kaggle/working`. The model itself can repeat things you wrote: keep the notebook, its
# outputs and the model private.
#
# **Sessions end without warning** (12 hours at most, idle time-outs, the weekly quota). Training saves a
# checkpoint every `training.save_minutes` and every `training.save_steps`; to continue, run all cells again in a
# new session. The training cell resumes from the newest complete checkpoint of run `RUN_NAME` that it finds in
# `/kaggle/working` (Persistence on) or in an attached earlier version's output (*Add Input -> Your Work -> this
# notebook*, which appears under `/kaggle/input/.../outputs/<RUN_NAME>/checkpoint-N`).
#
# Command-line users: this file is plain Python (`python kaggle_training_notebook.py` beside a Hive checkout), and
# `HIVE_DRY_RUN=1 python kaggle_training_notebook.py` runs the same cells on CPU with a tiny bundled model and the
# sample chats (that is how CI tests it).

# %%
# Settings: the only cell you should need to edit.
import os

ME = []              # your name(s) as in the exports, e.g. ["Sam", "Sam K"]; [] = Hive detects it
EXPORTS = None       # a file or folder with your exports; None = search every dataset attached under /kaggle/input
RUN_NAME = "kaggle"  # checkpoints and the adapter go to /kaggle/working/outputs/<RUN_NAME>/; keep it to resume
SETTINGS = []        # extra config overrides for every stage, e.g. ["training.num_train_epochs=1"]
SHOW_CHAT_DETAILS = False  # True: full stage output here, and the evaluation report (real messages) kept
HIVE_REPO = None     # None: the code packed into this notebook (or a Hive folder attached as a dataset);
HIVE_REF = "main"    # or a git URL to clone instead, at this branch or tag
# HIVE_DRY_RUN=1: the same cells on CPU with the bundled smollm2-135m, a few steps, with /kaggle/input,
# /kaggle/working and /tmp simulated under HIVE_DRY_RUN_DIR (default: a new temporary folder).
DRY_RUN = os.environ.get("HIVE_DRY_RUN") == "1"

# %%
# Where everything lives: inputs in /kaggle/input (read-only), results in /kaggle/working (kept between sessions
# with Persistence on), private intermediate data in /tmp/hive (never saved). Every shell step goes through run():
# it shows the command and streams its output here, or, for `private_log`, writes the output to that file and
# shows only its closing summary, errors, and who extract.py took to be you.
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("HIVE_DRY_RUN_DIR") or tempfile.mkdtemp(prefix="hive-dry-run-")) if DRY_RUN else Path("/")
INPUT, WORKING, SCRATCH = ROOT / "kaggle" / "input", ROOT / "kaggle" / "working", ROOT / "tmp" / "hive"
for folder in (INPUT, WORKING, SCRATCH):
    folder.mkdir(parents=True, exist_ok=True)
print(f"inputs: {INPUT}\nresults: {WORKING}\nscratch: {SCRATCH}\ndry run: {DRY_RUN}")

SUMMARY_START = re.compile(r"^\w+: done$")  # the closing block of a stage (hive.cli.print_summary)
PUBLIC_LINE = re.compile(r"^(error|me): ")


def run(cmd, env=None, check=True, private_log=None):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    shown, tail = private_log is None, []
    with subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, bufsize=1) as proc, open(private_log or os.devnull, "w") as log:
        for line in proc.stdout:
            log.write(line)
            tail = [*tail[-199:], line]
            shown = shown or bool(SUMMARY_START.match(line))
            if shown or PUBLIC_LINE.match(line):
                print(line, end="", flush=True)
    if private_log:
        print(f"(full output, which can name your contacts: {private_log})")
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, output="".join(tail))
    return proc.returncode


# %% [markdown]
# ## 1. Get the Hive code
# From, in this order: the repository `HIVE_REPO` (when set), a Hive folder attached as a dataset (a folder under
# `/kaggle/input` holding `train.py` and `hive/`), or the code packed into this notebook, unpacked into
# `/tmp/hive`.

# %%
import base64
import io
import tarfile


def find_checkouts(root):
    return [script.parent for script in sorted(Path(root).rglob("train.py"))
            if (script.parent / "hive" / "__init__.py").is_file()]


attached = find_checkouts(INPUT)
packed, packed_version = globals().get("HIVE_PAYLOAD"), globals().get("HIVE_PAYLOAD_VERSION")  # the .ipynb's
if HIVE_REPO:
    CODE, origin = SCRATCH / "code-git", f"{HIVE_REPO} at {HIVE_REF}"
    if not (CODE / "train.py").is_file():
        run(["git", "clone", "--depth", "1", "--branch", HIVE_REF, HIVE_REPO, CODE])
elif attached:
    CODE, origin = attached[0], "the dataset attached as input"
elif packed:
    CODE, origin = SCRATCH / f"code-{packed_version}", f"packed into this notebook (version {packed_version})"
    if not CODE.is_dir():  # unpacked beside it, then renamed: an interrupted unpack is never taken for the code
        partial = Path(tempfile.mkdtemp(prefix=".code-", dir=SCRATCH))
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed)), mode="r:xz") as archive:
            archive.extractall(partial, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        partial.rename(CODE)
elif "__file__" in globals():  # this file run as a script
    CODE, origin = Path(__file__).resolve().parent, "the folder this script is in"
else:
    raise RuntimeError("no Hive code: this notebook has no packed code cell (import kaggle_training_notebook.ipynb "
                       "from the Hive repository), no Hive folder is attached under /kaggle/input, and HIVE_REPO is "
                       "not set; do one of the three")
if not (CODE / "hive" / "__init__.py").is_file():
    raise RuntimeError(f"{CODE} ({origin}) is not Hive's code: it has no hive/ package")
sys.path.insert(0, str(CODE))
print(f"Hive code: {CODE} ({origin})")

# %% [markdown]
# ## 2. Check the machine
# Two T4s (16 GB each, compute capability 7.5: fp16, no bf16) are expected; one GPU works too, only slower. The
# GPUs are asked about in a separate process, so this notebook's own process never holds GPU memory.

# %%
import json
import shutil

from hive import kaggle

STAGE_ENV = {**os.environ, "HIVE_HOME": str(WORKING), "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"}
MACHINE = json.loads(subprocess.run([sys.executable, "-m", "hive.kaggle", "machine"], cwd=CODE, check=True,
                                    capture_output=True, text=True).stdout)
GPUS = len(MACHINE["gpus"])
print(f"python {MACHINE['python']}, torch {MACHINE['torch']}, CUDA {MACHINE['cuda'] or 'none'}")
for i, gpu in enumerate(MACHINE["gpus"]):
    print(f"GPU {i}: {gpu['name']}, {gpu['memory_gib']} GiB, compute {gpu['compute']}, trains in {gpu['precision']}")
if GPUS == 0 and not DRY_RUN:
    raise RuntimeError("no GPU: in the notebook's Settings choose Accelerator 'GPU T4 x2', then run all cells again")
used = kaggle.folder_bytes(WORKING)
print(f"{WORKING}: {used / 1e9:.1f} of its {kaggle.WORKING_QUOTA / 1e9:.0f} GB quota used; "
      f"scratch {SCRATCH}: {shutil.disk_usage(SCRATCH).free / 1e9:.0f} GB free")

# %% [markdown]
# ## 3. Settings for every stage
# The packed `training_config.yaml`; then the paths below, the dry run's CPU sizes and your `SETTINGS`.
# Outputs, exports and the run go to `/kaggle/working` (`HIVE_HOME`); the dataset (and, with pseudonyms, the
# table of real names) stays in `/tmp/hive`.

# %%
from hive.config import load_config, parse_override

RAW = SCRATCH / "raw"
OVERRIDES = [
    f"paths.raw={RAW}",
    f"paths.cleaned={SCRATCH / 'cleaned'}",
    f"paths.final={SCRATCH / 'final' / 'personality.jsonl'}",
    f"paths.private={SCRATCH / 'private'}",
    f"paths.outputs={WORKING / 'outputs'}",
    f"paths.exports={SCRATCH / 'exports'}",  # built here, then moved to /kaggle/working (section 8)
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
OVERRIDES += SETTINGS
CFG = load_config(CODE / "training_config.yaml", dict(parse_override(o) for o in OVERRIDES))


def stage(script, *args, launcher=(sys.executable,), private=False):
    sets = [arg for override in OVERRIDES for arg in ("--set", override)]
    log = SCRATCH / "logs" / f"{Path(script).stem}.log" if private and not SHOW_CHAT_DETAILS else None
    if log:
        log.parent.mkdir(exist_ok=True)
    run([*launcher, CODE / script, "--config", CODE / "training_config.yaml", *sets, *args], env=STAGE_ENV,
        private_log=log)


# %% [markdown]
# ## 4. Install what is missing
# Kaggle's image already has a CUDA build of torch that matches its driver; reinstalling torch breaks it. pip gets
# a constraint file that pins the installed torch (and torchvision/torchaudio), so it only adds what is missing:
# the training libraries now, and Unsloth (faster, less memory) and bitsandbytes (4-bit) for the GPUs; if Unsloth
# does not install, training uses Hugging Face transformers + PEFT. llama-cpp-python, which the GGUF export needs,
# compiles llama.cpp for several minutes: it builds in the background while the GPUs train, and the export cell
# waits for it.

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
pip = [sys.executable, "-m", "pip", "install", "-q", "-c", CONSTRAINTS]
NOW, LATER = kaggle.install_plan(CODE / ("requirements-gpu.txt" if GPUS else "requirements.txt"),
                                 llama_cpp=kaggle.needs_llama_cpp(CFG))
print(f"pip constraints: {', '.join(pins)}\nnow: {' '.join(NOW)}\nin the background: {' '.join(LATER) or 'nothing'}")
LLAMA_BUILD = None
if DRY_RUN:
    print("dry run: the CI environment already has everything installed; skipping pip")
else:
    started = time.time()
    if run(pip + NOW, check=False):
        print("the combined install failed; installing one at a time (bitsandbytes is useful without Unsloth)")
        for requirement in NOW:
            if run(pip + [requirement], check=False):
                print(f"could not install {requirement}; carrying on without it")
    run(pip + ["--force-reinstall", "--no-deps", kaggle.GGUF_FIX])
    print(f"installed in {time.time() - started:.0f} s")
    if LATER:
        LLAMA_LOG = SCRATCH / "llama-cpp-build.log"
        # a portable CPU build without the multimodal library, niced and on two cores so that training keeps the CPU
        build_env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF",
                     "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
        with open(LLAMA_LOG, "w") as log:
            LLAMA_BUILD = subprocess.Popen(["nice", "-n", "19", *map(str, pip), *LATER], stdout=log,
                                           stderr=subprocess.STDOUT, env=build_env)
        print(f"building {' '.join(LATER)} in the background (log: {LLAMA_LOG})")
print("installed:", ", ".join(f"{n} {metadata.version(n)}" for n in ("torch", "transformers", "peft", "trl")))

# %% [markdown]
# ## 5. Find your exports
# Every `.txt` or `.zip` under `/kaggle/input` (any depth) that holds a WhatsApp export is linked into
# `/tmp/hive/raw`; extract.py then reads them from there. Set `EXPORTS` in the first cell to use one file or
# folder instead. Their names (your contacts') are shown only with `SHOW_CHAT_DETAILS`.

# %%
source = Path(EXPORTS) if EXPORTS else INPUT
exports = [source] if source.is_file() else kaggle.find_exports(source, skip=(CODE,))
if DRY_RUN and not exports:
    # The dry run "attaches" the sample chats the way a user attaches a dataset.
    shutil.copytree(CODE / "samples", INPUT / "hive-sample-chats", dirs_exist_ok=True)
    exports = kaggle.find_exports(source, skip=(CODE,))
if not exports:
    raise RuntimeError(f"no WhatsApp exports (.txt or .zip) found under {source}: attach a dataset with your exports "
                       "(Add Input -> Upload), or set EXPORTS in the first cell to their path")
shutil.rmtree(RAW, ignore_errors=True)
for export in exports:
    link = RAW / (export.relative_to(source) if source.is_dir() else export.name)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(export)
    if SHOW_CHAT_DETAILS:
        print(f"  {export} ({export.stat().st_size / 1024:,.0f} KiB)")
print(f"{len(exports)} export(s), {sum(e.stat().st_size for e in exports) / 2**20:,.1f} MiB, linked into {RAW}")

# %% [markdown]
# ## 6. Build the training set

# %%
stage("extract.py", private=True)
stage("convert.py", private=True)
stage("validate_dataset.py", private=True)

# %% [markdown]
# ## 7. Train on both GPUs, resuming from the newest checkpoint
# With two or more GPUs the run is data-parallel: `accelerate launch` starts one process per GPU, each with its own
# copy of the model, and the gradients are averaged (DDP), so the effective batch is batch x accumulation x GPUs
# (train.py prints it). Both backends train this way; the README's "Several GPUs on one machine" has the measured
# speed-up. T4s have no bf16, so training runs in fp16.
#
# The newest complete checkpoint of `RUN_NAME` (one whose weights and trainer state were both written) in
# `/kaggle/working/outputs/<RUN_NAME>/` or in an attached earlier output is where training continues; an attached
# one is first copied into `/kaggle/working`. A checkpoint is also saved every `training.save_minutes`, so a session
# that ends early loses minutes of training. If Unsloth fails (it may not start on this GPU, or fail in its first
# steps), training goes on with Hugging Face transformers + PEFT from the newest checkpoint and says why.

# %%
run_dir = WORKING / "outputs" / RUN_NAME
checkpoint = kaggle.resume_checkpoint(run_dir, INPUT)
if GPUS >= 2:
    print(f"data-parallel on {GPUS} GPUs (accelerate launch, one process per GPU)")
    launcher = (sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", CODE / "configs" / "accelerate_multi_gpu.yaml", "--num_processes", str(GPUS))
else:
    print(f"single process on {'1 GPU' if GPUS else 'CPU'}")
    launcher = (sys.executable,)
print(f"resuming from {checkpoint}" if checkpoint else f"starting run {RUN_NAME}; checkpoints go to {run_dir}")
try:
    stage("train.py", "--run", RUN_NAME, *(["--resume", checkpoint] if checkpoint else []), launcher=launcher)
except subprocess.CalledProcessError as failed:
    # Unsloth can start and still fail in its first steps (a kernel this GPU cannot run): train.py then says
    # "Unsloth failed". The session goes on with transformers + PEFT from the run's newest checkpoint, once.
    if "Unsloth failed" not in (failed.output or "") or "training.backend=transformers" in OVERRIDES:
        raise
    print("Unsloth failed (see above): continuing the run with transformers + PEFT")
    OVERRIDES.append("training.backend=transformers")
    checkpoint = kaggle.resume_checkpoint(run_dir, INPUT)
    stage("train.py", "--run", RUN_NAME, *(["--resume", checkpoint] if checkpoint else []), launcher=launcher)

# %% [markdown]
# ## 8. Evaluate: is the fine-tune closer to your style than the base model?
# The report quotes held-out messages, so it is written to `/tmp/hive/evaluation/<RUN_NAME>/` (beside links to
# the run) unless `SHOW_CHAT_DETAILS`; the scores are shown here either way.

# %%
EVAL_RUN = run_dir if SHOW_CHAT_DETAILS else kaggle.private_view(run_dir, SCRATCH / "evaluation" / RUN_NAME)
stage("evaluate.py", "--run", EVAL_RUN)

# %% [markdown]
# ## 9. Export a GGUF and an Ollama Modelfile
# First a size check: the export's files, estimated from the model's parameter count and `export.formats`, must
# fit the 20 GB that Kaggle keeps of `/kaggle/working` (counted as the size of its files, not the disk's free
# space). The export is built in `/tmp/hive/exports` (the merged 16-bit model and the f16 GGUF come and go there)
# and then moved to `/kaggle/working/exports`.

# %%
counted = subprocess.run([sys.executable, "-m", "hive.kaggle", "parameters", CFG.model.base_model], cwd=CODE,
                         env=STAGE_ENV, capture_output=True, text=True)
if counted.returncode:
    print(f"warning: no size check, the model's parameters could not be counted: {counted.stderr.strip()[-300:]}")
else:
    print(kaggle.export_room(int(counted.stdout), CFG, kaggle.folder_bytes(run_dir / "final_model"), WORKING, SCRATCH))
if LLAMA_BUILD is not None:
    if LLAMA_BUILD.poll() is None:
        print("waiting for the llama-cpp-python build to finish ...", flush=True)
    if LLAMA_BUILD.wait():
        raise RuntimeError(f"llama-cpp-python did not build (see {LLAMA_LOG}); without it only f16, bf16 and q8_0 "
                           "GGUFs can be written: add 'export.quantization=[q8_0]' to SETTINGS and run this cell again")
    print(f"llama-cpp-python built in the background (log: {LLAMA_LOG})")
stage("export_model.py", "--input", EVAL_RUN)
EXPORT = WORKING / "exports" / CFG.export.name
shutil.rmtree(EXPORT, ignore_errors=True)
EXPORT.parent.mkdir(exist_ok=True)
shutil.move(SCRATCH / "exports" / CFG.export.name, EXPORT)
print(f"moved the export to {EXPORT}: run `ollama create {CFG.export.name} -f Modelfile` there (not in /tmp)")

# %% [markdown]
# ## 10. Download
# The files below are in the *Output* panel on the right (or *Save Version* -> *Output*). To chat on your own
# machine: `ollama create hive -f Modelfile` in the export folder, then `ollama run hive`.

# %%
for folder in (EXPORT, run_dir / "final_model"):
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        print(f"{path.stat().st_size / 2**20:10,.1f} MiB  {path}")
