"""Where the time of one padding-free training step goes (CUDA, Unsloth): forward + backward of one packed row
against rows of the same tokens cut into different segment layouts.

    python bench/bench_packing.py --data .bench_data/chitchat.jsonl.gz --model-dir /tmp/m   # CUDA GPU + Unsloth

Without a varlen attention kernel (flash-attn, xformers, or torch >= 2.12's varlen_attn with GQA), Unsloth attends a
padding-free row with one SDPA call per run of equal-length samples. The layouts tell that cost apart from the rest:
  real      the samples as the sampler draws them (random order)
  sorted    the same samples, longest first (equal lengths become one run)
  bucketN   the same samples, each padded at its end to a multiple of N tokens, longest first
  equal     the same number of tokens in equally long segments (one run)
  dense     the same number of tokens as one sequence
  groupN    samples drawn from one length bucket (what a length-grouped sampler feeds), padded at their end to the
            bucket's length: one run, with the pad tokens as the price
  groupN-rows  the same samples as a padded batch (one row each) instead of one padding-free row: Unsloth compiles
            each decoder layer for padded batches, but not for padding-free rows
  real-rows the samples as drawn, as a padded batch (right-padded to the longest)
Model and data as in bench_train.py (its --model-dir is reused).
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import record  # noqa: E402  (bench/, the script's folder)

from hive import batching  # noqa: E402  (imports nothing heavy)


def layouts(samples: list[dict], group: list[dict], bucket: int,
            pad_id: int) -> dict[str, list[tuple[list[int], list[int]]]]:
    """name -> segments (input_ids, labels) of one row; `group` is a draw of samples from one length bucket."""
    pairs = [(s["input_ids"], s["labels"]) for s in samples]
    total = sum(len(ids) for ids, _ in pairs)
    longest_first = sorted(pairs, key=lambda p: -len(p[0]))

    def padded(ids, labels):
        return batching.pad_to_bucket(ids, labels, pad_id, bucket)

    flat_ids = [t for ids, _ in pairs for t in ids]
    flat_labels = [t for _, labels in pairs for t in labels]
    n, size = len(pairs), total // len(pairs)
    grouped = [padded(s["input_ids"], s["labels"]) for s in group]
    return {
        "real": pairs,
        "sorted": longest_first,
        f"bucket{bucket}": [padded(*p) for p in longest_first],
        "equal": [(flat_ids[i * size:(i + 1) * size], flat_labels[i * size:(i + 1) * size]) for i in range(n)],
        "dense": [(flat_ids, flat_labels)],
        f"group{bucket}": grouped,
        f"group{bucket}-rows": grouped,  # the same segments, fed as a padded batch (see step)
        "real-rows": pairs,
    }


def runs(segments) -> int:
    lengths = [len(ids) for ids, _ in segments]
    return sum(1 for i, n in enumerate(lengths) if i == 0 or lengths[i - 1] != n)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="convert.py output (messages JSONL, or .jsonl.gz)")
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "hive-bench-llama3b")
    parser.add_argument("--batches", default="16,64", help="samples per row")
    parser.add_argument("--bucket", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per layout (after 2 warm-up)")
    parser.add_argument("--passes", type=int, default=1, help="measure every layout this many times (later passes "
                        "show the steady state, once every segment shape has been seen)")
    parser.add_argument("--layouts", help="only these layouts (comma-separated names)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here (bench/record.py)")
    args = parser.parse_args(argv)

    import unsloth  # noqa: F401  (first, before transformers)

    # isort: split
    import torch

    from bench.bench_train import plain_data, sample_texts
    from hive import templates, training
    from hive.config import load_config
    from hive.synthetic import LLAMA_3B, build_model_dir

    data = plain_data(Path(args.data))
    build_model_dir(args.model_dir, sample_texts(data), LLAMA_3B)
    # the model as train.py loads it (Hive's LoRA settings); a long max_seq_length, so the dense layout is not cut
    cfg = load_config(REPO / "training_config.yaml", {
        "model.base_model": str(args.model_dir), "model.load_in_4bit": True, "model.max_seq_length": 32768,
        "training.backend": "unsloth"})
    model, tokenizer, _, _ = training.load(cfg, training.make_plan(cfg))
    model.train()
    eot = templates.end_of_turn(tokenizer)
    encoded = [e for e in (training.encode(tokenizer, m, 2048, True, eot)
                           for m in training.read_samples(data)[:2000]) if e]
    rng = random.Random(0)
    buckets = {}
    for e in encoded:
        buckets.setdefault(batching.bucket_length(len(e["input_ids"]), args.bucket), []).append(e)
    bucket_of_each = [b for b, members in buckets.items() for _ in members]
    params = [p for p in model.parameters() if p.requires_grad]
    import bitsandbytes as bnb

    optimizer = bnb.optim.AdamW8bit(params, lr=1e-5)

    def step(segments, with_optimizer=False, rows=False) -> float:
        if rows:  # right-padded; Unsloth drops the attention mask in training (causal: no real token sees a pad)
            width = max(len(s) for s, _ in segments)
            ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s, _ in segments], device="cuda")
            labels = torch.tensor([s + [-100] * (width - len(s)) for _, s in segments], device="cuda")
            kwargs = {}
        else:
            ids = torch.tensor([t for s, _ in segments for t in s], device="cuda")[None]
            labels = torch.tensor([t for _, s in segments for t in s], device="cuda")[None]
            kwargs = {"position_ids": torch.cat([torch.arange(len(s)) for s, _ in segments]).cuda()[None]}
        torch.cuda.synchronize()
        started = time.perf_counter()
        loss = model(input_ids=ids, labels=labels, **kwargs).loss
        loss.backward()
        if with_optimizer:
            torch.nn.utils.clip_grad_norm_(params, 0.3)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        return time.perf_counter() - started

    q = torch.empty(1, 24, 128, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.empty(1, 8, 128, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    print("SDPA picks", torch._fused_sdp_choice(q, k, k, is_causal=True, enable_gqa=True),
          "for a causal GQA training call (0 math, 1 flash, 2 efficient, 3 cudnn)", flush=True)
    rows = []
    for batch in [int(b) for b in args.batches.split(",")]:
        draws = [rng.sample(encoded, batch) for _ in range(args.steps + 2)]
        groups = []
        for _ in draws:  # a bucket in proportion to its samples, as a grouped sampler meets them
            members = buckets[rng.choice(bucket_of_each)]
            groups.append(rng.sample(members, min(batch, len(members))))
        per_draw = [layouts(d, g, args.bucket, tokenizer.pad_token_id) for d, g in zip(draws, groups)]
        names = [n for n in per_draw[0] if not args.layouts or n in args.layouts.split(",")]
        for n, name in enumerate(names * args.passes):
            for variant in (False, True) if name == "real" else (False,):
                torch.cuda.reset_peak_memory_stats()
                times = [step(per_draw[i][name], variant, name.endswith("-rows")) for i in range(args.steps + 2)][2:]
                timed = range(2, args.steps + 2)
                real = sum(sum(len(s["input_ids"]) for s in d)
                           for d in (groups if name.startswith("group") else draws)[2:])
                padded = name.endswith("-rows")
                row_tokens = statistics.mean(
                    len(per_draw[i][name]) * max(len(s) for s, _ in per_draw[i][name]) if padded
                    else sum(len(s) for s, _ in per_draw[i][name]) for i in timed)
                row = {"batch": batch, "pass": 1 + n // len(names),
                       "layout": name + (" + clip + AdamW8bit" if variant else ""),
                       "runs": 1 if padded else statistics.mean(runs(per_draw[i][name]) for i in timed),
                       "row_tokens": row_tokens, "ms": 1000 * statistics.median(times),
                       "real_tok_s": real / sum(times),
                       "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    record.write(args.out, rows, argv, bucket=args.bucket)
    print("| samples | pass | layout | SDPA runs per layer | row tokens | median ms per step | real tok/s | "
          "peak GiB |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['pass']} | {r['layout']} | {r['runs']:.1f} | {r['row_tokens']:,.0f} | "
              f"{r['ms']:.0f} | {r['real_tok_s']:,.0f} | {r['peak_gib']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
