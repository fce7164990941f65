"""Stage 1: WhatsApp exports (dataset/raw) -> one JSONL per chat (dataset/cleaned), every message of every
participant, classified (text, media, deleted, ...), with URLs, e-mails, phone, IBAN and card numbers redacted.

    python extract.py                                   # dataset/raw -> dataset/cleaned, "me" detected
    python extract.py --me "Sam" --me "Sam K"           # your name(s) as they appear in the exports
    python extract.py --input ~/exports --output /tmp/cleaned --set extract.pseudonymize=true
    python extract.py --jobs 1                          # one process (default: an export of 8 MB or more is read
                                                        # by one process per core, at most 4)

Put exported chats (.txt, or the .zip WhatsApp makes; any sub-folder) in dataset/raw first; the output folder must
lie outside it. Writes <chat>.jsonl per chat and _summary.json (per file: format, date order and what decided it,
kinds, senders, notes, or why it was skipped; who is "me" and why); with extract.pseudonymize, the real names behind
"Person N" go to private/pseudonyms.json (paths.private), not beside them.
"""

import sys
import time

from hive import cli, extraction


def main(argv=None) -> int:
    started = time.time()
    parser = cli.make_parser(__doc__)
    cli.config_flag(parser, "--input", key="paths.raw", metavar="DIR", help="folder of exports (paths.raw)")
    cli.config_flag(parser, "--output", key="paths.cleaned", metavar="DIR", help="output folder (paths.cleaned)")
    cli.config_flag(parser, "--me", key="extract.me", metavar="NAME", action="append",
                    help="your name as it appears in the exports (repeatable; extract.me)")
    parser.add_argument("--jobs", type=int, metavar="N",
                        help=f"processes per large export (default: one per core, at most {extraction.MAX_JOBS})")
    args, cfg = cli.parse(parser, argv)
    cli.print_settings("extract", cfg, ["paths", "extract"])

    result = extraction.run(cfg, jobs=args.jobs)

    print("\n" + extraction.table(result))
    print(f"\nme: {', '.join(result.me.names)} ({result.me.reason})")
    for line in result.me.evidence:
        print(f"  evidence: {line}")
    if result.removed:
        print(f"\nremoved {len(result.removed)} temporary file(s) that an interrupted run left in {result.output}")
    if result.stale:
        print(f"\nwarning: {len(result.stale)} older file(s) in {result.output} are not from this run and convert.py "
              f"will read them too; delete them if their exports are gone: {', '.join(result.stale[:5])}")
    cli.print_summary("extract", {
        "chats written": len(result.written),
        "files skipped": len(result.skipped),
        "messages": sum(c.messages for c in result.written),
        "my messages": sum(c.my_messages for c in result.written),
        "by kind": ", ".join(f"{k} {n:,}" for k, n in result.kinds.most_common()),
        "output": str(result.output),
        "summary": str(result.summary_path),
        **({"pseudonyms (keep private)": str(result.mapping_path)} if result.mapping_path else {}),
    }, next_command="python convert.py", started=started)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(lambda: main()))
