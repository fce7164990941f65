"""Benchmark: extract.py against whatstk (PyPI) and whatsapp-chat-parser (npm) on one large Android export.

    python bench/bench_extract.py                            # renders /tmp/hive_bench/big.txt (1M lines) if missing
    python bench/bench_extract.py --input FILE --runs 5
    python bench/bench_extract.py --npm-dir /tmp/hive_npm    # where `npm install whatsapp-chat-parser` was run

Each tool runs in its own process under /usr/bin/time, so the peak RSS is that tool's alone (Python start-up and
imports included). Hive runs the real stage: `extract.py --input DIR --output DIR --me NAME` (parse, classify,
redact, write JSONL). Prints: tool, wall and CPU seconds (median of --runs; the slow peers run --peer-runs times), peak RSS MB,
messages parsed.
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


def timed(cmd: list[str], env=None) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MB, stdout) of one run of `cmd` in a fresh process.

    CPU time (user + system) is reported beside wall time because the shared machine is often busy: then wall
    time mostly measures the wait for a core."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        proc = subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %U %S %M"] + cmd, capture_output=True,
                              text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()[-500:]}")
        wall, user, system, kb = t.read().split()[-4:]
    return float(wall), float(user) + float(system), int(kb) / 1024, proc.stdout


def bench_hive(file: Path, me: str, runs: int) -> list[tuple[float, float, float, int]]:
    results = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            wall, cpu, mb, _ = timed([sys.executable, str(REPO / "extract.py"), "--input", str(file.parent),
                                      "--output", out, "--me", me], env={**os.environ, "HIVE_HOME": out})
            n = sum(1 for _ in open(Path(out) / f"{file.stem}.jsonl", encoding="utf-8"))
            results.append((wall, cpu, mb, n))
    return results


def peer(cmd: list[str], runs: int) -> list[tuple[float, float, float, int]]:
    return [(wall, cpu, mb, int(out)) for wall, cpu, mb, out in (timed(cmd) for _ in range(runs))]


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

    results = {"hive extract.py": bench_hive(args.input, friend_name(REFERENCE_SENDER), args.runs)}
    if not args.skip_whatstk:
        results["whatstk (PyPI)"] = peer([sys.executable, "-c", WHATSTK, str(args.input)], args.peer_runs)
    module = args.npm_dir / "node_modules" / "whatsapp-chat-parser"
    if module.exists():
        results["whatsapp-chat-parser (npm)"] = peer(["node", "-e", NODE, str(args.input), str(module)],
                                                     args.peer_runs)
    else:
        print(f"whatsapp-chat-parser skipped: run `npm install whatsapp-chat-parser` in {args.npm_dir}")

    print(f"\n{'tool':<28}{'wall s':>9}{'CPU s':>8}{'peak RSS MB':>13}{'messages':>12}   (median of runs)")
    for name, runs in results.items():
        print(f"{name:<28}{statistics.median(r[0] for r in runs):>9.2f}{statistics.median(r[1] for r in runs):>8.2f}"
              f"{max(r[2] for r in runs):>13.0f}{runs[0][3]:>12,}")
    print(json.dumps({name: [dict(zip(("wall_s", "cpu_s", "peak_rss_mb", "messages"), r)) for r in runs]
                      for name, runs in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
