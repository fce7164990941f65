"""Drop the samples that cannot train anything - no user turn, no assistant turn, or an empty turn - from a training
file in place (the original is kept as FILE.bak; a later repair adds FILE.bak2, ...). Complete samples are kept byte
for byte. A line that is not JSON stops it with nothing changed: fix_dataset.py may still repair that line.

    python clean_incomplete.py                              # dataset/final/personality.jsonl
    python clean_incomplete.py --input data.jsonl --dry-run # report only, change nothing
"""

import sys
import time
from collections import Counter

from hive import cli
from hive.checks import clean_file


def main(argv=None) -> int:
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--input", key="paths.final", metavar="FILE", help="JSONL file (default: paths.final)")
    parser.add_argument("--dry-run", action="store_true", help="report what would be dropped; write nothing")
    args, cfg = cli.parse(parser, argv)
    started = time.time()
    path = cfg.path("final")
    print(f"clean: settings\n  input: {path}\n  dry run: {args.dry_run}", flush=True)
    report = clean_file(path, args.dry_run)
    cli.print_list("dropped", [f"line {p.line}: {p.kind}" for p in report.dropped])
    written = ("nothing to drop" if not report.dropped
               else "not written (dry run)" if args.dry_run else f"{path} (original: {report.backup})")
    rows = {"lines": report.lines, "kept": report.kept, "dropped": len(report.dropped),
            **{f"dropped: {k}": n for k, n in sorted(Counter(p.kind for p in report.dropped).items())}, "file": written}
    cli.print_summary("clean", rows, f"python validate_dataset.py --input {path}", started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
