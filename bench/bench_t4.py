"""Kaggle's T4 on a bigger GPU: fp16 (no bf16) and a 15 GiB memory cap, Hive's default recipe at Llama-3.2-3B shapes
on real chat samples, with both backends: the loss must be finite and falling, the peak memory under the cap, and a
checkpoint, a resume from it and an export must work.

    python bench/bench_t4.py --data .bench_data/chitchat.jsonl.gz --out t4.json     # any CUDA GPU with 15+ GiB

Every process this starts imports bench/t4/sitecustomize.py (EMULATE_T4=1): torch then reports no bf16, as on a T4,
so Hive picks fp16 for training, scoring and export checks, and a process may allocate at most 15 GiB. Per backend:
train.py for --steps optimizer steps (a checkpoint halfway and at the end), train.py --resume for half as many more,
export_model.py --format lora (--gguf adds a q8_0 GGUF of the merged model), and chat.py --prompt on the run (the
adapter on the base, in fp16 on the GPU). The model has random weights (the GPU machine has no hub; speed and memory
do not depend on the values), so its loss falls from ln(vocabulary) as it learns the chats' token statistics, and its
replies are noise: the export's reply check (export.verify) is off, chat.py only has to answer.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import record  # noqa: E402
from bench_train import plain_data, sample_texts  # noqa: E402

from hive import runs  # noqa: E402
from hive.synthetic import LLAMA_3B, TINY, build_model_dir  # noqa: E402

CAP_GIB = 15


def stage(script: str, args: list[str], home: Path, log: Path) -> tuple[int, float, str]:
    """Run a stage script as a T4 would (EMULATE_T4 in its environment); (exit code, seconds, output)."""
    env = {**os.environ, "EMULATE_T4": "1", "HIVE_HOME": str(home), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "bench" / "t4"), os.environ.get("PYTHONPATH", "")])}
    started = time.time()
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\n$ python {script} {' '.join(args)}\n")
        f.flush()
        done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=home, env=env, stdout=f,
                              stderr=subprocess.STDOUT, text=True)
    text = log.read_text(encoding="utf-8", errors="replace")
    return done.returncode, time.time() - started, text[text.rindex(f"$ python {script}"):]


def one_backend(backend: str, args, data: Path, work: Path) -> dict:
    home, log = work / backend, work / f"{backend}.log"
    home.mkdir(parents=True, exist_ok=True)
    half = max(args.steps // 2, 1)
    common = ["--model", str(args.model_dir), "--data", str(data), "--run", "t4",
              "--set", f"training.backend={backend}", "--set", f"training.save_steps={half}",
              "--set", "training.logging_steps=1", "--set", f"training.eval_steps={args.steps}",
              "--set", "training.save_minutes=0"]
    row: dict = {"backend": backend}
    code, row["train_s"], out = stage("train.py", [*common, "--max-steps", str(args.steps)], home, log)
    if code:
        return {**row, "failed": f"train exit {code}: {out.strip().splitlines()[-1][:300]}"}
    first = runs.load_run(home / "outputs" / "t4", home / "outputs").record
    row["checkpoints"] = [p.name for p in runs.checkpoints(home / "outputs" / "t4")]
    code, row["resume_s"], out = stage("train.py", [*common, "--max-steps", str(args.steps + half), "--resume"],
                                       home, log)
    if code:
        return {**row, "failed": f"resume exit {code}: {out.strip().splitlines()[-1][:300]}"}
    record = runs.load_run(home / "outputs" / "t4", home / "outputs").record
    losses = [loss for _, loss in record.losses]
    formats = "lora,gguf" if args.gguf else "lora"
    code, row["export_s"], out = stage("export_model.py", ["--input", "t4", "--format", formats, "--quantization",
                                                           "q8_0", "--name", "t4", "--set", "export.verify=false"],
                                       home, log)
    export = runs.ExportRecord.load(home / "exports" / "t4") if code == 0 else None
    chat_code, row["chat_s"], _ = stage("chat.py", ["t4", "--prompt", "hey, free tonight?", "--max-new-tokens", "8"],
                                        home, log)
    row.update({
        "precision": record.precision, "load_in_4bit": record.load_in_4bit, "steps": record.steps,
        "resumed_from": Path(record.resumed_from).name if record.resumed_from else None,
        "first_loss": sum(losses[:3]) / 3, "last_loss": sum(losses[-3:]) / 3,
        "finite": all(math.isfinite(x) for x in losses), "eval_loss": record.eval_loss,
        "peak_gib": max(first.peak_gpu_gib or 0, record.peak_gpu_gib or 0),
        "tok_s": record.tokens_per_second,
        "export": [f"{a.format} {a.bytes / 1e6:,.0f} MB" for a in export.artifacts] if export
        else f"exit {code}: {out.strip().splitlines()[-1][:200]}",
        "chat": "answers" if chat_code == 0 else f"exit {chat_code}",
    })
    row["ok"] = (record.precision == "fp16" and row["finite"] and row["last_loss"] < row["first_loss"]
                 and row["peak_gib"] < CAP_GIB and row["resumed_from"] == f"checkpoint-{args.steps}"
                 and record.steps == args.steps + half and export is not None and chat_code == 0)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| backend | precision | steps (resumed from) | loss first → last 3 steps | peak GiB (cap 15) | "
             "real tok/s | checkpoints | export | chat.py | train / resume / export s | all checks |",
             "|---|---|---|---|---:|---:|---|---|---|---|---|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['backend']} | failed: {r['failed']} ||||||||||")
            continue
        lines.append(
            f"| {r['backend']} | {r['precision']} | {r['steps']} ({r['resumed_from']}) | "
            f"{r['first_loss']:.2f} → {r['last_loss']:.2f} | {r['peak_gib']:.2f} | {r['tok_s'] or 0:,.0f} | "
            f"{', '.join(r['checkpoints'])} | "
            f"{'; '.join(r['export']) if isinstance(r['export'], list) else r['export']} | "
            f"{r['chat']} | {r['train_s']:.0f} / {r['resume_s']:.0f} / {r['export_s']:.0f} | "
            f"{'pass' if r['ok'] else 'FAIL'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="convert.py output (messages JSONL, or .jsonl.gz)")
    parser.add_argument("--samples", type=int, default=600, help="training samples (the first N of --data)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps before the resume")
    parser.add_argument("--backends", default="unsloth,transformers")
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "hive-bench-llama3b")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model (checks the harness in minutes)")
    parser.add_argument("--gguf", action="store_true", help="also export a q8_0 GGUF of the merged model")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here (bench/record.py)")
    parser.add_argument("--work", type=Path, help="folder for the runs and logs (default: a new temporary folder)")
    args = parser.parse_args(argv)

    source = plain_data(args.data)
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    args.work = args.work or Path(tempfile.mkdtemp(prefix="bench-t4-"))
    data = args.work / "data" / "personality.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(lines[:args.samples]) + "\n", encoding="utf-8")
    data.with_name("personality.val.jsonl").write_text("\n".join(lines[-32:]) + "\n", encoding="utf-8")
    build_model_dir(args.model_dir, sample_texts(source), TINY if args.tiny else LLAMA_3B,
                    8192 if args.tiny else 128256)
    rows = []
    for backend in args.backends.split(","):
        rows.append(one_backend(backend, args, data, args.work))
        print(json.dumps(rows[-1]), flush=True)
        if args.out:
            record.write(args.out, rows, argv)
    print(table(rows))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
