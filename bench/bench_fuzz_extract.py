"""Fuzz benchmark: mutated WhatsApp exports and zips through extract end to end, this checkout against a baseline.

    python bench/bench_fuzz_extract.py                               # 100,000 inputs; this checkout, then main
    python bench/bench_fuzz_extract.py --inputs 5000 --baseline none
    python bench/bench_fuzz_extract.py --seed 7 --jobs 2 --keep /tmp/fuzz-crashes
    python bench/bench_fuzz_extract.py --out fuzz_extract.json      # also the table's rows as JSON

Each run of extract (extraction.run, one process per file) reads a folder of --per-run inputs, half .txt and half
.zip, built from the test fixtures (tests/fixtures/whatsapp) and from generated chats (every header shape, senders,
placeholders, invisible characters; UTF-8, UTF-16 or Windows-1252), then mutated: bytes flipped, inserted (line ends,
bad UTF-8, NUL, BOM, header look-alikes, impossible times), deleted, duplicated, cut off; zips also get header fields
(compression method, flags, sizes, version) overwritten. The same seed gives the same inputs to both code versions.

A crash is an exception other than HiveError (the one-line errors a user sees), or output that convert's reader
(hive.samples.load_chats) rejects; for this checkout also a broken count (a written file's lines must equal messages
+ continuation + skipped + dropped lines and the file's own line count, and its JSONL one line per message). Prints
one table row per code version: inputs, runs, files written and skipped, runs ending in a HiveError, crashes (by
exception), inputs per second. With --keep, every crashing folder is copied there with its traceback.
"""

import argparse
import collections
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import record  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "whatsapp"

HEADS = ["{d}/03/2024, 22:{m} - ", "3/{d}/24, 10:{m}\u202fPM - ", "[{d}/03/2024, 22:{m}:05] ",
         "[3/{d}/24, 9:{m}:00 PM] ", "{d}.03.24, 22:{m} - ", "{d}-03-2024 08:{m} - ", "2024-03-{d}, 6:{m} p.m. - ",
         "{d}/06/16 10:{m}:59: ", "{d}/3/24 12:{m} a.\u00a0m. - ", "\u200e[{d}/03/2024, 22:{m}:05] ",
         "24/04/2018, 27:75 - ", ""]
SENDERS = ["Sam", "Priya", "Omar", "~\u202fKaran", "\u202a+91 98470 12345\u202c", "Anu - Office", "Ammu :)", ""]
BODIES = ["hi", "see you at 5", "<Media omitted>", "IMG-20240314-WA0004.jpg (file attached)", "\u200eimage omitted",
          "Report.pdf • \u200e4 pages \u200e<attached: 00000008-Report.pdf>", "This message was deleted",
          "You deleted this message", "null", "POLL:\nWhere?\nOPTION: here (1 vote)", "location: https://x.y/?q=1,2",
          "ok \u200e<This message was edited>", "Missed voice call", "call +44 7700 900123 or a@b.org",
          "line one\nline two", "\u200eDmitry added you", "Zoë café – “quoted” €5", "😀" * 5, "x" * 500]
INSERTS = [b"\n", b"\r", b"\r\n", b"\xff", b"\xe9", b"\xc3\x28", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe",
           "\u200e".encode(), "\u202f".encode(), b": ", b"[", b"] ", b" - ", b"14/03/2024, 22:42 - Sam: ",
           b"[3/14/24, 9:00:00 PM] Eve: ", b"31/02/2024, 10:00 - X: ", b"24/04/2018, 27:75 - X: ", b"<Media omitted>\n",
           b"PK\x03\x04", b"\x1b[0m"]
ME = ["Sam", "Priya", "Omar", "Alice", "Bob", "Lena", "Eva", "Ana", "Maria", "Jonas", "Diego", "Daan", "Sophia"]


# ---------------------------------------------------------------------------------------------------------------
# Inputs (deterministic for a seed)


def generated_chat(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(1, 40)):
        head = rng.choice(HEADS).format(d=rng.randint(1, 31), m=f"{rng.randint(0, 59):02d}")
        sender = rng.choice(SENDERS)
        lines.append(head + (f"{sender}: " if sender else "") + rng.choice(BODIES) + rng.choice(["\n", "\r\n", "\n"]))
    text = "".join(lines)
    return text.encode(rng.choice(["utf-8", "utf-8", "utf-8-sig", "utf-16", "cp1252"]), "replace")


