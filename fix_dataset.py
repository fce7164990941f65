"""Repair a training file in place (the original is kept as FILE.bak; a later repair adds FILE.bak2, ...): byte order
marks, invalid UTF-8, trailing garbage, several JSON objects on one line, invalid escapes, duplicated keys, role names
in the wrong case or aliases (human/gpt/bot/ai/model/me, ...), and the shapes {"user", "assistant"},
{"prompt", "completion"|"response"} and ShareGPT {"conversations": [{"from", "value"}]}. Every line is kept,
repaired, or listed as dropped with its number.
Exit 0: the file is now clean; 1: lines were dropped or problems remain; 2: file missing or unreadable.

    python fix_dataset.py                                   # dataset/final/personality.jsonl
    python fix_dataset.py --input data.jsonl --dry-run      # report only, change nothing
"""

import sys
import time
from collections import Counter

from hive import cli
from hive.checks import fix_file


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--input", key="paths.final", metavar="FILE", help="JSONL file (default: paths.final)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be repaired; write nothing")
    args, cfg = cli.parse(parser, argv)
    started = time.time()
    path = cfg.path("final")
    print(f"fix: settings\n  input: {path}\n  dry run: {args.dry_run}", flush=True)
    report = fix_file(path, args.dry_run)
    repairs = Counter(kind for rs in report.fixed.values() for kind in dict.fromkeys(r.split(":")[0] for r in rs))
    for title, rows in (("repaired", [f"line {n}: {'; '.join(rs)}" for n, rs in report.fixed.items()]),
                        ("dropped", [f"line {p.line}: {p.detail}" for p in report.dropped]),
                        ("still invalid (kept; validate_dataset.py / clean_incomplete.py)",
                         [str(p) for p in report.remaining])):
        cli.print_list(title, rows)
    written = ("nothing to repair" if not report.changed
               else "not written (dry run)" if args.dry_run else f"{path} (original: {report.backup})")
    rows = {"lines": report.lines, "lines repaired": len(report.fixed), "lines dropped": len(report.dropped),
            "samples written": len(report.out), "problems left": len(report.remaining),
            **{f"repair: {k}": n for k, n in sorted(repairs.items())}, "file": written}
    cli.print_summary("fix", rows, f"python validate_dataset.py --input {path}", started)
    return 1 if report.dropped or report.remaining else 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
