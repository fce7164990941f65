"""Data-parallel scaling: the same training run on 1 GPU (`python train.py`) and on 2 GPUs (the README's
`accelerate launch --config_file configs/accelerate_multi_gpu.yaml --num_processes 2 train.py`), per backend.

    python bench/bench_multigpu.py --data .bench_data/chitchat.jsonl.gz --samples 2560 --out multigpu.json
    python bench/bench_multigpu.py --data FILE --tiny --samples 32 --work /tmp/bench-mgpu   # check it on CPU

Model and data as in bench/bench_train.py (whose builder this reuses): Llama-3.2-3B shapes with random weights and a
small BPE tokenizer, trained for one epoch on the first --samples samples of a convert.py file, with Hive's default
training settings (training_config.yaml). Reports samples/s and real (non-pad) tokens/s over the whole epoch and after
the first logging interval (warm-up), the 2-GPU/1-GPU ratio, peak memory per GPU (nvidia-smi, polled every 0.2 s),
and checks that the 2-process run wrote one copy of its outputs. Writes table.md and one log per run into --work,
and the rows as JSON to --out (bench/record.py).
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import record  # noqa: E402
from bench_train import sample_texts  # noqa: E402

from hive import runs  # noqa: E402
from hive.config import Config  # noqa: E402
from hive.synthetic import LLAMA_3B, TINY, build_model_dir  # noqa: E402

ACCELERATE_CONFIG = REPO / "configs" / "accelerate_multi_gpu.yaml"


def train_command(gpus: int) -> list[str]:
    """The README's commands: plain python on one GPU, accelerate launch (one process per GPU) on several."""
    if gpus == 1:
        return [sys.executable, str(REPO / "train.py")]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
            "--num_processes", str(gpus), str(REPO / "train.py")]


class MemoryPoll:
    """Peak memory.used of every GPU (MiB) while the run lasts, read from nvidia-smi."""

    def __init__(self):
        self.peak: dict[int, int] = {}
        self.proc = None

    def __enter__(self):
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except FileNotFoundError:  # no NVIDIA driver: a CPU check of the harness
            return self
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            index, used = (int(x) for x in line.split(","))
            self.peak[index] = max(self.peak.get(index, 0), used)

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()


def steady(log: list[dict], arrivals: list[float], effective_batch: int) -> tuple[float | None, float | None]:
    """(samples/s, tokens/s) from the first logged training step to the last: the warm-up left out.

    `arrivals` are the times at which the loss lines reached our pipe (the log lines carry no time stamp);
    the token counts (`num_tokens`, summed over all processes by TRL) come from the run's trainer_log.jsonl."""
    points = [e for e in log if "loss" in e and "num_tokens" in e]
    if len(points) < 2 or len(arrivals) != len(points):
        return None, None
    seconds = arrivals[-1] - arrivals[0]
    samples = (points[-1]["step"] - points[0]["step"]) * effective_batch
    tokens = points[-1]["num_tokens"] - points[0]["num_tokens"]
    return samples / seconds, tokens / seconds


def train_and_watch(cmd: list[str], env: dict) -> tuple[int, str, list[float]]:
    """Run `cmd`; (exit code, its output, the arrival time of every training-loss line)."""
    lines, arrivals = [], []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("{'loss'"):
                arrivals.append(time.perf_counter())
    return proc.returncode, "".join(lines), arrivals


