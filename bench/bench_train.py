"""Training throughput: the original Hive recipe against Hive's defaults, on real chat samples.

    python bench/bench_train.py --data dataset/final/personality.jsonl --samples 1000 --out train.json  # CUDA GPU
    python bench/bench_train.py --data FILE --device cpu --tiny                 # check the harness on CPU (minutes)
    python bench/bench_train.py --data FILE --samples 200 --configs b --profile 2  # where the GPU time of 2 steps goes

Model: Llama-3.2-3B shapes (hidden 3072, intermediate 8192, 28 layers, 24 heads, 8 KV heads, vocab 128256, tied
embeddings, Llama-3.2 rope) with random weights, since throughput does not depend on weight values and the GPU
machine has no hub: built once into --model-dir with a small BPE tokenizer trained in-process on the samples and a
Llama-3 chat template. --tiny uses a 2-layer, 256-wide model of the same kind.

Data: --data is a convert.py file (`messages` JSONL, or .jsonl.gz). The first --samples samples are trained for one
epoch; the epoch time is extrapolated to the whole file by its token count.

Each configuration trains through hive.training.train in its own process (Unsloth patches transformers for the whole
process), and the table reports real (non-pad) tokens per second over the whole epoch and after the first steps
(compilation and warm-up), wall time per full epoch, and peak GPU memory. --out FILE writes the rows as JSON
(bench/record.py), with the whole file's sample and token counts.
"""

import argparse
import gzip
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import record  # noqa: E402  (bench/, the script's folder)

from hive.synthetic import LLAMA_3B, TINY, build_model_dir  # noqa: E402  (after the sys.path insert)

# name -> (what it is, config overrides, extra SFTConfig fields)
CONFIGS = {
    "a": ("original: Unsloth 4-bit, batch 4 x 4, padded, group_by_length, dropout 0.05",
          {"training.backend": "unsloth", "training.packing": False, "training.group_by_length": False,
           "training.per_device_train_batch_size": 4, "training.gradient_accumulation_steps": 4,
           "training.max_tokens_per_pass": 0, "lora.lora_dropout": 0.05},
          {"train_sampling_strategy": "group_by_length"}),
    "b": ("Hive defaults: Unsloth 4-bit, batch 16 x 1 grouped by length, padded, <= 4,096 tokens per pass",
          {"training.backend": "unsloth"}, {}),
    "b2k": ("Hive defaults with at most 2,048 tokens per pass",
            {"training.backend": "unsloth", "training.max_tokens_per_pass": 2048}, {}),
    "bx": ("Hive defaults without the token limit (max_tokens_per_pass 0)",
           {"training.backend": "unsloth", "training.max_tokens_per_pass": 0}, {}),
    "bp": ("Hive defaults with padding-free rows (packing: true)",
           {"training.backend": "unsloth", "training.packing": True}, {}),
    "b0": ("Hive defaults with random batches (no grouping by length: padding-free rows)",
           {"training.backend": "unsloth", "training.group_by_length": False}, {}),
    "c": ("Hugging Face + PEFT 4-bit (no Unsloth), otherwise Hive defaults",
          {"training.backend": "transformers"}, {}),
}


def plain_data(path: Path) -> Path:
    """`path`, or an uncompressed temporary copy of a .gz (which travels to the GPU machine more cheaply)."""
    if path.suffix != ".gz":
        return path
    plain = Path(tempfile.mkdtemp(prefix="bench-data-")) / path.stem
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    return plain


