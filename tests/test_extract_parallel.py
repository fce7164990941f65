"""One export read by several processes: the pieces are cut at message headers (whatsapp.message_starts) and the
output and summary are byte for byte those of one process, whatever falls on a cut."""

import json
import random
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive import extraction, whatsapp
from hive.config import load_config
from tests.conftest import parse_export

ME = "Sam"


def chat_text(n: int, seed: int = 0, ambiguous: bool = False) -> str:
    """An Android export of `n` messages with what can go wrong at a cut: lines before the first header,
    multi-line messages (some long), continuation lines that look like headers (another shape, or this shape
    without a calendar date), system events, bidi marks, placeholders, redactable text and "You deleted".
    `ambiguous`: no date component > 12, so only the whole file's chronology tells the date order."""
    rng = random.Random(seed)
    people = [ME, "Priya", "Omar", "\u202a+91 98470 12345\u202c", "~\u202fKaran"]
    bodies = [
        "hi", "see https://example.com/x.", "call +44 7700 900123", "mail a@b.org", "<Media omitted>",
        "IMG-20240314-WA0001.jpg (file attached)\ncaption 98470 12345", "This message was deleted",
        "Priya.vcf (file attached)",
        "null", "POLL:\nWhere?\nOPTION: here (1 vote)", "location: https://maps.google.com/?q=1,2",
        "ok <This message was edited>", "\u200elooks like an iPhone mark", "(smile)", "Missed voice call",
        "first line\nsecond line", "pasted:\n14/03/2024, 22:42 - Bob: another shape\n[3/14/24, 9:00:00 PM] Eve: x",
        "no date:\n3/0/24, 9:00 PM - Mallory: this shape, no calendar date", "long\n" + "more\n" * 40 + "end",
        "\n\n\tindented after blank lines",
    ]
    lines = ["Messages and calls are end-to-end encrypted.\n", "a line before the first header\n"]
    days = minute = 0
    for i in range(n):
        minute += rng.choice([0, 0, 0, 1, 7] + [300] * ambiguous)
        days, minute = days + minute // (24 * 60), minute % (24 * 60)
        date = f"{1 + days // 12 % 12}/{1 + days % 12}" if ambiguous else f"3/{13 + days % 16}"
        head = f"{date}/24, {(minute // 60) % 12 or 12}:{minute % 60:02d}\u202f{'PM' if minute >= 720 else 'AM'} - "
        if i % 97 == 50:
            lines.append(head + rng.choice(["Omar added Priya", "You added Lena", "Priya left"]) + "\n")
        elif i % 211 == 100:
            lines.append(head + f"{ME}: You deleted this message\n")
        else:
            lines.append(f"{head}{rng.choice(people)}: {rng.choice(bodies)}\n")
    return "".join(lines)


def extract(folder: Path, out: Path, jobs: int, **settings) -> extraction.ExtractResult:
    cfg = load_config(None, {"paths.raw": str(folder), "paths.cleaned": str(out), **settings})
    return extraction.run(cfg, progress=False, jobs=jobs)


def outputs(out: Path) -> dict:
    """Every file written, the summary without the output folder's name."""
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    summary = json.loads(files.pop(extraction.SUMMARY_NAME))
    summary.pop("output")
    return {**files, extraction.SUMMARY_NAME: summary}


@pytest.fixture
def parallel(monkeypatch):
    """Every file is cut, however small."""
    monkeypatch.setattr(extraction, "PARALLEL_MIN_BYTES", 0)


@pytest.mark.parametrize("jobs", [2, 4])
@pytest.mark.parametrize("ambiguous", [False, True])
@pytest.mark.parametrize("settings", [
    {"extract.me": [ME]},                                                    # no survey: read once
    {},                                                                      # "me" detected: survey in pieces too
    {"extract.me": [ME], "extract.pseudonymize": True, "extract.write_plain": True},
])
def test_pieces_give_the_bytes_of_one_process(tmp_path, parallel, jobs, ambiguous, settings):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "WhatsApp Chat with Priya.txt").write_text(chat_text(1500, jobs, ambiguous), encoding="utf-8")
    (raw / "small.txt").write_text("14/03/2024, 22:42 - Sam: hi\n14/03/2024, 22:43 - Omar: hey\n")
    fmt = parse_export(chat_text(1500, jobs, ambiguous)).format
    with open(raw / "WhatsApp Chat with Priya.txt", "rb") as f:
        assert len(whatsapp.message_starts(f, fmt, jobs)) == jobs - 1        # really cut
    one = extract(raw, tmp_path / "one", 1, **settings)
    many = extract(raw, tmp_path / "many", jobs, **settings)
    assert outputs(tmp_path / "many") == outputs(tmp_path / "one")
    assert [r.__dict__ for r in many.chats] == [r.__dict__ for r in one.chats]
    assert many.me == one.me and one.me.names == [ME]
    big = one.chats[0]
    assert big.messages == 1500 and big.skipped_lines == 2 and big.my_messages > 0 and len(big.kinds) == 10
    assert big.date_order == "MDY" and big.date_order_reason.startswith("chronology" if ambiguous else "second")


