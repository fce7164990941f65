"""Fuzzing extract end to end: mutated exports and mutated zips (from the fixtures and from generated chats) through
extraction.run. Nothing may escape but HiveError (one line for the user); every line of every file read is accounted
for in the summary (lines == messages + continuation_lines + skipped_lines + dropped_lines, and lines is the file's
own line count); everything written is one JSONL line per message that convert's reader accepts.
bench/bench_fuzz_extract.py runs the same idea over 100,000+ inputs."""

import io
import re
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hive import extraction, samples
from hive.config import load_config
from hive.errors import HiveError
from tests.conftest import FIXTURES

SEEDS = [p.read_bytes() for p in sorted((FIXTURES / "whatsapp").glob("*.txt"))]
PIECES = [b"\n", b"\r", b"\r\n", b"\xff", b"\xe9", b"\xc3", b"\x00", b"\xef\xbb\xbf", "\u200e".encode(),
          "\u202f".encode(), b": ", b"Sam: ", b"[", b"]", b" - ", b"14/03/2024, 22:42 - ", b"24/04/2018, 27:75 - X: ",
          b"[3/14/24, 9:00:00 PM] Eve: ", b"13/06/16 10:59:59: ", b"<Media omitted>", b"null", b"POLL:\nOPTION: a",
          " \u200e<This message was edited>".encode(), b"You deleted this message", b"x" * 300]


@st.composite
def exports(draw) -> bytes:
    """A fixture export or a generated one, in UTF-8, UTF-16 or Windows-1252."""
    if draw(st.booleans()):
        return draw(st.sampled_from(SEEDS))
    lines = draw(st.lists(st.tuples(st.sampled_from(["14/03/2024, 22:4{} - ", "[3/1{}/24, 9:00:00 PM] ", "0{}/02/24 "
                                                     "10:00 - ", "2024-03-1{}, 6:15 p.m. - ", ""]),
                                    st.integers(0, 9), st.sampled_from(["Sam", "Priya", "~\u202fKaran", ""]),
                                    st.text(max_size=20)), min_size=1, max_size=25))
    text = "".join(head.format(n) + (f"{who}: " if who else "") + body + "\n" for head, n, who, body in lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "cp1252"]))
    return text.encode(encoding, "replace")


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` after up to 6 byte-level edits: flips, inserted pieces, deletions, duplications, a truncation."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "flip", "insert", "insert", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(PIECES))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def zips(draw) -> tuple[bytes, dict]:
    """A zip of 1-3 exports (stored or deflated, some with a media file beside), with its zip structure mutated:
    bytes, or header fields (compression method, flags, sizes, version). Returns (zip, {member: original bytes})."""
    members = {name: draw(exports()) for name in draw(st.lists(st.sampled_from(["_chat.txt", "a.txt", "b/c.txt"]),
                                                               min_size=1, max_size=3, unique=True))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if draw(st.booleans()):
            zf.writestr("00000014-PHOTO.jpg", b"\xff\xd8\xff\xe0 jpeg")
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 2))):
        headers = [m.start() for m in re.finditer(b"PK\x01\x02", data)]
        if headers:
            offset, fmt = draw(st.sampled_from([(6, "<H"), (8, "<H"), (10, "<H"), (20, "<I"), (24, "<I"), (28, "<H")]))
            struct.pack_into(fmt, data, draw(st.sampled_from(headers)) + offset,
                             draw(st.integers(0, 2**(8 * struct.calcsize(fmt)) - 1)))
    return draw(mutated(bytes(data))), members


def line_count(data: bytes) -> int:
    """Lines as extract reads them (\\r\\n, \\r and \\n end a line), counted independently of its reader."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = data.decode("utf-16").encode("utf-8")
    ends = len(re.findall(rb"\r\n|\r|\n", data))
    return ends + (bool(data) and not data.endswith((b"\r", b"\n")))


# the senders of the fixtures and of generated exports: given as extract.me, most runs get to write their chats
EVERYONE = ["Sam", "Alice", "Bob", "Lena", "Eva", "Ana", "Maria", "Jonas", "Diego", "Daan", "João", "Sophia", "Priya"]
SETTINGS = st.fixed_dictionaries({"extract.me": st.sampled_from([EVERYONE, EVERYONE, EVERYONE, []]),
                                  "extract.date_order": st.sampled_from(["auto", "MDY"]),
                                  "extract.pseudonymize": st.booleans(), "extract.write_plain": st.booleans()})


def check_extract(files: dict, originals: dict, config: dict) -> None:
    """Run extract on `files` (name -> bytes); `originals`: what each source's text was, where it is known."""
    with tempfile.TemporaryDirectory() as folder:
        raw, out = Path(folder) / "raw", Path(folder) / "out"
        raw.mkdir()
        for name, data in files.items():
            (raw / name).write_bytes(data)
        cfg = load_config(None, {"paths.raw": str(raw), "paths.cleaned": str(out), **config})
        try:
            result = extraction.run(cfg, progress=False, jobs=1)
        except HiveError as e:
            assert "\n" not in str(e)
            event(f"HiveError: {str(e)[:30]}")
            return
        event(f"{len(result.written)} written, {len(result.skipped)} skipped")
        for report in result.written:
            assert report.lines == report.messages + report.continuation_lines + report.skipped_lines \
                + report.dropped_lines
            if report.source in originals:
                assert report.lines == line_count(originals[report.source]), report.source
            with open(out / report.output, encoding="utf-8") as f:
                assert sum(1 for _ in f) == report.messages
        for report in result.skipped:
            assert report.reason and "\n" not in report.reason
            event(f"skipped: {report.reason[:25]}")
        samples.load_chats(out)
        shutil.rmtree(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(exports().flatmap(mutated), min_size=1, max_size=3), SETTINGS)
def test_mutated_exports_never_crash_and_every_line_is_accounted_for(texts, config):
    files = {f"chat{i}.txt": data for i, data in enumerate(texts)}
    check_extract(files, files, config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(zips(), exports(), SETTINGS)
def test_mutated_zips_never_crash_and_the_chats_beside_them_are_extracted(zipped, beside, config):
    data, members = zipped
    files = {"WhatsApp Chat - Trip.zip": data, "beside.txt": beside}
    originals = {f"WhatsApp Chat - Trip.zip/{name}": text for name, text in members.items()}
    check_extract(files, {**originals, "beside.txt": beside}, config)
