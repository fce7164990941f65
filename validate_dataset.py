"""Check a training file before you train on it: JSON, schema, roles, turn order, empty turns, duplicates (a warning)
and, with a tokenizer, length against model.max_seq_length. Exit 0: ready; 1: problems found; 2: file missing or
unreadable.

    python validate_dataset.py                                  # dataset/final/personality.jsonl
    python validate_dataset.py --input dataset/final/personality.val.jsonl --sample 3
    python validate_dataset.py --tokenizer smollm2-135m         # count tokens with this tokenizer
"""

import json
import sys
import time

from hive import cli
from hive.checks import validate
from hive.tokens import ESTIMATE, load_counter


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--input", key="paths.final", metavar="FILE", help="JSONL file (default: paths.final)")
    parser.add_argument("--tokenizer", metavar="NAME",
                        help="tokenizer for the length check (default: model.base_model's)")
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="show the first N samples")
    args, cfg = cli.parse(parser, argv)
    started = time.time()
    path = cfg.path("final")
    cli.print_settings("validate", cfg, ["model"])
    print(f"  input: {path}", flush=True)
    counter = (None if args.tokenizer == ESTIMATE
               else load_counter(args.tokenizer, cfg.model.base_model, cfg.model.chat_template))
    if counter is not None and counter.exact:
        print(f"  tokens counted with: {counter.name}")
    report = validate(path, counter, cfg.model.max_seq_length)
    for sample in report.samples[: args.sample]:
        print("\n" + "\n".join(f"  {m['role']:>9}: {json.dumps(m['content'], ensure_ascii=False)[:200]}"
                               for m in sample))
    for title, found in (("duplicates", report.warnings), ("problems", report.problems)):
        cli.print_list(title, [str(p) for p in found])
    cli.print_summary("validate", {**report.stats(), "verdict": report.verdict()},
                      None if report.problems else "python train.py", started)
    return 1 if report.problems or not report.samples else 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
