"""extract on what real users step onto: folders that overlap or cannot be written, runs killed mid-write, damaged
and encrypted zips, impossible headers, legacy encodings, two header formats in one file, huge zips and huge lines.
Every crafted input is built here (zipfile plus byte patching; big files generated in tmp_path)."""

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import extract
from hive import chatfiles, extraction, samples, whatsapp
from hive.cli import run
from hive.config import load_config
from tests.conftest import REPO

CHAT = "".join(f"14/03/2024, 22:{i:02d} - {'Sam' if i % 2 else 'Priya'}: message {i}\n" for i in range(40))


def run_extract(raw: Path, out: Path, **settings) -> extraction.ExtractResult:
    cfg = load_config(None, {"paths.raw": str(raw), "paths.cleaned": str(out), "extract.me": ["Sam"], **settings})
    return extraction.run(cfg, progress=False)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------------------------
# Folders


@pytest.mark.parametrize("output", [".", "cleaned", "..", "../exports/sub"])
def test_overlapping_input_and_output_are_refused_and_the_input_is_untouched(tmp_path, capsys, output):
    src = tmp_path / "exports"
    src.mkdir()
    (src / "WhatsApp Chat with Priya.txt").write_text(CHAT, encoding="utf-8")
    before = snapshot(tmp_path)
    argv = ["--input", str(src), "--output", str(src / output), "--me", "Sam", "--set", "extract.write_plain=true"]
    assert run(lambda: extract.main(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the output folder") and "overlap" in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_an_output_that_reaches_the_input_through_a_link_is_refused(tmp_path, capsys):
    src = tmp_path / "exports"
    src.mkdir()
    (src / "c.txt").write_text(CHAT, encoding="utf-8")
    (tmp_path / "alias").symlink_to(src)
    argv = ["--input", str(src), "--output", str(tmp_path / "alias" / "out"), "--me", "Sam"]
    assert run(lambda: extract.main(argv)) == 1
    assert "overlap" in capsys.readouterr().err and sorted(p.name for p in src.iterdir()) == ["c.txt"]


def test_an_output_that_is_a_file_is_one_line(tmp_path, capsys):
    src = tmp_path / "exports"
    src.mkdir()
    (src / "c.txt").write_text(CHAT, encoding="utf-8")
    (tmp_path / "out.txt").write_text("")
    for out, says in [(tmp_path / "out.txt", "is a file, not a folder"),
                      (tmp_path / "out.txt" / "sub", "cannot write")]:
        assert run(lambda out=out: extract.main(["--input", str(src), "--output", str(out), "--me", "Sam"])) == 1
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    src, out = tmp_path / "exports", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "c.txt").write_text(CHAT, encoding="utf-8")
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("this user may write in any folder (root)")
        assert run(lambda: extract.main(["--input", str(src), "--output", str(out), "--me", "Sam"])) == 1
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err
    assert "cannot write in the output folder" in err and "Permission denied" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------------
# Killed runs


def write_big_export(path: Path, messages: int) -> None:
    """An Android export of `messages` messages (about 75 bytes each), a few of them over several lines."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(messages):
            day, minute = 1 + i // 1440 % 28, i % 1440
            more = "\nand a second line" if i % 7 == 0 else ""
            f.write(f"{day:02d}/03/2024, {minute // 60:02d}:{minute % 60:02d} - {'Sam' if i % 3 else 'Priya'}: "
                    f"message number {i} with some words of chat text{more}\n")


def start_extract(raw: Path, out: Path) -> subprocess.Popen:
    """extract.py in its own process group (its workers die with it), once it is writing its output."""
    proc = subprocess.Popen([sys.executable, str(REPO / "extract.py"), "--input", str(raw), "--output", str(out),
                             "--me", "Sam"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 60
    while not (out.is_dir() and any(p.stat().st_size for p in out.iterdir() if p.name.endswith(".tmp"))):
        assert proc.poll() is None and time.time() < deadline, "extract.py ended before it wrote anything"
        time.sleep(0.002)
    return proc


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory) -> Path:
    """About 12 MB: above extraction.PARALLEL_MIN_BYTES, so pieces are written by worker processes too."""
    raw = tmp_path_factory.mktemp("big") / "raw"
    raw.mkdir()
    write_big_export(raw / "big.txt", 160_000)
    assert (raw / "big.txt").stat().st_size > extraction.PARALLEL_MIN_BYTES
    return raw


def test_kill_9_mid_write_leaves_temps_that_the_next_run_removes(tmp_path, big_raw):
    out = tmp_path / "out"
    proc = start_extract(big_raw, out)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = temps(out)
    assert left and all(".hive-" in name for name in left)
    assert "message number" in "".join((out / name).read_text(encoding="utf-8", errors="replace") for name in left)
    (out / "notes.tmp").write_text("a file of the user's that only looks temporary")

    result = run_extract(big_raw, out)
    assert temps(out) == ["notes.tmp"] and sorted(p.name for p in result.removed) == left
    with open(out / "big.jsonl", encoding="utf-8") as f:
        *_, last = enumerate(f, 1)
    assert last[0] == result.written[0].messages == 160_000
    assert json.loads(last[1])["text"] == "message number 159999 with some words of chat text\nand a second line"


def test_sigterm_mid_write_removes_temps_and_exits_non_zero(tmp_path, big_raw):
    out = tmp_path / "out"
    proc = start_extract(big_raw, out)
    proc.send_signal(signal.SIGTERM)            # to extract.py only, as `kill PID` does
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert "terminated (SIGTERM)" in proc.stderr.read().decode()
    assert temps(out) == [] and not (out / "big.jsonl").exists()
    deadline = time.time() + 10
    while True:                                 # its workers are gone too
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "worker processes outlived extract.py"
        time.sleep(0.01)


def test_stale_temps_are_only_ours_and_only_of_dead_processes(tmp_path):
    from hive import fileio

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    names = [f".chat.jsonl.hive-{dead_pid}-abc123_x.tmp", f".part.hive-{dead_pid}-q1w2e3r4.tmp",   # removed
             f".chat.jsonl.hive-{os.getppid()}-abc123_x.tmp",      # a running process: left alone
             ".chat.jsonl.abc123.tmp", "chat.jsonl.hive-1-abc.tmp", "keep.tmp", "chat.jsonl"]
    for name in names:
        (out / name).write_text("x")
    fd, mine = fileio.temp_file(out, "in-flight.jsonl")     # this process's own: left alone
    os.close(fd)
    try:
        assert sorted(p.name for p in fileio.remove_stale_temps(out)) == sorted(names[:2])
        assert sorted(p.name for p in out.iterdir()) == sorted(names[2:] + [Path(mine).name])
    finally:
        fileio.forget_temp(mine)
    assert not Path(mine).exists()


# ---------------------------------------------------------------------------------------------------------------
# Zips


def zip_bytes(members: dict, compression: int = zipfile.ZIP_DEFLATED) -> bytearray:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", compression) as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return bytearray(data.getvalue())


def central(data: bytearray, field_offset: int, fmt: str, value) -> bytearray:
    """Patch a field of the first central-directory header (offsets from its PK\\x01\\x02 signature)."""
    struct.pack_into(fmt, data, data.find(b"PK\x01\x02") + field_offset, value)
    return data


def corrupt_deflate() -> bytearray:
    data = zip_bytes({"_chat.txt": CHAT})
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    start = 30 + name_len + extra_len               # the member's compressed data
    data[start:start + 4] = b"\xff\xff\xff\xff"     # block type 3 does not exist
    return data


def truncated_stored() -> bytearray:
    """A stored member whose directory entry claims more data than the file holds."""
    data = zip_bytes({"_chat.txt": CHAT}, zipfile.ZIP_STORED)
    return central(central(data, 20, "<I", 10**6), 24, "<I", 10**6)     # compressed and uncompressed size


def undecodable_name() -> bytearray:
    data = zip_bytes({"chat_é.txt": CHAT})          # zipfile sets the UTF-8 flag for this name
    return bytearray(bytes(data).replace("é".encode(), b"\xff\xfe"))


CRAFTED = {
    "corrupt_deflate.zip": (corrupt_deflate, "damaged zip member (error: Error -3 while decompressing data"),
    "truncated_stored.zip": (truncated_stored, "damaged zip member ("),
    "unknown_method.zip": (lambda: central(zip_bytes({"_chat.txt": CHAT}), 10, "<H", 99),
                           "cannot unzip it (That compression method is not supported)"),
    "zip_version.zip": (lambda: central(zip_bytes({"_chat.txt": CHAT}), 6, "<H", 64),
                        "a zip feature Python cannot read (zip file version 6.4)"),
    "strong_encryption.zip": (lambda: central(zip_bytes({"_chat.txt": CHAT}), 8, "<H", 0x41),
                              "strongly encrypted zip member"),
    "password.zip": (lambda: central(zip_bytes({"_chat.txt": CHAT}), 8, "<H", 0x1),
                     "password-protected zip (WhatsApp's own export has no password): export the chat again"),
    "undecodable_name.zip": (undecodable_name, "a file name inside the zip is not valid UTF-8"),
}


def test_each_bad_zip_is_skipped_with_its_reason_and_the_rest_is_extracted(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, (build, _) in CRAFTED.items():
        (raw / name).write_bytes(build())
    (raw / "good.zip").write_bytes(zip_bytes({"_chat.txt": CHAT}))
    (raw / "both.zip").write_bytes(zip_bytes({"good.txt": CHAT, "bad.txt": CHAT}))    # then its 2nd member broken
    data = (raw / "both.zip").read_bytes()
    second = data.find(b"PK\x03\x04", 4)
    name_len, extra_len = struct.unpack_from("<HH", data, second + 26)
    start = second + 30 + name_len + extra_len
    (raw / "both.zip").write_bytes(data[:start] + b"\xff" * 4 + data[start + 4:])
    (raw / "plain.txt").write_text(CHAT, encoding="utf-8")

    assert extract.main(["--input", str(raw), "--output", str(tmp_path / "out"), "--me", "Sam"]) == 0
    result = json.loads((tmp_path / "out" / "_summary.json").read_text(encoding="utf-8"))
    reasons = {f["source"]: f["reason"] for f in result["files"] if f["status"] != "ok"}
    for name, (_, reason) in CRAFTED.items():
        member = "" if name in ("zip_version.zip", "undecodable_name.zip") else "/_chat.txt"
        assert reasons.pop(name + member).startswith(reason), name
    assert list(reasons) == ["both.zip/bad.txt"] and reasons["both.zip/bad.txt"].startswith("damaged zip member")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jsonl")) == ["both - good.jsonl", "good.jsonl",
                                                                         "plain.jsonl"]
    printed = capsys.readouterr().out
    assert "skipped: password-protected zip" in printed and "files skipped  8" in printed


def test_a_zip_of_many_chats_is_opened_once(tmp_path, monkeypatch):
    opened = []
    real = zipfile.ZipFile

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(chatfiles.zipfile, "ZipFile", counting)
    raw = tmp_path / "raw"
    raw.mkdir()
    with real(raw / "many.zip", "w") as zf:
        for i in range(300):
            zf.writestr(f"chat {i}.txt", CHAT)
    result = run_extract(raw, tmp_path / "out")
    assert len(result.written) == 300 and opened == [raw / "many.zip"]


# ---------------------------------------------------------------------------------------------------------------
# Lines that are not what they seem


def test_impossible_headers_are_message_text_and_convert_reads_everything_written(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "c.txt").write_text(
        "24/04/2018, 27:75 - Priya: before any message\n"
        "24/04/2018, 21:15 - Priya: hi\n"
        "24/04/2018, 27:75 - Name: impossible time\n"
        "30/02/2018, 10:00 - Name: no such day\n"
        "24/04/2018, 21:16 - Sam: 9:99 is no time either\n", encoding="utf-8")
    result = run_extract(raw, tmp_path / "out")
    (chat,) = result.written
    assert (chat.lines, chat.messages, chat.continuation_lines, chat.skipped_lines) == (5, 2, 2, 1)
    assert chat.invalid_headers == 3 and "3 line(s) with a header but no real date or time" in chat.notes[0]
    (loaded,) = samples.load_chats(tmp_path / "out")
    assert [m.text for m in loaded.messages] == [
        "hi\n24/04/2018, 27:75 - Name: impossible time\n30/02/2018, 10:00 - Name: no such day",
        "9:99 is no time either"]


def test_a_windows_1252_file_is_read_and_the_summary_says_so(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "c.txt").write_bytes("14/03/2024, 22:42 - Zoë: café – “quoted” €5\n14/03/2024, 22:43 - Sam: ok\n"
                                .encode("cp1252"))
    (chat,) = run_extract(raw, tmp_path / "out").written
    assert chat.encoding == "windows-1252" and chat.notes[0].startswith("not UTF-8: 6 byte(s) read as Windows-1252")
    first = json.loads((tmp_path / "out" / "c.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert (first["sender"], first["text"]) == ("Zoë", "café – “quoted” €5")


def test_android_and_iphone_headers_in_one_file_are_both_parsed(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "mixed.txt").write_text(
        "14/03/2024, 22:42 - Priya: from the Android phone\n"
        "[14/03/2024, 22:43:10] Sam: from the iPhone\n"
        "14/03/2024, 22:44 - Sam: Android again\nwith a second line\n"
        "[15/03/2024, 09:05:30] Priya: iPhone again\n"
        "15/03/2024, 09:06 - Priya: <Media omitted>\n", encoding="utf-8")
    (chat,) = run_extract(raw, tmp_path / "out").written
    out = [json.loads(line) for line in (tmp_path / "out" / "mixed.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["timestamp"], r["sender"], r["kind"]) for r in out] == [
        ("2024-03-14T22:42", "Priya", "text"), ("2024-03-14T22:43:10", "Sam", "text"),
        ("2024-03-14T22:44", "Sam", "text"), ("2024-03-15T09:05:30", "Priya", "text"),
        ("2024-03-15T09:06", "Priya", "media")]
    assert out[2]["text"] == "Android again\nwith a second line"
    assert chat.other_formats == [{"format": "iphone", "header": "[14/03/2024, 22:43:10] ", "date_order": "DMY",
                                   "date_order_reason": "day > 12 in 14/03/2024"}]
    assert chat.notes == ["second header format parsed too: iphone `[14/03/2024, 22:43:10]` (DMY)"]
    assert chat.lines == 6 == chat.messages + chat.continuation_lines


def test_pasted_headers_of_another_format_stay_text_and_are_reported(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "c.txt").write_text(CHAT + "14/03/2024, 23:00 - Sam: a log:\n" + "[3/14/24, 9:00:00 PM] Bot: step\n" * 3,
                               encoding="utf-8")
    (chat,) = run_extract(raw, tmp_path / "out").written
    assert chat.messages == 41 and chat.foreign_lines == 3 and chat.other_formats == []
    assert chat.notes == ["3 line(s) look like headers of another format (`[3/14/24, 9:00:00 PM]`) and were kept as "
                          "message text"]


def test_huge_lines_and_messages_are_cut_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(whatsapp, "MAX_MESSAGE_CHARS", 1000)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "c.txt").write_text(
        "14/03/2024, 22:40 - Priya: hi\n"
        "14/03/2024, 22:41 - Sam: " + "x" * 5000 + "\n"                        # one line of 5,026 characters
        "14/03/2024, 22:42 - Priya: " + "many lines\n" * 300 +                  # 3,300 characters over 300 lines
        "14/03/2024, 22:43 - Sam: " + "y" * 2500 + "\n" + "and more\n" * 5 +   # a long line and 5 more
        "14/03/2024, 22:44 - Priya: " + "z" * 3000, encoding="utf-8")          # the last line, no line end
    (chat,) = run_extract(raw, tmp_path / "out").written
    texts = [json.loads(line)["text"] for line in (tmp_path / "out" / "c.jsonl").read_text().splitlines()]
    # a line is cut at 1,000 characters (header included), a message at 1,000 characters after the header
    assert [len(t) for t in texts] == [2, 1000 - 25, 1000 - 7, 1000 - 5, 1000 - 27]
    assert texts[2] == "many lines\n" * 90 + "man" and texts[3] == "y" * 975 + "\nand more\nand more\na"
    assert (chat.long_lines, chat.cut_messages, chat.dropped_lines) == (3, 2, 209 + 2)
    assert chat.lines == 309 == chat.messages + chat.continuation_lines + chat.dropped_lines
    assert chat.notes == ["3 line(s) longer than 1,000 characters cut there",
                          "2 message(s) longer than 1,000 characters cut there (211 line(s) dropped)"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads its peak memory from /proc (Linux)")
def test_a_50_mb_line_is_parsed_in_bounded_memory(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with open(raw / "c.txt", "w", encoding="utf-8") as f:
        f.write("14/03/2024, 22:40 - Priya: hi\n14/03/2024, 22:41 - Sam: ")
        for _ in range(50):
            f.write("é" * 2**19)                            # 50 MiB of UTF-8, 25 M characters on one line
        f.write("\n14/03/2024, 22:42 - Priya: bye\n")
    # VmHWM is this program's own peak: ru_maxrss would include the test process's, kept across exec on Linux
    code = ("import re, sys, extract; extract.main(sys.argv[1:]); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 2**10)")
    proc = subprocess.run([sys.executable, "-c", code, "--input", str(raw), "--output", str(tmp_path / "out"), "--me",
                           "Sam", "--jobs", "1"], capture_output=True, text=True, cwd=REPO, check=True)
    peak_mb = int(proc.stdout.split()[-1])
    assert peak_mb < 120, f"peak {peak_mb} MB for a 50 MB line"     # whole line in memory: 200 MB and more
    assert "1 line(s) longer than 131,072 characters cut there" in proc.stdout


def test_workers_forked_during_a_run_keep_the_default_sigterm(tmp_path):
    """Pool.terminate ends workers with SIGTERM wherever they wait (even on a lock it holds itself): a worker must not
    inherit the parent's clean-up handler, nor lose a SIGTERM that arrives while it starts (it is blocked until the
    worker has the default handler again)."""
    import multiprocessing

    from hive import fileio

    with fileio.sigterm_exits():
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            handler, blocked = pool.apply(_signal_state)
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert (handler, blocked) == (signal.SIG_DFL, False)


def _signal_state():
    return signal.getsignal(signal.SIGTERM), signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