def run_one(backend: str, gpus: int, args, data: Path) -> dict:
    home = args.work / f"{backend}-{gpus}gpu"
    cmd = train_command(gpus) + [
        "--model", str(args.model_dir), "--data", str(data), "--run", "bench",
        "--set", f"training.backend={backend}", "--set", "training.num_train_epochs=1",
        "--set", "training.save_steps=1000000", "--set", f"training.logging_steps={args.logging_steps}",
    ]
    env = {**os.environ, "HIVE_HOME": str(home), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    if args.device == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(gpus))
    print(f"\n{backend}, {gpus} GPU(s): HIVE_HOME={home} {' '.join(cmd)}", flush=True)
    started = time.time()
    with MemoryPoll() as memory:
        returncode, out, arrivals = train_and_watch(cmd, env)
    (args.work / f"{backend}-{gpus}gpu.log").write_text(out, encoding="utf-8")
    run_dir = home / "outputs" / "bench"
    if not (run_dir / "run.json").is_file():
        print(f"failed (exit {returncode}):\n{out[-3000:]}", flush=True)
        return {"backend": backend, "gpus": gpus, "failed": f"exit {returncode}, no run.json"}
    if returncode:  # trained and wrote run.json, but a later step (e.g. the loss plot) failed: keep the figures
        print(f"exit {returncode} after training:\n{out[-1500:]}", flush=True)
    info = runs.load_run(run_dir, home / "outputs").record
    log = [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    samples, tokens, seconds = info.train.samples, info.train.tokens, info.train_seconds
    steady_samples, steady_tokens = steady(log, arrivals, info.effective_batch)
    return {
        "backend": info.backend, "gpus": gpus, "world_size": info.world_size, "precision": info.precision,
        "load_in_4bit": info.load_in_4bit, "padding_free": info.padding_free, "effective_batch": info.effective_batch,
        "steps": info.steps,
        "samples": samples, "tokens": tokens, "train_s": seconds, "wall_s": time.time() - started,
        "samples_s": samples / seconds, "tokens_s": tokens / seconds,
        "steady_samples_s": steady_samples, "steady_tokens_s": steady_tokens,
        "peak_mib": [memory.peak[i] for i in sorted(memory.peak)][:gpus] if memory.peak else None,
        # one copy of the outputs: one run folder, one adapter, one summary, whatever the process count
        "run_folders": len(list((home / "outputs").iterdir())),
        "final_models": len(list((home / "outputs").rglob("final_model"))),
        "summaries_printed": out.count("train: done"),
        "final_loss": info.train_loss, "exit": returncode,
    }


def table(rows: list[dict]) -> str:
    lines = ["| backend | GPUs | eff. batch | steps | samples/s | real tokens/s | after warm-up: samples/s, tokens/s | "
             "scaling | peak MiB per GPU | outputs (run folders / final_model / summaries) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["backend"]: r for r in rows if r.get("gpus") == 1 and "failed" not in r}
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['backend']} | {r['gpus']} | failed: {r['failed']} |||||||")
            continue
        one = base.get(r["backend"])
        scale = f"{r['samples_s'] / one['samples_s']:.2f}x" if one and r["gpus"] > 1 else "1.00x" if one is r else "n/a"
        if one and r["gpus"] > 1 and r["steady_samples_s"] and one["steady_samples_s"]:
            scale += f" ({r['steady_samples_s'] / one['steady_samples_s']:.2f}x after warm-up)"
        warm = (f"{r['steady_samples_s']:.1f}, {r['steady_tokens_s']:,.0f}" if r["steady_samples_s"] else "n/a")
        mem = " / ".join(f"{m:,}" for m in r["peak_mib"]) if r["peak_mib"] else "n/a"
        lines.append(f"| {r['backend']} ({r['precision']}{', 4-bit' if r['load_in_4bit'] else ''}) | {r['gpus']} | "
                     f"{r['effective_batch']} | {r['steps']} | {r['samples_s']:.1f} | {r['tokens_s']:,.0f} | {warm} | "
                     f"{scale} | {mem} | {r['run_folders']} / {r['final_models']} / {r['summaries_printed']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="convert.py output (messages JSONL, or .jsonl.gz)")
    parser.add_argument("--samples", type=int, default=2560, help="samples trained per run (one epoch)")
    parser.add_argument("--backends", default="unsloth,transformers", help="comma list of unsloth | transformers")
    parser.add_argument("--gpus", default="1,2", help="process counts to compare (comma list)")
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "hive-bench-llama3b")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model on CPU (checks the harness)")
    parser.add_argument("--logging-steps", type=int, default=5, help="log every N steps (the warm-up cut is the first)")
    parser.add_argument("--deadline", type=float, default=0,
                        help="seconds; skip runs that would start after it (0 = none)")
    parser.add_argument("--work", type=Path, help="folder for the runs, table.md and logs (default: a new temporary "
                        "folder)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here (bench/record.py)")
    args = parser.parse_args(argv)
    args.device = "cpu" if args.tiny else "cuda"
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-mgpu-"))
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    lines = (gzip.open(args.data, "rt", encoding="utf-8") if args.data.suffix == ".gz"
             else open(args.data, encoding="utf-8")).read().splitlines()
    data = args.work / "data" / "personality.jsonl"  # no .val.jsonl beside it: no evaluation inside the timing
    data.parent.mkdir(exist_ok=True)
    data.write_text("\n".join([line for line in lines if line.strip()][: args.samples]) + "\n", encoding="utf-8")
    build_model_dir(args.model_dir, sample_texts(data), TINY if args.tiny else LLAMA_3B,
                    vocab=8192 if args.tiny else 128256)
    print(f"model {args.model_dir} ready after {time.time() - started:.0f} s", flush=True)

    rows = []
    for backend in args.backends.split(","):
        for gpus in (int(g) for g in args.gpus.split(",")):
            if args.deadline and time.time() - started > args.deadline:
                print(f"skipped {backend} on {gpus} GPU(s): past the --deadline of {args.deadline:.0f} s", flush=True)
                continue
            rows.append(run_one(backend, gpus, args, data))
            print(json.dumps(rows[-1]), flush=True)
            if args.out:  # kept if the call is cut short
                # each run's HIVE_HOME has no training_config.yaml: train.py trains with the built-in defaults
                record.write(args.out, rows, argv, group_by_length=Config().training.group_by_length)
            (args.work / "table.md").write_text(table(rows) + "\n")
    print("\n" + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
