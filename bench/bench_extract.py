"""Benchmark: extract.py against whatstk (PyPI) and whatsapp-chat-parser (npm) on one large Android export, and
against itself at another git revision (--baseline) on that export, on a zip of many chats or on one huge line.

    python bench/bench_extract.py                            # renders /tmp/hive_bench/big.txt (1M lines) if missing
    python bench/bench_extract.py --input FILE --runs 5
    python bench/bench_extract.py --npm-dir /tmp/hive_npm    # where `npm install whatsapp-chat-parser` was run
    python bench/bench_extract.py --jobs auto,1               # Hive with one process per core and with one
    python bench/bench_extract.py --baseline main --skip-whatstk    # also Hive as of git revision main
    python bench/bench_extract.py --zip-members 5000 --baseline main # one zip of 5,000 chats instead (chats/s)
    python bench/bench_extract.py --long-line-mb 400 --baseline main # one 400 MB line instead (peak memory)
    python bench/bench_extract.py --out extract.json                 # also the table's rows as JSON

Each tool runs in its own process under /usr/bin/time, so the figures are that tool's alone (Python start-up and
imports included). Hive runs the real stage: `extract.py --input DIR --output DIR --me NAME [--jobs N]` (parse,
classify, redact, write JSONL; a large export is read by one process per core). Prints: tool, wall and CPU seconds
(user + system, worker processes included; median of --runs, the slow peers run --peer-runs times), peak RSS MB
(the sum over the tool's processes, sampled every 10 ms, and the largest single process), messages parsed, and the
load average before and after: on a busy machine wall time mostly measures the wait for a core. --baseline runs the
extract.py of a git revision (`git archive REV`) the same way; the peers only read the plain export.
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import record  # noqa: E402

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


def timed(cmd: list[str], env=None) -> tuple[float, float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MB of all its processes together, of the largest one, stdout) of one
    run of `cmd` in a fresh process.

    CPU time (user + system, of every process the tool forks and waits for) is reported beside wall time because
    the shared machine is often busy: then wall time mostly measures the wait for a core."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(["/usr/bin/time", "-o", t.name, "-f", "%e %U %S %M"] + cmd, stdout=out, stderr=err,
                                text=True, env=env)
        total_kb = 0
        while proc.poll() is None:
            total_kb = max(total_kb, _tree_rss_kb(proc.pid) - _rss_kb(proc.pid))   # /usr/bin/time itself left out
            time.sleep(0.01)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd[0]} failed: {err.read().strip()[-500:]}")
        wall, user, system, kb = t.read().split()[-4:]
        out.seek(0)
        stdout = out.read()
    # a run shorter than one sample still has its largest process from /usr/bin/time
    return float(wall), float(user) + float(system), max(total_kb, int(kb)) / 1024, int(kb) / 1024, stdout


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:     # gone
        return 0


def _tree_rss_kb(pid: int) -> int:
    """The resident memory of a process and all its descendants (Linux /proc), counting pages that forked
    processes still share once per process: an upper bound."""
    total, todo = 0, [pid]
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo += map(int, f.read().split())
        except OSError:
            pass
    return total


def bench_hive(code: Path, folder: Path, me: str, runs: int, jobs: str) -> list[tuple]:
    """Runs of `code`/extract.py on `folder`: (wall, CPU, RSS all, largest RSS, messages, chats written) each."""
    results = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            wall, cpu, mb, largest, _ = timed(
                [sys.executable, str(code / "extract.py"), "--input", str(folder), "--output", out, "--me", me]
                + ([] if jobs == "auto" else ["--jobs", jobs]), env={**os.environ, "HIVE_HOME": out})
            chats = list(Path(out).glob("*.jsonl"))
            results.append((wall, cpu, mb, largest, sum(sum(1 for _ in open(c, encoding="utf-8")) for c in chats),
                            len(chats)))
    return results


@contextlib.contextmanager
def checkout(rev: str):
    """The files of git revision `rev` of this repository in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield Path(folder)


def zip_input(members: int) -> Path:
    """/tmp/hive_bench_zip<members>/chats.zip: `members` chitchat chats as Android exports in one zip (not under
    /tmp/hive_bench: the default export's folder is what the plain benchmark reads)."""
    from chitchat_exports import android_lines, iter_chats

    path = Path(f"/tmp/hive_bench_zip{members}/chats.zip")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for _, (chat_id, messages) in zip(range(members), iter_chats(None)):
                zf.writestr(f"WhatsApp Chat {chat_id[:8]}.txt", "".join(android_lines(messages, None)))
    return path


