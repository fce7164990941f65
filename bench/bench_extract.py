"""Benchmark: extract.py against whatstk (PyPI) and whatsapp-chat-parser (npm) on one large Android export.

    python bench/bench_extract.py                            # renders /tmp/hive_bench/big.txt (1M lines) if missing
    python bench/bench_extract.py --input FILE --runs 5
    python bench/bench_extract.py --npm-dir /tmp/hive_npm    # where `npm install whatsapp-chat-parser` was run

Each tool runs in its own process under /usr/bin/time, so the peak RSS is that tool's alone (Python start-up and
imports included). Hive runs the real stage: `extract.py --input DIR --output DIR --me NAME` (parse, classify,
redact, write JSONL). Prints: tool, seconds (median of --runs; the slow peers run once), peak RSS MB, messages.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

WHATSTK = """
import sys, whatstk
df = whatstk.df_from_whatsapp(sys.argv[1], max_size=10**12)
print(len(df))
"""
NODE = """
const fs = require('fs');
const { parseString } = require(process.argv[2]);
console.log(parseString(fs.readFileSync(process.argv[1], 'utf8')).length);
"""


def timed(cmd: list[str], env=None) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of one run of `cmd` in a fresh process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        proc = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %M"] + cmd, capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
        seconds, kb = t.read().split()[-2:]
    return float(seconds), int(kb) / 1024, proc.stdout


def bench_hive(file: Path, me: str, runs: int) -> tuple[list[float], float, int]:
    times, peak = [], 0.0
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            s, mb, _ = timed([sys.executable, str(REPO / "extract.py"), "--input", str(file.parent),
                              "--output", out, "--me", me], env={**os.environ, "HIVE_HOME": out})
            times.append(s)
            peak = max(peak, mb)
        n = sum(1 for _ in open(Path(out) / f"{file.stem}.jsonl", encoding="utf-8"))
    return times, peak, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, default=Path("/tmp/hive_bench/big.txt"),
                   help="an Android export alone in its folder (rendered from chitchat-dataset when missing)")
    p.add_argument("--min-lines", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3, help="runs of Hive (median reported)")
    p.add_argument("--peer-runs", type=int, default=1, help="runs of each peer parser")
    p.add_argument("--npm-dir", type=Path, default=Path("/tmp/hive_npm"),
                   help="folder where `npm install whatsapp-chat-parser` was run (skipped when absent)")
    p.add_argument("--skip-whatstk", action="store_true")
    args = p.parse_args(argv)

    from chitchat_exports import REFERENCE_SENDER, friend_name, write_single

    if not args.input.exists():
        print(f"rendering {args.input} ({args.min_lines:,} lines) from chitchat-dataset ...", flush=True)
        write_single(args.input, args.min_lines)
    lines = sum(1 for _ in open(args.input, encoding="utf-8"))
    print(f"input: {args.input} ({lines:,} lines, {args.input.stat().st_size / 1e6:.0f} MB)", flush=True)

    results = []
    times, mb, n = bench_hive(args.input, friend_name(REFERENCE_SENDER), args.runs)
    results.append(("hive extract.py", times, mb, n))
    print(f"hive runs: {', '.join(f'{t:.2f}' for t in times)} s", flush=True)
    if not args.skip_whatstk:
        runs = [timed([sys.executable, "-c", WHATSTK, str(args.input)]) for _ in range(args.peer_runs)]
        results.append(("whatstk (PyPI)", [r[0] for r in runs], max(r[1] for r in runs), int(runs[0][2])))
    module = args.npm_dir / "node_modules" / "whatsapp-chat-parser"
    if module.exists():
        runs = [timed(["node", "-e", NODE, str(args.input), str(module)]) for _ in range(args.peer_runs)]
        results.append(("whatsapp-chat-parser (npm)", [r[0] for r in runs], max(r[1] for r in runs),
                        int(runs[0][2])))
    else:
        print(f"whatsapp-chat-parser skipped: run `npm install whatsapp-chat-parser` in {args.npm_dir}")

    print(f"\n{'tool':<28}{'seconds':>9}{'peak RSS MB':>13}{'messages':>12}")
    for name, times, mb, n in results:
        print(f"{name:<28}{statistics.median(times):>9.2f}{mb:>13.0f}{n:>12,}")
    print(json.dumps({name: {"seconds": times, "peak_rss_mb": round(mb), "messages": n}
                      for name, times, mb, n in results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