def mutate(rng: random.Random, data: bytes, edits: int) -> bytes:
    data = bytearray(data)
    for _ in range(edits):
        at = rng.randint(0, len(data))
        op = rng.random()
        if op < 0.3 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op < 0.65:
            data[at:at] = rng.choice(INSERTS)
        elif op < 0.8:
            del data[at:at + rng.randint(1, 60)]
        elif op < 0.95:
            data[at:at] = data[at:at + rng.randint(1, 300)]
        else:
            del data[at:]
    return bytes(data)


def text_input(rng: random.Random, seeds: list) -> bytes:
    data = rng.choice(seeds) if rng.random() < 0.4 else generated_chat(rng)
    return mutate(rng, data, rng.choice([0, 1, 1, 2, 3, 6, 12]))


def zip_input(rng: random.Random, seeds: list) -> bytes:
    buffer = io.BytesIO()
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name in rng.sample(["_chat.txt", "a.txt", "sub/b.txt", "é.txt"], rng.randint(1, 3)):
            zf.writestr(name, text_input(rng, seeds) if rng.random() < 0.5 else generated_chat(rng))
        if rng.random() < 0.5:
            zf.writestr("00000014-PHOTO-2024-03-14.jpg", b"\xff\xd8\xff\xe0" + rng.randbytes(64))
    data = bytearray(buffer.getvalue())
    headers = [m.start() for m in re.finditer(b"PK\x01\x02", data)]
    for _ in range(rng.choice([0, 0, 1, 2])):
        offset, fmt = rng.choice([(6, "<H"), (8, "<H"), (10, "<H"), (16, "<I"), (20, "<I"), (24, "<I"), (28, "<H")])
        value = rng.choice([0, 1, 0x41, 0x800, 12, 14, 63, 64, 99, 2**15, rng.randrange(2**(8 * struct.calcsize(fmt)))])
        struct.pack_into(fmt, data, rng.choice(headers) + offset, value % 2**(8 * struct.calcsize(fmt)))
    return mutate(rng, bytes(data), rng.choice([0, 0, 1, 2, 4]))


def batch(seed: int, index: int, per_run: int, seeds: list) -> tuple[dict, dict]:
    """({file name: bytes}, {me: ..., date_order: ...}) of run `index`: half text, half zip inputs."""
    rng = random.Random(f"{seed}:{index}")
    files = {}
    for i in range(per_run):
        files[f"chat{i}.txt" if i % 2 == 0 else f"WhatsApp Chat - {i}.zip"] = \
            text_input(rng, seeds) if i % 2 == 0 else zip_input(rng, seeds)
    settings = {"extract.me": ME if rng.random() < 0.8 else [], "extract.date_order": rng.choice(["auto", "DMY"]),
                "extract.pseudonymize": rng.random() < 0.3, "extract.write_plain": rng.random() < 0.3}
    return files, settings


def line_count(data: bytes) -> int:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = data.decode("utf-16").encode("utf-8")
    return len(re.findall(rb"\r\n|\r|\n", data)) + (bool(data) and not data.endswith((b"\r", b"\n")))


# ---------------------------------------------------------------------------------------------------------------
# Worker: runs batches with the hive package of one code version


def work(code: Path, seed: int, start: int, end: int, per_run: int, keep: Path | None) -> dict:
    sys.path.insert(0, str(code))
    from dataclasses import fields

    from hive import extraction

    counted = "continuation_lines" in {f.name for f in fields(extraction.ChatReport)}
    seeds = [p.read_bytes() for p in sorted(FIXTURES.glob("*.txt"))]
    stats, crashes, first = collections.Counter(), collections.Counter(), None
    for index in range(start, end):
        files, settings = batch(seed, index, per_run, seeds)
        with tempfile.TemporaryDirectory() as folder:
            raw = Path(folder) / "raw"
            raw.mkdir()
            for name, data in files.items():
                (raw / name).write_bytes(data)
            try:
                problem = _one_run(raw, Path(folder) / "out", files, settings, counted, stats)
            except Exception as e:      # a crash is what this benchmark counts
                problem = f"{type(e).__name__}: {str(e)[:100]}"
                if keep:
                    shutil.copytree(raw, keep / f"{code.name}-{seed}-{index}" / "raw")
                    (keep / f"{code.name}-{seed}-{index}" / "traceback.txt").write_text(traceback.format_exc())
            if problem:
                crashes[problem.split(":")[0]] += 1
                first = first or f"run {index}: {problem}"
        stats["runs"] += 1
        stats["inputs"] += len(files)
    return {"stats": dict(stats), "crashes": dict(crashes), "first": first}


