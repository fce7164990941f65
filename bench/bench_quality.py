"""Which convert mode makes the better clone? Trains the same model with the same budget on `reply` samples (others'
messages -> my replies) and on `sliding` samples (the original Hive pairing: my message i -> my message i+1), then
scores both with evaluate.py on the SAME held-out conversations and prints one table.

    pip install chitchat-dataset
    python bench/chitchat_exports.py /tmp/chitchat/raw
    nice -n 10 python bench/bench_quality.py /tmp/chitchat/raw --work /tmp/bench_quality --steps 150
    nice -n 10 python bench/bench_quality.py /tmp/chitchat/raw --compare grouping --batch 16 --steps 80

--compare grouping trains on `reply` samples twice instead, with batches grouped by length (training.group_by_length,
the default) and with random batches, to show what the faster grouped batches cost in quality.

The held-out file is built in reply mode from chats that neither training set contains (a seeded hash of the chat
file names picks them): every sample is a real reply of mine to a real context, which is what a clone is for, and
both fine-tunes are scored on exactly the same tokens. (sliding's own validation file pairs two of my messages,
which would favour the sliding model and tells nothing about answering someone else.) Writes WORK/bench_quality.md.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import record

REPO = Path(__file__).resolve().parent.parent
# run name -> (convert mode, extra settings)
COMPARISONS = {
    "modes": {"reply": ("reply", []), "sliding": ("sliding", [])},
    "grouping": {"grouped": ("reply", ["--set", "training.group_by_length=true"]),
                 "random": ("reply", ["--set", "training.group_by_length=false"])},
}


def stage(work: Path, script: str, *args: str) -> None:
    """Run a stage script with `work` as the project root; stop the benchmark if it fails."""
    command = [sys.executable, str(REPO / script), *args]
    print(f"\n$ {' '.join(command)}", flush=True)
    env = {**os.environ, "HIVE_HOME": str(work), "HF_HUB_OFFLINE": "1"}
    if subprocess.run(command, env=env).returncode != 0:
        sys.exit(f"bench_quality: {script} failed; see its output above")


def split_chats(cleaned: Path, train: Path, heldout: Path, fraction: float) -> int:
    """Copy each cleaned chat into `train` or `heldout` (the first `fraction` of chats by hash of their name)."""
    chats = sorted(cleaned.glob("*.jsonl"), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    n = round(fraction * len(chats))
    for folder in (train, heldout):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for i, chat in enumerate(chats):
        shutil.copy(chat, (heldout if i < n else train) / chat.name)
    return n


def table(work: Path, steps: int, batch: int, names: dict) -> str:
    results = {name: json.loads((work / "outputs" / name / "eval.json").read_text()) for name in names}
    runs = {name: json.loads((work / "outputs" / name / "run.json").read_text()) for name in names}
    first = results[next(iter(names))]
    lines = [
        f"Held-out: {first['samples']:,} real replies ({first['reply_tokens']:,} tokens) from chats neither run saw; "
        f"{steps} steps x batch {batch} each.", "",
        "| model | training samples | NLL / reply token | perplexity | vs base | wins vs base |",
        "|---|---:|---:|---:|---:|---:|",
        f"| base ({first['base_model']}) | - | {first['base_nll']:.3f} | {first['base_perplexity']:.1f} | - | - |",
    ]
    for name, (mode, sets) in names.items():
        r = results[name]
        what = f"convert.mode={mode}" + "".join(f", {x}" for x in sets if x != "--set")
        lines.append(f"| fine-tune, {what} | {runs[name]['data']['train']['samples']:,} | {r['tuned_nll']:.3f} | "
                     f"{r['tuned_perplexity']:.1f} | {-r['nll_reduction']:+.1%} | {r['win_rate']:.0%} |")
    style = {"me (real)": first["style"]["real"], "base": first["style"]["base"],
             **{f"fine-tune, {name}": results[name]["style"]["tuned"] for name in names}}
    keys = list(first["style"]["real"])
    lines += ["", f"Style of {first['style_samples']} generated replies (same contexts, same sampling seed):", "",
              "| | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in keys) + " |" for name, m in style.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("raw", type=Path, help="folder of WhatsApp exports (bench/chitchat_exports.py writes one)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_quality"), help="project root for the runs")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps per run (default 150)")
    p.add_argument("--batch", type=int, default=4, help="samples per step (default 4)")
    p.add_argument("--max-seq-length", type=int, default=256)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--heldout", type=float, default=0.08, help="share of chats held out (default 0.08)")
    p.add_argument("--eval-samples", type=int, default=200, help="held-out replies scored (default 200)")
    p.add_argument("--style-samples", type=int, default=50, help="held-out contexts replied to (default 50)")
    p.add_argument("--eval-batch", type=int, default=8, help="evaluate.batch_size (default 8; 50 on a GPU)")
    p.add_argument("--compare", choices=list(COMPARISONS), default="modes",
                   help="modes: reply vs sliding samples (default); grouping: batches grouped by length vs random")
    p.add_argument("--out", type=Path, help="also write the held-out NLL of every model as JSON (bench/record.py)")
    args = p.parse_args(argv)
    started = time.time()
    work = args.work.resolve()
    common = ["--set", f"model.base_model={args.model}", "--set", f"model.max_seq_length={args.max_seq_length}",
              "--set", "model.load_in_4bit=false"]
    stage(work, "extract.py", "--input", str(args.raw.resolve()), "--me", "Me", *common)
    held = split_chats(work / "dataset" / "cleaned", work / "chats" / "train", work / "chats" / "heldout", args.heldout)
    print(f"\nbench_quality: {held} chats held out", flush=True)
    no_split = [*common, "--set", "convert.validation_fraction=0"]
    names = COMPARISONS[args.compare]
    for mode in sorted({mode for mode, _ in names.values()}):
        stage(work, "convert.py", "--input", str(work / "chats" / "train"), "--mode", mode,
              "--output", str(work / mode / "personality.jsonl"), *no_split)
    heldout = work / "heldout" / "personality.jsonl"
    stage(work, "convert.py", "--input", str(work / "chats" / "heldout"), "--mode", "reply", "--output", str(heldout), *no_split)
    for name, (mode, sets) in names.items():
        stage(work, "train.py", "--data", str(work / mode / "personality.jsonl"), "--run", name, "--max-steps", str(args.steps),
              *common, *sets, "--set", f"training.per_device_train_batch_size={args.batch}",
              "--set", "training.gradient_accumulation_steps=1", "--set", "training.gradient_checkpointing=false",
              "--set", "training.logging_steps=10", "--set", "training.save_steps=100000")
        stage(work, "evaluate.py", "--run", str(work / "outputs" / name), "--data", str(heldout), *common,
              "--max-samples", str(args.eval_samples), "--set", f"evaluate.style_samples={args.style_samples}",
              "--set", f"evaluate.batch_size={args.eval_batch}")
    report = table(work, args.steps, args.batch, names)
    (work / "bench_quality.md").write_text(report + "\n", encoding="utf-8")
    if args.out:
        evals = {name: json.loads((work / "outputs" / name / "eval.json").read_text()) for name in names}
        first = evals[next(iter(names))]
        rows = [{"model": "base", "nll": first["base_nll"]}] + [
            {"model": name, "convert_mode": mode, "settings": sets[1::2], "nll": evals[name]["tuned_nll"]}
            for name, (mode, sets) in names.items()]
        record.write(args.out, rows, argv, compare=args.compare, base_model=first["base_model"], steps=args.steps,
                     batch=args.batch, heldout_replies=first["samples"])
    print(f"\n{report}\n\nbench_quality: {time.time() - started:.0f} s; table in {work / 'bench_quality.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