def sample_texts(path: Path) -> list[str]:
    return [m["content"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            for m in json.loads(line)["messages"]]


def run_one(name: str, args) -> dict:
    """Train configuration `name` for one epoch over the first args.samples samples; the figures as a dict."""
    backend = CONFIGS[name][1]["training.backend"]
    if backend == "unsloth" and args.device == "cpu" and importlib.util.find_spec("unsloth") is None:
        backend = "transformers"  # checking the harness on a CPU machine without Unsloth
    if backend == "unsloth":
        import unsloth  # noqa: F401  (first, before transformers)
    import torch
    from transformers import TrainerCallback

    from hive import training
    from hive.config import load_config

    class Clock(TrainerCallback):
        """Wall time and real (non-pad) tokens of every optimizer step, so warm-up can be left out. Grouped batches
        differ in size from step to step, so the tokens are counted as the collator builds each batch (the data loader
        builds one batch ahead, which shifts both ends of a count alike)."""

        def __init__(self):
            self.times, self.counts, self.seen = [], [], 0

        def on_train_begin(self, args, state, control, train_dataloader=None, processing_class=None, **kwargs):
            collate, pad = train_dataloader.collate_fn, processing_class.pad_token_id

            def counting(examples):
                batch = collate(examples)
                self.seen += int((batch["input_ids"] != pad).sum())
                return batch

            train_dataloader.collate_fn = counting

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())
            self.counts.append(self.seen)

    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    data = work / "personality.jsonl"  # no .val.jsonl beside it: no evaluation in the timing
    lines = [line for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    data.write_text("\n".join(lines[: args.samples]) + "\n", encoding="utf-8")
    overrides = {
        "paths.final": str(data), "paths.outputs": str(work / "outputs"), "model.base_model": str(args.model_dir),
        "model.load_in_4bit": True, "training.num_train_epochs": 1.0, "training.max_steps": args.max_steps,
        "training.save_steps": 10**6,
        "training.logging_steps": 10, "training.report_to": "none", **CONFIGS[name][1], "training.backend": backend,
        "training.run_name": name,
    }
    cfg = load_config(REPO / "training_config.yaml", overrides)
    clock = Clock()
    callbacks = [clock] + ([profiler_callback(args.profile)] if args.profile else [])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = training.train(cfg, callbacks=callbacks, args_extra=CONFIGS[name][2]).record
    steps = len(clock.times)
    warm = min(args.warmup_steps, steps - 1)
    tokens = result.train.tokens
    steady_s = clock.times[-1] - clock.times[warm - 1] if warm > 0 else result.train_seconds
    counted = clock.counts[-1] - (clock.counts[warm - 1] if warm > 0 else 0)
    # the count includes the batch built ahead; without a count (no collate_fn to wrap), in proportion to the steps
    steady_tokens = min(counted, tokens) if counted else tokens * (steps - warm) / steps
    full_tokens = args.full_tokens or tokens
    return {
        "config": name, "what": CONFIGS[name][0], "backend": result.backend, "samples": result.train.samples,
        "tokens": tokens, "steps": steps, "train_s": result.train_seconds, "wall_s": time.perf_counter() - started,
        "tok_s": tokens / result.train_seconds, "steady_tok_s": steady_tokens / steady_s,
        # the whole file: warm-up once, then the steady rate
        "epoch_min_full": (result.train_seconds - steady_s
                           + (full_tokens - tokens + steady_tokens) / (steady_tokens / steady_s)) / 60,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else None,
        "final_loss": result.train_loss, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }


def profiler_callback(steps: int):
    """Profiles `steps` optimizer steps after the warm-up: GPU-busy time against wall time (launch-bound or not) and
    the top kernels. The profiled steps run slower, so profile in a separate run from the timed one."""
    import torch
    from transformers import TrainerCallback

    class Profile(TrainerCallback):
        def __init__(self):
            self.prof = None

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 6 and self.prof is None:
                # GPU kernels only: with CPU events too, summarizing a few steps of a 28-layer model takes minutes
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
                self.prof.__enter__()
                self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self.prof is not None and state.global_step == 6 + steps:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                wall = time.perf_counter() - self.started
                self.prof.__exit__(None, None, None)
                averages = self.prof.key_averages()
                gpu = sum(e.self_device_time_total for e in averages) / 1e6
                print(f"PROFILE {steps} steps: wall {wall:.2f} s, GPU busy {gpu:.2f} s", flush=True)
                print(averages.table(sort_by="self_device_time_total", row_limit=20, max_name_column_width=60),
                      flush=True)
                self.prof = None

    return Profile()


def table(rows: list[dict], full_samples: int) -> str:
    out = [f"| config | what | real tok/s (epoch) | real tok/s (after warm-up) | epoch of {full_samples:,} samples | "
           "peak GiB (allocated / reserved) | steps |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = f"{r['peak_gib']:.2f} / {r['reserved_gib']:.2f}" if r["peak_gib"] is not None else "n/a"
        out.append(f"| {r['config']} | {r['what']} | {r['tok_s']:,.0f} | {r['steady_tok_s']:,.0f} | "
                   f"{r['epoch_min_full']:.1f} min | {mem} | {r['steps']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="convert.py output (messages JSONL)")
    parser.add_argument("--samples", type=int, default=1000, help="samples trained per configuration (one epoch)")
    parser.add_argument("--configs", default="b,a,c,bx,bp,b0", help=f"any of {', '.join(CONFIGS)}")
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "hive-bench-llama3b")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model (for checking the harness)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps: a memory "
                        "probe (config a's sampler, Trainer's group_by_length, trains its longest batch first)")
    parser.add_argument("--profile", type=int, default=0,
                        help="profile this many steps after step 6 and print the top kernels")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here (bench/record.py)")
    parser.add_argument("--logs", type=Path, help="write each configuration's full output to LOGS/<config>.log")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration in this process
    parser.add_argument("--full-tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("BENCH " + json.dumps(run_one(args.one, args)), flush=True)
        return 0

    data = plain_data(Path(args.data))
    texts = sample_texts(data)
    build_model_dir(args.model_dir, texts, TINY if args.tiny else LLAMA_3B, vocab=8192 if args.tiny else 128256)
    from transformers import AutoTokenizer

    from hive import conversations, templates

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    full = conversations.read(data)
    # whole conversations tokenized in one batch: fast, and the same lengths as training's (nothing needs trimming)
    rendered = [templates.render(tokenizer, m) for m in full]
    lengths = [len(ids) for ids in tokenizer(rendered, add_special_tokens=False)["input_ids"]]
    print(f"data: {data} {len(full):,} samples, {sum(lengths):,} tokens, median {statistics.median(lengths):g}, "
          f"max {max(lengths)}; benchmark trains the first {args.samples:,}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rows = []
    for name in args.configs.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--data", str(data), "--samples", str(args.samples),
               "--model-dir", str(args.model_dir), "--device", args.device, "--warmup-steps", str(args.warmup_steps),
               "--max-steps", str(args.max_steps),
               "--profile", str(args.profile),
               "--full-tokens", str(sum(lengths))]
        # streamed to the log as it runs, so a run cut short by a time limit still leaves its output
        log = args.logs / f"{name}.log" if args.logs else Path(tempfile.mkstemp(suffix=f"-{name}.log")[1])
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as f:
            done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
        output = log.read_text(encoding="utf-8", errors="replace")
        found = [line for line in output.splitlines() if line.startswith("BENCH ")]
        if done.returncode or not found:
            print(f"config {name} failed (exit {done.returncode}):\n{output[-4000:]}", flush=True)
            continue
        rows.append(json.loads(found[-1][6:]))
        print(json.dumps(rows[-1]), flush=True)
        if args.out:  # after every configuration, so a run cut short keeps what it measured
            record.write(args.out, rows, argv, data={"samples": len(full), "tokens": sum(lengths),
                                                     "median_tokens": statistics.median(lengths),
                                                     "max_tokens": max(lengths),
                                                     "max_tokens_trained": max(lengths[:args.samples])})
    print(table(rows, len(full)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
