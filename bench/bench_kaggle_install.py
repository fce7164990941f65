"""Minutes the Kaggle notebook's install cell costs, replayed on a Kaggle-like environment: the original cell
(everything in the foreground, llama-cpp-python compiled in it) against the notebook's (one pip call now;
llama-cpp-python compiled in the background, niced, on two cores, while the GPUs train).

    python bench/bench_kaggle_install.py --python python3.12 --work /tmp/kaggle-install    # ~5 GB of downloads once

The environment: a venv of --python with what a Kaggle GPU image already has (PREINSTALLED: torch 2.10 as PyPI ships
it, the CUDA 12.8 build, transformers 5.0, accelerate, datasets ...; no PEFT, TRL, bitsandbytes, Unsloth,
llama-cpp-python or gguf), built once in WORK/base and copied afresh for each recipe; pip reads PyPI only (no local
configuration, indexes or wheels) with an empty cache, as in a new Kaggle session. Not replayed: Kaggle's CPU (4
vCPUs on a GPU machine; the compile is CPU-bound) and its network. Prints a table and writes its rows as JSON to
--out (bench/record.py; default WORK/results.json).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import record  # noqa: E402

from hive import kaggle  # noqa: E402

PREINSTALLED = ["torch==2.10.0", "transformers==5.0.0", "accelerate", "datasets", "pandas", "numpy", "matplotlib",
                "sentencepiece", "protobuf", "pyyaml", "tqdm", "safetensors", "jinja2", "scipy"]
LLAMA_CMAKE = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


def pip_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_CACHE_DIR": str(cache), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def timed(cmd: list, env: dict, log) -> float:
    started = time.time()
    log.write(f"$ {' '.join(map(str, cmd))}\n")
    log.flush()
    code = subprocess.run([str(c) for c in cmd], env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - started
    log.write(f"-> exit {code}, {seconds:.0f} s\n")
    return seconds


def base_env(work: Path, python: str) -> Path:
    base = work / "base"
    if not (base / ".ready").exists():
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(base)], check=True)
        env = pip_env(work / "base-cache")
        subprocess.run([base / "bin" / "python", "-m", "pip", "install", "-q", "--upgrade", "pip"], env=env, check=True)
        subprocess.run([base / "bin" / "python", "-m", "pip", "install", "-q", *PREINSTALLED], env=env, check=True)
        (base / ".ready").touch()
    return base


def fresh(work: Path, base: Path) -> tuple[Path, list, dict]:
    """A copy of the base environment, its pip with the notebook's torch constraint, and an empty pip cache."""
    env_dir = work / "env"
    shutil.rmtree(env_dir, ignore_errors=True)
    subprocess.run(["cp", "-a", str(base), str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    torch = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    constraints = work / "constraints.txt"
    constraints.write_text(f"torch=={torch}\n")
    cache = Path(tempfile.mkdtemp(prefix="pip-cache-", dir=work))
    return python, [python, "-m", "pip", "install", "-q", "-c", constraints], pip_env(cache)


def original(pip: list, env: dict, log) -> dict:
    """The install cell as it was (commit 1f5e499): requirements.txt, the gguf fix, then each GPU extra."""
    env = {**env, "CMAKE_ARGS": LLAMA_CMAKE}
    seconds = timed(pip + ["-r", REPO / "requirements.txt"], env, log)
    seconds += timed(pip + ["--force-reinstall", "--no-deps", kaggle.GGUF_FIX], env, log)
    for extra in ("unsloth>=2026.10", "bitsandbytes>=0.45"):
        seconds += timed(pip + [extra], env, log)
    return {"foreground_s": seconds, "background_s": 0.0}


def notebook(pip: list, env: dict, log) -> dict:
    """The notebook's install cell: hive.kaggle.install_plan, one pip call, then the background build."""
    now, later = kaggle.install_plan(REPO / "requirements-gpu.txt", llama_cpp=True)
    seconds = timed(pip + now, env, log)
    seconds += timed(pip + ["--force-reinstall", "--no-deps", kaggle.GGUF_FIX], env, log)
    build_env = {**env, "CMAKE_ARGS": LLAMA_CMAKE, "CMAKE_BUILD_PARALLEL_LEVEL": "2"}
    background = timed(["nice", "-n", "19", *pip, *later], build_env, log)
    return {"foreground_s": seconds, "background_s": background}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="python3.12", help="the interpreter Kaggle has (3.12)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kaggle-install")
    parser.add_argument("--recipes", default="original,notebook", help="comma list: original, notebook")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here (default WORK/results.json)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    base = base_env(args.work, args.python)
    results = {}
    for name in args.recipes.split(","):
        python, pip, env = fresh(args.work, base)
        with open(args.work / f"{name}.log", "w") as log:
            load = os.getloadavg()[0]
            results[name] = {**{"original": original, "notebook": notebook}[name](pip, env, log), "load_before": load}
        # Unsloth itself refuses to import without a GPU: its installed version is what can be checked here.
        check = subprocess.run([python, "-c", "import importlib.metadata as m, trl, peft, bitsandbytes, llama_cpp, "
                                "gguf; m.version('unsloth')"], capture_output=True, text=True)
        results[name]["imports"] = "ok" if check.returncode == 0 else check.stderr.strip().splitlines()[-1]
        print(f"{name}: {results[name]}", flush=True)
    record.write(args.out or args.work / "results.json", [{"recipe": name, **r} for name, r in results.items()],
                 argv, python=args.python)
    print("\n| recipe | before training (min) | background build (min) | packages import |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['foreground_s'] / 60:.1f} | {r['background_s'] / 60:.1f} | {r['imports']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