def test_cuts_fall_on_headers_and_never_split_a_message(tmp_path):
    # the middle of the file lies inside one long message whose lines include a same-shape header with no
    # calendar date and headers of other shapes: the cut moves past all of them to the next real header
    before = "".join(f"14/03/2024, 10:{i:02d} - Priya: message {i}\n" for i in range(10))
    long = ("14/03/2024, 11:00 - Omar: a long one\n" + "more words\n" * 20 + "30/02/2024, 11:01 - Fake: no such day\n"
            + "[14/03/2024, 11:02:00] Eve: another shape\n" * 3 + "more words\n" * 5 + "still the same message\n")
    after = "14/03/2024, 11:05 - Sam: the next message\n14/03/2024, 11:06 - Priya: last\n"
    text = before + long + after
    assert len(before) < len(text) // 2 < text.index("Fake")
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    whole = parse_export(text)
    assert whole.format.platform == "android"
    with open(path, "rb") as f:
        cuts = whatsapp.message_starts(f, whole.format, 2)
    assert cuts == [len(before + long)]
    assert parse_pieces(path, whole.format, cuts) == whole.messages
    assert "Fake" in whole.messages[-3].text and whole.messages[-3].text.endswith("\nstill the same message")


def parse_pieces(path, fmt, cuts, stats=None) -> list:
    messages = []
    for start, end in zip([0, *cuts], [*cuts, None]):
        part = whatsapp.ParseStats()
        with whatsapp.open_range(path, start, end) as lines:
            messages += whatsapp.iter_messages(lines, fmt, part)
        if stats is not None:
            stats.add(part)
    return messages


# Lines of an export, most of them headers (of this shape, of another, or without a calendar date).
_LINE = st.tuples(
    st.sampled_from(["14/03/2024, 22:42 - ", "14/03/2024, 22:43 - ", "\u200e14/03/2024, 22:44 - ",
                     "31/02/2024, 22:42 - ", "[14/03/2024, 22:42:05] ", ""]),
    st.lists(st.one_of(st.sampled_from(["Sam: ", ": ", "\u200e", "\u202a", "<Media omitted>", "You added Bo",
                                        "You deleted this message", "é", "\ufeff", "\r", "\x85"]),
                       st.text(max_size=6)), max_size=4).map("".join),
    st.sampled_from(["\n", "\n", "\r\n", "\r", ""]),
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["", "not a header\n", "\ufeff"]), st.lists(_LINE, max_size=40), st.integers(2, 6))
def test_any_cut_export_parses_as_the_whole(start, lines, parts):
    data = (start + "14/03/2024, 22:41 - A: first\n" + "".join(lines)).encode()
    try:
        whole = parse_export(data)
    except whatsapp.NotAnExport:    # NUL bytes
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.txt"
        path.write_bytes(data)
        with open(path, "rb") as f:
            cuts = whatsapp.message_starts(f, whole.format, parts)
        assert cuts == sorted(set(cuts)) and len(cuts) < parts and all(0 < c < len(data) for c in cuts)
        stats = whatsapp.ParseStats()
        assert parse_pieces(path, whole.format, cuts, stats) == whole.messages
    assert stats == whole.stats


def test_utf16_and_line_ends_without_newline_bytes_are_one_piece(tmp_path):
    text = "".join(f"14/03/2024, 22:{i:02d} - A: x\n" for i in range(50))
    fmt = parse_export(text).format
    for name, data in [("u16", text.encode("utf-16")), ("cr", text.replace("\n", "\r").encode())]:
        (tmp_path / name).write_bytes(data)
        with open(tmp_path / name, "rb") as f:
            assert whatsapp.message_starts(f, fmt, 4) == [], name


def test_a_byte_that_is_not_utf8_in_a_later_piece_is_read_as_windows_1252(tmp_path, parallel):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = chat_text(400).encode()
    (raw / "legacy.txt").write_bytes(data[: len(data) * 3 // 4] + b"\xe9" + data[len(data) * 3 // 4:])
    (raw / "good.txt").write_bytes(data)
    for jobs, out in [(1, tmp_path / "one"), (4, tmp_path / "many")]:
        good, legacy = extract(raw, out, jobs, **{"extract.me": [ME]}).chats
        assert (legacy.encoding, good.encoding) == ("windows-1252", "utf-8")
        assert any(note.startswith("not UTF-8: 1 byte(s) read as Windows-1252") for note in legacy.notes)
    assert outputs(tmp_path / "many") == outputs(tmp_path / "one")
    assert "é" in (tmp_path / "one" / "legacy.jsonl").read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["_summary.json", "good.jsonl", "legacy.jsonl"]


def test_small_files_and_zips_are_read_by_this_process(tmp_path, monkeypatch):
    def no_fork(*args):
        raise AssertionError("forked")

    monkeypatch.setattr(extraction.multiprocessing, "get_context", no_fork)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "chat.txt").write_text(chat_text(300), encoding="utf-8")
    assert extract(raw, tmp_path / "out", 4, **{"extract.me": [ME]}).written[0].messages == 300
    monkeypatch.setattr(extraction, "PARALLEL_MIN_BYTES", 0)
    (raw / "chat.txt").unlink()
    with zipfile.ZipFile(raw / "chat.zip", "w") as zf:
        zf.writestr("_chat.txt", chat_text(300))
    assert extract(raw, tmp_path / "out", 4, **{"extract.me": [ME]}).written[0].messages == 300


def test_jobs_flag(project, parallel, capsys):
    import extract
    from hive.cli import run

    raw = project / "dataset" / "raw"
    raw.mkdir(parents=True)
    (raw / "chat.txt").write_text(chat_text(300), encoding="utf-8")
    assert extract.main(["--me", ME, "--jobs", "3"]) == 0
    many = (project / "dataset" / "cleaned" / "chat.jsonl").read_bytes()
    assert extract.main(["--me", ME, "--jobs", "1"]) == 0
    assert (project / "dataset" / "cleaned" / "chat.jsonl").read_bytes() == many
    capsys.readouterr()
    assert run(lambda: extract.main(["--me", ME, "--jobs", "0"])) == 1
    assert "--jobs 0: give 1 or more" in capsys.readouterr().err