def _one_run(raw: Path, out: Path, files: dict, settings: dict, counted: bool, stats: collections.Counter):
    """Extract `raw` into `out` and check what it wrote: a problem (str) or None."""
    from hive import extraction, samples
    from hive.config import load_config
    from hive.errors import HiveError

    cfg = load_config(None, {"paths.raw": str(raw), "paths.cleaned": str(out), **settings})
    try:
        result = extraction.run(cfg, progress=False, jobs=1)
    except HiveError:
        stats["runs ending in HiveError"] += 1
        return None
    stats["files written"] += len(result.written)
    stats["files skipped"] += len(result.skipped)
    problem = _count_problem(result, files, out) if counted else None
    try:
        samples.load_chats(out)
    except HiveError as e:
        problem = problem or f"convert rejects the output: {str(e)[:100]}"
    return problem


def _count_problem(result, files: dict, out: Path) -> str | None:
    for r in result.written:
        if r.lines != r.messages + r.continuation_lines + r.skipped_lines + r.dropped_lines:
            return f"lines do not add up: {r.source}"
        if r.source in files and r.lines != line_count(files[r.source]):
            return f"line count {r.lines} != {line_count(files[r.source])}: {r.source}"
        with open(out / r.output, encoding="utf-8") as f:
            if sum(1 for _ in f) != r.messages:
                return f"JSONL lines != messages: {r.source}"
    return None


# ---------------------------------------------------------------------------------------------------------------


def run_version(name: str, code: Path, args) -> dict:
    """All batches through one code version, split over --jobs worker processes."""
    runs = -(-args.inputs // args.per_run)
    bounds = [runs * i // args.jobs for i in range(args.jobs + 1)]
    started = time.time()
    with tempfile.TemporaryDirectory() as home:     # no training_config.yaml of anyone's project
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(code), "--seed", str(args.seed),
                                   "--range", f"{a}:{b}", "--per-run", str(args.per_run)]
                                  + (["--keep", str(args.keep)] if args.keep else []),
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "HIVE_HOME": home})
                 for a, b in zip(bounds, bounds[1:]) if b > a]
        parts = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{name}: worker failed (exit {proc.returncode})")
            parts.append(json.loads(out.splitlines()[-1]))
    stats, crashes = collections.Counter(), collections.Counter()
    for part in parts:
        stats.update(part["stats"])
        crashes.update(part["crashes"])
    return {"name": name, "seconds": time.time() - started, "stats": stats, "crashes": crashes,
            "first": next((part["first"] for part in parts if part["first"]), None)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=100_000, help="mutated files in all (half .txt, half .zip)")
    p.add_argument("--per-run", type=int, default=20, help="files per run of extract")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="worker processes per code version")
    p.add_argument("--baseline", default="main", help="git revision to compare against, or none")
    p.add_argument("--keep", type=Path, help="copy crashing inputs (and tracebacks) here")
    p.add_argument("--out", type=Path, help="write the table's rows as JSON here (bench/record.py)")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--range", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        start, end = map(int, args.range.split(":"))
        print(json.dumps(work(args.worker, args.seed, start, end, args.per_run, args.keep)))
        return 0

    results = [run_version("this checkout", REPO, args)]
    if args.baseline != "none":
        with tempfile.TemporaryDirectory() as folder:
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline], capture_output=True,
                                     check=True)
            subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
            results.append(run_version(f"baseline {args.baseline}", Path(folder), args))

    print(f"\n{'code':<18}{'inputs':>9}{'runs':>7}{'written':>9}{'skipped':>9}{'HiveError':>11}{'crashes':>9}"
          f"{'inputs/s':>10}   crashes by kind")
    for r in results:
        s = r["stats"]
        kinds = ", ".join(f"{k} {n:,}" for k, n in r["crashes"].most_common()) or "-"
        print(f"{r['name']:<18}{s['inputs']:>9,}{s['runs']:>7,}{s['files written']:>9,}{s['files skipped']:>9,}"
              f"{s['runs ending in HiveError']:>11,}{sum(r['crashes'].values()):>9,}{s['inputs'] / r['seconds']:>10.0f}"
              f"   {kinds}")
    for r in results:
        if r["first"]:
            print(f"first crash of {r['name']}: {r['first']}")
    print(f"seed {args.seed}, {args.per_run} files per run, {args.jobs} worker(s) per version, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        rows = [{"code": r["name"], "seconds": r["seconds"],
                 **{key: r["stats"][key] for key in ("inputs", "runs", "files written", "files skipped",
                                                     "runs ending in HiveError")},
                 "inputs_per_s": r["stats"]["inputs"] / r["seconds"], "crashes": dict(r["crashes"].most_common()),
                 "first_crash": r["first"]} for r in results]
        record.write(args.out, rows, argv, seed=args.seed, per_run=args.per_run, jobs=args.jobs)
    return 0 if not results[0]["crashes"] else 1


if __name__ == "__main__":
    sys.exit(main())
