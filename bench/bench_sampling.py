"""Why sampling settings change where replies end. Teacher-forced on held-out conversations (no generation): at every
token of my real reply, the probability that the sampler would pick the end-of-turn token, and a line break, under
each sampling setting, computed with transformers' own logits processors in generate()'s order (repetition penalty
over prompt and reply so far, then temperature, top_k, top_p).

    python bench/bench_sampling.py outputs/<run> --data dataset/final/personality.val.jsonl --samples 200

A setting that lowers the end-of-turn probability where my reply really ends makes replies run on; one that lowers
the line-break probability where I break lines makes replies one long line. The repetition penalty does both: the
end-of-turn marker and the line breaks of the chat template are in every earlier turn of the prompt.
"""

import argparse
import sys
from pathlib import Path

import record

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hive import conversations, runs, templates  # noqa: E402
from hive.config import load_config  # noqa: E402
from hive.evaluation import encode_sample, load_run_model, spread  # noqa: E402

# name -> (repetition_penalty, temperature, top_k, top_p); "shipped" is read from the config
SETTINGS = {
    "the model's own distribution": (1.0, 1.0, 0, 1.0),
    "earlier defaults (penalty 1.1, T 0.7, top_p 0.9)": (1.1, 0.7, 50, 0.9),
    "earlier defaults without the penalty": (1.0, 0.7, 50, 0.9),
    "penalty 1.1 alone": (1.1, 1.0, 0, 1.0),
}


def processors(rp: float, temperature: float, top_k: int, top_p: float) -> list:
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    chain = [RepetitionPenaltyLogitsProcessor(rp)] if rp != 1.0 else []
    chain += [TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []
    chain += [TopKLogitsWarper(top_k)] if top_k > 0 else []
    chain += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
    return chain


def measure(model, tokenizer, samples: list[list[dict]], max_len: int, settings: dict) -> tuple[dict, dict]:
    """Mean probabilities per setting, and how many reply positions of each kind they average over."""
    import torch
    from tqdm import tqdm

    eot = templates.end_of_turn(tokenizer)
    eot_id = tokenizer.convert_tokens_to_ids(eot)
    break_ids = {i for t, i in tokenizer.get_vocab().items() if "\n" in tokenizer.convert_tokens_to_string([t])}
    breaks = torch.tensor(sorted(break_ids), device=next(model.parameters()).device)
    chains = {name: processors(*values) for name, values in settings.items()}
    sums = {name: {"end": 0.0, "inside": 0.0, "break": 0.0} for name in settings}
    counts = {"end": 0, "inside": 0, "break": 0}
    device = next(model.parameters()).device
    with torch.no_grad():
        for sample in tqdm(samples, desc="replies", unit="reply"):
            encoded = encode_sample(tokenizer, sample, max_len, eot)
            if encoded is None:
                continue
            ids, n = encoded
            row = torch.tensor([ids], device=device)
            logits = model(input_ids=row).logits[0].float()
            for pos in range(len(ids) - n, len(ids)):  # predicting ids[pos] from ids[:pos]
                kind = "end" if ids[pos] == eot_id else "break" if ids[pos] in break_ids else "inside"
                counts[kind] += 1
                for name, chain in chains.items():
                    scores = logits[pos - 1][None]
                    for p in chain:
                        scores = p(row[:, :pos], scores)
                    probs = torch.softmax(scores, dim=-1)[0]
                    value = probs[breaks].sum() if kind == "break" else probs[eot_id]
                    sums[name][kind] += value.item()
    means = {name: {k: v / max(counts[k], 1) for k, v in s.items()} for name, s in sums.items()}
    return means, counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a train.py run folder")
    p.add_argument("--data", type=Path, required=True, help="held-out JSONL (convert.py's validation file)")
    p.add_argument("--samples", type=int, default=200, help="held-out replies, spread over the file (default 200)")
    p.add_argument("--config", type=Path, default=REPO / "training_config.yaml", help="whose generation settings ship")
    p.add_argument("--out", type=Path, help="also write the table's rows as JSON (bench/record.py)")
    args = p.parse_args(argv)
    gen = load_config(args.config).generation
    settings = {f"shipped (penalty {gen.repetition_penalty}, T {gen.temperature}, top_p {gen.top_p})":
                (gen.repetition_penalty, gen.temperature, gen.top_k, gen.top_p), **SETTINGS}
    run = runs.load_run(args.run.resolve(), args.run.resolve().parent)
    model, tokenizer = load_run_model(run)
    model.merge_adapter()
    samples = spread(conversations.read(args.data), args.samples)
    means, counts = measure(model, tokenizer, samples, run.record.max_seq_length, settings)
    lines = [f"{args.samples} held-out replies of {args.data.name}, run {run.folder.name}: mean probability of", "",
             f"| sampling | end-of-turn where my reply ends ({counts['end']}) | end-of-turn inside it "
             f"({counts['inside']}) | a line break where I break the line ({counts['break']}) |",
             "|---|---:|---:|---:|"]
    lines += [f"| {name} | {m['end']:.3f} | {m['inside']:.4f} | {m['break']:.3f} |" for name, m in means.items()]
    print("\n".join(lines))
    if args.out:
        record.write(args.out, [{"sampling": name, **m} for name, m in means.items()], argv, run=run.folder.name,
                     base_model=run.base_model, replies=args.samples, positions=counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
