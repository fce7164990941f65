"""How close does the clone come to the person? Trains the same model on `reply` samples (others' messages -> my
replies) and on `sliding` samples (the original Hive pairing: my message i -> my message i+1), scores both with
evaluate.py on the SAME held-out conversations and prints one table: held-out NLL per reply token, every style
metric of generated replies, the stop rate and the indistinguishability AUC, for base, reply and sliding.

    pip install chitchat-dataset
    python bench/chitchat_exports.py /tmp/chitchat/raw
    python bench/bench_quality.py /tmp/chitchat/raw --defaults --compare modes,generation,training,context \
        --jobs 6 --curve 100 --eval-samples 1000 --style-samples 500 --eval-batch 64            # one GPU
    nice python bench/bench_quality.py /tmp/chitchat/raw --steps 60 --batch 8 --max-seq-length 128 \
        --set training.learning_rate=1e-3 --eval-samples 100 --style-samples 40 --compare modes,generation   # CPU

--defaults trains with training_config.yaml as shipped (full epochs, its batch, learning rate and lengths); only
model.base_model (--model), model.load_in_4bit=false (bitsandbytes is not needed for a 135M model) and
training.gradient_checkpointing=false (it trades time for memory; the updates are the same) are set.
Without it every run gets the same small fixed budget (--steps x --batch) for quick comparisons on a CPU.
--me names the sender that is you in the exports. --compare picks the runs (several: comma-separated):
  modes       reply vs sliding samples (default)
  grouping    reply samples in batches grouped by length (the default) vs random batches
  generation  the reply model sampled with the earlier settings (repetition penalty 1.1, temperature 0.7, top_p 0.9),
              without the penalty, with only the penalty, and without top_p or top_k
  training    the reply recipe at three times the learning rate, and for twice the epochs
  context     reply samples that carry 2 or 16 earlier turns instead of convert.max_context_turns
  bursts      reply samples whose bursts are split at 2-minute pauses, or joined up to 30 minutes
Runs that differ only in generation settings share one trained model. --jobs N trains (and evaluates) N runs at a
time: a small model leaves a GPU mostly idle, so several runs share it well; their output goes to WORK/logs/.

The held-out file is built in reply mode from chats that no training set contains (a seeded hash of the chat file
names picks them): every sample is a real reply of mine to a real context, which is what a clone is for, and every
model is scored on exactly the same tokens and contexts. Writes WORK/bench_quality.md (the table and
the goals) and WORK/bench_quality.json (every run's evaluation, with its replies); --out FILE adds the table's rows,
the goals and each run's training curve (--curve N: the held-out loss every N optimizer steps) as JSON.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import record

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hive.config import load_config  # noqa: E402
from hive.evaluation import spread  # noqa: E402
from hive.fileio import read_jsonl, write_jsonl  # noqa: E402
from hive.runs import RunRecord  # noqa: E402
from hive.style import SHARES, STYLE_METRICS, gap  # noqa: E402

EARLIER_SAMPLING = ["generation.repetition_penalty=1.1", "generation.temperature=0.7", "generation.top_p=0.9"]
# run name -> (convert mode, config overrides); the overrides of the sections below decide what is trained
COMPARISONS = {
    "modes": {"reply": ("reply", []), "sliding": ("sliding", [])},
    "grouping": {"grouped": ("reply", ["training.group_by_length=true"]),
                 "random": ("reply", ["training.group_by_length=false"])},
    "generation": {
        "reply": ("reply", []),
        "reply, earlier sampling": ("reply", EARLIER_SAMPLING),
        "reply, earlier sampling without repetition penalty": ("reply", [*EARLIER_SAMPLING[1:],
                                                                         "generation.repetition_penalty=1.0"]),
        "reply, repetition penalty 1.1": ("reply", ["generation.repetition_penalty=1.1"]),
        "reply, no top_p or top_k": ("reply", ["generation.top_p=1.0", "generation.top_k=0"]),
    },
    "training": {"reply": ("reply", []), "reply, lr x 3": ("reply", ["training.learning_rate=LRx3"]),
                 "reply, 2 x epochs": ("reply", ["training.num_train_epochs=EPOCHSx2"])},
    "context": {"reply": ("reply", []), "reply, 2 context turns": ("reply", ["convert.max_context_turns=2"]),
                "reply, 16 context turns": ("reply", ["convert.max_context_turns=16"])},
    "bursts": {"reply": ("reply", []), "reply, bursts split at 2 min": ("reply", ["convert.merge_gap_minutes=2"]),
               "reply, bursts joined up to 30 min": ("reply", ["convert.merge_gap_minutes=30"])},
}
TRAINED_BY = ("convert.", "model.", "lora.", "training.")
# the goals of the fidelity issue, for the run named "reply" (see the README)
NLL_GOAL, STYLE_TOLERANCE, SHARE_TOLERANCE, STOP_GOAL = 0.20, 0.15, 0.05, 0.95


def stage(work: Path, log: Path | None, script: str, *args: str) -> None:
    """Run a stage script with `work` as the project root (output to `log` when given); raise if it fails."""
    command = [sys.executable, str(REPO / script), *args]
    print(f"\n$ {' '.join(command)}" + (f"  > {log}" if log else ""), flush=True)
    env = {**os.environ, "HIVE_HOME": str(work), "HF_HUB_OFFLINE": "1"}
    if log is None:
        code = subprocess.run(command, env=env).returncode
    else:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            code = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{script} failed" + (f"; see {log}" if log else "; see its output above"))


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


def sets(overrides: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [x for x in overrides if x.startswith(prefixes)]


def slug(overrides: list[str]) -> str:
    return "-".join(x.split(".", 1)[1].replace("=", "") for x in overrides) or "default"


def plan_runs(compare: list[str], shipped) -> dict:
    """name -> {mode, data (convert overrides), trained (all training-relevant overrides), generation overrides};
    `shipped` is the shipped config, whose learning rate and epochs the training comparison multiplies."""
    t = shipped.training
    scaled = {"LRx3": f"{t.learning_rate * 3:.3g}", "EPOCHSx2": f"{t.num_train_epochs * 2:g}"}
    runs = {}
    for comparison in compare:
        for name, (mode, overrides) in COMPARISONS[comparison].items():
            overrides = [x.split("=")[0] + "=" + scaled.get(x.split("=")[1], x.split("=")[1]) for x in overrides]
            runs[name] = {"mode": mode, "data": sets(overrides, ("convert.",)), "trained": sets(overrides, TRAINED_BY),
                          "generation": sets(overrides, ("generation.",))}
    return runs


def as_flags(overrides: list[str]) -> list[str]:
    return [a for x in overrides for a in ("--set", x)]


def curve_file(heldout: Path, target: Path, n: int) -> None:
    """A validation file beside a training file: n held-out samples, so training logs the held-out loss."""
    write_jsonl(target, spread(list(read_jsonl(heldout)), n))


def table(work: Path, runs: dict, budget: str) -> tuple[str, dict]:
    """The Markdown table of the runs that were evaluated, and their eval.json."""
    runs = [name for name in runs if (work / "outputs" / name / "eval.json").exists()]
    if not runs:
        return "no run was evaluated", {}
    results = {name: json.loads((work / "outputs" / name / "eval.json").read_text()) for name in runs}
    infos = {name: RunRecord.load(work / "outputs" / name) for name in runs}
    first = results[next(iter(runs))]
    lines = [
        f"Held-out: {first['samples']:,} real replies ({first['reply_tokens']:,} tokens) from chats no run saw; "
        f"{budget}; style from {first['style_samples']} generated replies per model (same contexts, same seed).", "",
        "| model | training samples | steps | NLL / reply token | vs base | wins vs base |",
        "|---|---:|---:|---:|---:|---:|",
        f"| base ({first['base_model']}) | - | - | {first['base_nll']:.3f} | - | - |",
    ]
    for name in runs:
        r, info = results[name], infos[name]
        lines.append(f"| {name} | {info.train.samples:,} | {info.steps:,} | {r['tuned_nll']:.3f} | "
                     f"{-r['nll_reduction']:+.1%} | {r['win_rate']:.0%} |")
    keys = list(STYLE_METRICS)
    head = [STYLE_METRICS[k][0] for k in keys] + ["ends by itself", "told apart (AUC)"]
    lines += ["", "| | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]

    def row(label: str, metrics: dict, stop, auc) -> str:
        cells = [f"{metrics[k]:.2f}" for k in keys] + [stop, auc]
        return f"| {label} | " + " | ".join(cells) + " |"

    auc = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines.append(row("me (real)", first["style"]["real"], "1.00", "0.50"))
    lines.append(row("base", first["style"]["base"], f"{first['stop_rate']['base']:.2f}", auc(first["auc"]["base"])))
    for name in runs:
        r = results[name]
        lines.append(row(name, r["style"]["tuned"], f"{r['stop_rate']['tuned']:.2f}", auc(r["auc"]["tuned"])))
    return "\n".join(lines), results


def goals(results: dict) -> list[tuple[str, bool]]:
    """(goal, met) for the run named "reply", as far as the runs allow."""
    if "reply" not in results:
        return []
    r = results["reply"]
    real, tuned = r["style"]["real"], r["style"]["tuned"]
    out = [(f"NLL {r['nll_reduction']:.1%} below the base (goal >= {NLL_GOAL:.0%})", r["nll_reduction"] >= NLL_GOAL)]
    if "sliding" in results:
        out.append((f"reply NLL {r['tuned_nll']:.3f} below sliding's {results['sliding']['tuned_nll']:.3f}",
                    r["tuned_nll"] < results["sliding"]["tuned_nll"]))
    for key in STYLE_METRICS:
        if key == "vocab_overlap":
            continue
        share = key in SHARES
        off = gap(key, tuned[key], real[key])
        limit = SHARE_TOLERANCE if share else STYLE_TOLERANCE
        out.append((f"{STYLE_METRICS[key][0]} {tuned[key]:.2f} vs real {real[key]:.2f}: "
                    + (f"{off:.2f} apart (goal <= {limit:.2f})" if share else f"{off:.0%} off (goal <= {limit:.0%})"),
                    off <= limit))
    stop = r["stop_rate"]["tuned"]
    out.append((f"{stop:.1%} of replies end by themselves (goal >= {STOP_GOAL:.0%})", stop >= STOP_GOAL))
    base_auc, auc = r["auc"]["base"], r["auc"]["tuned"]
    if base_auc is not None and auc is not None:
        target = (base_auc + 0.5) / 2
        out.append((f"AUC {auc:.2f} vs base {base_auc:.2f} (goal <= {target:.2f}, halfway to 0.5)", auc <= target))
    return out


def rows(results: dict) -> list[dict]:
    """The table as rows: my real replies, the base model, then each run (NLL, style metrics, stop rate, AUC)."""
    first = next(iter(results.values()))
    out = [{"model": "me (real)", **first["style"]["real"]},
           {"model": "base", "nll": first["base_nll"], **first["style"]["base"],
            "stop_rate": first["stop_rate"]["base"], "auc": first["auc"]["base"]}]
    for name, r in results.items():
        out.append({"model": name, "nll": r["tuned_nll"], "nll_reduction": r["nll_reduction"],
                    "win_rate": r["win_rate"], **r["style"]["tuned"], "stop_rate": r["stop_rate"]["tuned"],
                    "auc": r["auc"]["tuned"]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("raw", type=Path, help="folder of WhatsApp exports (bench/chitchat_exports.py writes one)")
    p.add_argument("--me", default="Me", help="your name in the exports (default: Me, as chitchat_exports.py writes)")
    p.add_argument("--work", type=Path, default=Path("/tmp/bench_quality"), help="project root for the runs")
    p.add_argument("--defaults", action="store_true",
                   help="train with training_config.yaml as shipped (full epochs) instead of --steps x --batch")
    p.add_argument("--steps", type=int, default=150, help="without --defaults: optimizer steps per run (150)")
    p.add_argument("--batch", type=int, default=4, help="without --defaults: samples per step (4)")
    p.add_argument("--max-seq-length", type=int, default=256, help="without --defaults: model.max_seq_length (256)")
    p.add_argument("--model", default="smollm2-135m", help="model.base_model (default smollm2-135m)")
    p.add_argument("--heldout", type=float, default=0.08, help="share of chats held out (default 0.08)")
    p.add_argument("--eval-samples", type=int, default=200, help="held-out replies scored (default 200)")
    p.add_argument("--style-samples", type=int, default=50, help="held-out contexts replied to (default 50)")
    p.add_argument("--eval-batch", type=int, default=8, help="evaluate.batch_size (default 8; 64 on a GPU)")
    p.add_argument("--compare", default="modes", help=f"comma-separated, of {', '.join(COMPARISONS)} (default modes)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained and evaluated at a time (default 1)")
    p.add_argument("--curve", type=int, default=0,
                   help="log the held-out loss (on up to 300 samples) every N optimizer steps (default 0 = off)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every run, e.g. training.learning_rate=1e-3 (repeatable)")
    p.add_argument("--out", type=Path,
                   help="also write the table's rows, the goals and the training curves as JSON (bench/record.py)")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: print the table of the runs already evaluated in WORK (after a cut-short run)")
    args = p.parse_args(argv)
    compare = args.compare.split(",")
    if unknown := [c for c in compare if c not in COMPARISONS]:
        p.error(f"unknown --compare {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}")
    started = time.time()
    work = args.work.resolve()
    logs = work / "logs" if args.jobs > 1 else None
    if logs:
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True)
    common = ["--config", str(REPO / "training_config.yaml"), "--set", f"model.base_model={args.model}",
              "--set", "model.load_in_4bit=false", *as_flags(args.set)]
    budget = ["--set", "training.logging_steps=10", "--set", "training.save_steps=100000"]
    if args.defaults:
        budget += ["--set", "training.gradient_checkpointing=false"]
    else:
        common += ["--set", f"model.max_seq_length={args.max_seq_length}"]
        budget += ["--max-steps", str(args.steps), "--set", f"training.per_device_train_batch_size={args.batch}",
                   "--set", "training.gradient_accumulation_steps=1", "--set", "training.gradient_checkpointing=false"]
    if args.curve:
        budget += ["--set", f"training.eval_steps={args.curve}"]
    runs = plan_runs(compare, load_config(REPO / "training_config.yaml"))
    if not args.report_only:
        stage(work, None, "extract.py", "--input", str(args.raw.resolve()), "--me", args.me, *common)
        held = split_chats(work / "dataset" / "cleaned", work / "chats" / "train", work / "chats" / "heldout",
                           args.heldout)
        print(f"\nbench_quality: {held} chats held out", flush=True)
    no_split = [*common, "--set", "convert.validation_fraction=0"]
    heldout = work / "heldout" / "personality.jsonl"
    data_dir = {(r["mode"], tuple(r["data"])): None for r in runs.values()}
    data_dir = {key: work / "data" / f"{key[0]}-{slug(list(key[1]))}" for key in data_dir}

    def convert(key) -> None:
        (mode, data), folder = key, data_dir[key]
        stage(work, logs and logs / f"convert-{folder.name}.log", "convert.py",
              "--input", str(work / "chats" / "train"), "--mode", mode, "--output", str(folder / "personality.jsonl"),
              *no_split, *as_flags(list(data)))
        if args.curve:
            curve_file(heldout, folder / "personality.val.jsonl", min(300, args.eval_samples))

    # run -> the run whose trained model it shares (the first one planned with the same data and training)
    trained_as: dict[str, str] = {}
    for name, r in runs.items():
        trained_as[name] = next(n for n, o in runs.items() if (o["mode"], o["trained"]) == (r["mode"], r["trained"]))

    def train_and_evaluate(name: str) -> str | None:
        """Train `name`, then evaluate it and every run that shares its model; the error, if one failed."""
        try:
            pipeline(name)
        except RuntimeError as e:
            print(f"bench_quality: {name}: {e}", flush=True)
            return f"{name}: {e}"
        return None

    def pipeline(name: str) -> None:
        r, log = runs[name], logs and logs / f"{name}.log"
        shutil.rmtree(work / "outputs" / name, ignore_errors=True)
        stage(work, log, "train.py", "--data", str(data_dir[(r["mode"], tuple(r["data"]))] / "personality.jsonl"),
              "--run", name, *common, *budget, *as_flags(r["trained"]))
        sharing = [n for n, t in trained_as.items() if t == name]
        for other in sharing[1:]:
            shutil.rmtree(work / "outputs" / other, ignore_errors=True)
            shutil.copytree(work / "outputs" / name, work / "outputs" / other,
                            ignore=shutil.ignore_patterns("checkpoint-*", "eval*"))
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(evaluate, sharing))

    def evaluate(name: str) -> None:
        stage(work, logs and logs / f"{name}.log", "evaluate.py", "--run", str(work / "outputs" / name),
              "--data", str(heldout), *common, "--max-samples", str(args.eval_samples),
              "--set", f"evaluate.style_samples={args.style_samples}",
              "--set", f"evaluate.batch_size={args.eval_batch}", *as_flags(runs[name]["generation"]))

    failed = []
    if not args.report_only:
        stage(work, None, "convert.py", "--input", str(work / "chats" / "heldout"), "--mode", "reply",
              "--output", str(heldout), *no_split)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(convert, data_dir))
            order = sorted(set(trained_as.values()), key=list(runs).index)
            failed = [e for e in pool.map(train_and_evaluate, order) if e]

    what = ("training_config.yaml as shipped, full epochs" if args.defaults else
            f"{args.steps} steps x batch {args.batch}, max_seq_length {args.max_seq_length}") \
        + "".join(f", {x}" for x in args.set)
    report, results = table(work, runs, what)
    checks = goals(results)
    if checks:
        report += "\n\nGoals, for the run named reply:\n"
        report += "\n".join(f"- {'met' if ok else 'NOT met'}: {t}" for t, ok in checks)
    (work / "bench_quality.md").write_text(report + "\n", encoding="utf-8")
    curves = {name: RunRecord.load(work / "outputs" / name).eval_losses for name in results}
    (work / "bench_quality.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.out and results:
        first = next(iter(results.values()))
        record.write(args.out, rows(results), argv, compare=args.compare, base_model=first["base_model"],
                     budget=what, heldout_replies=first["samples"], style_contexts=first["style_samples"],
                     goals=[{"goal": t, "met": ok} for t, ok in checks], curves=curves, failed=failed)
    print(f"\n{report}\n\nbench_quality: {time.time() - started:.0f} s; table in {work / 'bench_quality.md'}, "
          f"every evaluation in {work / 'bench_quality.json'}" + "".join(f"\nFAILED: {e}" for e in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