def long_line_input(mb: int, me: str) -> Path:
    """/tmp/hive_bench_line<mb>/chat.txt: three messages, the middle one (by `me`) a single line of `mb` MB."""
    path = Path(f"/tmp/hive_bench_line{mb}/chat.txt")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"14/03/2024, 22:40 - Priya A.: hi\n14/03/2024, 22:41 - {me}: ")
            for _ in range(mb):
                f.write("a long line of chat text, " * 40329 + "x" * 2)     # 1,048,556 bytes
            f.write("\n14/03/2024, 22:42 - Priya A.: bye\n")
    return path


def peer(cmd: list[str], runs: int) -> list[tuple[float, float, float, float, int]]:
    return [(wall, cpu, mb, largest, int(out)) for wall, cpu, mb, largest, out in (timed(cmd) for _ in range(runs))]


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
    p.add_argument("--jobs", default="auto",
                   help="comma-separated extract.py --jobs values to run Hive with (auto: its default)")
    p.add_argument("--baseline", metavar="REV", help="also run extract.py of this git revision (e.g. main)")
    p.add_argument("--zip-members", type=int, metavar="N", help="instead: one zip of N chitchat chats")
    p.add_argument("--long-line-mb", type=int, metavar="MB", help="instead: an export with one line of MB megabytes")
    p.add_argument("--out", type=Path, help="write the table's rows as JSON here (bench/record.py)")
    args = p.parse_args(argv)

    from chitchat_exports import REFERENCE_SENDER, friend_name, write_single

    me = friend_name(REFERENCE_SENDER)
    if args.zip_members:
        folder = zip_input(args.zip_members).parent
    elif args.long_line_mb:
        folder = long_line_input(args.long_line_mb, me).parent
    else:
        if not args.input.exists():
            print(f"rendering {args.input} ({args.min_lines:,} lines) from chitchat-dataset ...", flush=True)
            write_single(args.input, args.min_lines)
        folder = args.input.parent
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"input: {folder} ({', '.join(p.name for p in folder.iterdir())}, {size / 1e6:.0f} MB)", flush=True)

    load_before = os.getloadavg()
    results = {f"hive extract.py --jobs {jobs}": bench_hive(REPO, folder, me, args.runs, jobs)
               for jobs in args.jobs.split(",")}
    if args.baseline:
        with checkout(args.baseline) as code:
            results.update({f"hive @{args.baseline} --jobs {jobs}": bench_hive(code, folder, me, args.runs, jobs)
                            for jobs in args.jobs.split(",")})
    plain = not (args.zip_members or args.long_line_mb)
    if plain and not args.skip_whatstk:
        results["whatstk (PyPI)"] = peer([sys.executable, "-c", WHATSTK, str(args.input)], args.peer_runs)
    module = args.npm_dir / "node_modules" / "whatsapp-chat-parser"
    if plain and module.exists():
        results["whatsapp-chat-parser (npm)"] = peer(["node", "-e", NODE, str(args.input), str(module)],
                                                     args.peer_runs)
    elif plain:
        print(f"whatsapp-chat-parser skipped: run `npm install whatsapp-chat-parser` in {args.npm_dir}")

    load_after = os.getloadavg()
    rows = [{"tool": name, "wall_s": statistics.median(r[0] for r in runs),
             "cpu_s": statistics.median(r[1] for r in runs), "peak_rss_mb": max(r[2] for r in runs),
             "largest_rss_mb": max(r[3] for r in runs), "messages": runs[0][4],
             "chats": runs[0][5] if len(runs[0]) > 5 else None,
             "runs": [dict(zip(("wall_s", "cpu_s", "peak_rss_mb", "largest_rss_mb", "messages", "chats"), r))
                      for r in runs]}
            for name, runs in results.items()]
    print(f"\n{'tool':<32}{'wall s':>8}{'CPU s':>8}{'RSS MB all':>12}{'largest':>9}{'messages':>12}{'chats/s':>9}"
          f"   (median of runs; RSS: max of runs)")
    for r in rows:
        chats = f"{r['chats'] / r['wall_s']:>9.0f}" if r["chats"] is not None else f"{'-':>9}"
        print(f"{r['tool']:<32}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['peak_rss_mb']:>12.0f}"
              f"{r['largest_rss_mb']:>9.0f}{r['messages']:>12,}{chats}")
    print("load average (1, 5, 15 min): before " + " ".join(f"{x:.2f}" for x in load_before)
          + ", after " + " ".join(f"{x:.2f}" for x in load_after) + f"; {os.cpu_count()} CPUs")
    if args.out:
        record.write(args.out, rows, argv, input=f"{folder} ({size / 1e6:.0f} MB)", zip_members=args.zip_members,
                     long_line_mb=args.long_line_mb, load_before=load_before, load_after=load_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
