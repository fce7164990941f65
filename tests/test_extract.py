"""extract.py end to end on a temporary dataset/raw: outputs and their schema, zips, bad inputs, exit codes,
who "me" is, privacy options and the summary."""

import hashlib
import json
import shutil
import zipfile

import pytest

import extract
from hive import extraction
from hive.config import load_config
from hive.privacy import Pseudonyms, Redactor
from tests.conftest import FIXTURES

DIR = FIXTURES / "whatsapp"
KEYS = ["chat", "timestamp", "sender", "is_me", "kind", "text"]


@pytest.fixture
def raw(project):
    folder = project / "dataset" / "raw"
    folder.mkdir(parents=True)
    return folder


def add(raw, name, target=None):
    dest = raw / (target or name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DIR / name, dest)
    return dest


def add_zip(raw, zip_name, fixture):
    """A zip as WhatsApp makes it: _chat.txt plus media files."""
    path = raw / zip_name
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(DIR / fixture, "_chat.txt")
        zf.writestr("00000014-PHOTO-2024-03-14-09-02-00.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


def rows(project, chat):
    lines = (project / "dataset" / "cleaned" / f"{chat}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def summary(project):
    return json.loads((project / "dataset" / "cleaned" / "_summary.json").read_text(encoding="utf-8"))


def test_extracts_every_message_with_the_contract_schema(raw, project, capsys):
    src = add(raw, "android_en_features.txt", "WhatsApp Chat with Trip.txt")
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    assert extract.main([]) == 0
    out = rows(project, "WhatsApp Chat with Trip")
    assert len(out) == 23 and all(list(r) == KEYS for r in out)
    assert out[3] == {"chat": "WhatsApp Chat with Trip", "timestamp": "2024-03-14T21:03",
                      "sender": "<PHONE>", "is_me": False, "kind": "text", "text": "hello from a number"}  # redacted
    assert out[0]["sender"] is None and out[0]["kind"] == "system"
    assert {r["sender"] for r in out if r["is_me"]} == {"Sam"}       # from "You deleted this message"
    assert out[13]["text"] == "location: <URL>"                      # redacted by default
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before    # inputs never modified
    printed = capsys.readouterr().out
    assert "extract: settings" in printed and "next: python convert.py" in printed
    assert 'sent "You deleted this message"' in printed              # the evidence for "me" is shown
    s = summary(project)
    assert s["me"]["names"] == ["Sam"] and s["files"][0]["kinds"]["system"] == 5
    assert s["files"][0]["format"] == "android" and s["files"][0]["date_order"] == "MDY"


def test_zips_of_the_same_base_name_do_not_collide_and_bad_files_are_skipped(raw, project, capsys):
    add_zip(raw, "WhatsApp Chat - Hiking Club.zip", "ios_en_features.txt")
    add_zip(raw, "old/WhatsApp Chat - Hiking Club.zip".replace("/", "_"), "ios_one_to_one.txt")
    add(raw, "a04_android_gb_24h.txt", "a/chat.txt")
    add(raw, "a07_android_de_dots.txt", "b/chat.txt")
    add(raw, "not_an_export.txt")
    add(raw, "utf16_bom.txt")
    (raw / "empty.txt").write_bytes(b"")
    (raw / "binary.txt").write_bytes(b"\x00\x01\x02garbage")
    (raw / "broken.zip").write_bytes(b"PK\x03\x04 truncated")
    (raw / "latin1.txt").write_bytes("14/03/2024, 22:42 - Zoë: hi\n".encode("latin-1"))
    assert extract.main(["--me", "Sam", "--me", "Alice"]) == 0
    cleaned = project / "dataset" / "cleaned"
    assert sorted(p.name for p in cleaned.glob("*.jsonl")) == [
        "WhatsApp Chat - Hiking Club.jsonl", "chat (b).jsonl", "chat.jsonl", "latin1.jsonl",
        "old_WhatsApp Chat - Hiking Club.jsonl", "utf16_bom.jsonl"]
    reasons = {f["source"]: f["reason"] for f in summary(project)["files"] if f["status"] == "skipped"}
    assert reasons == {
        "binary.txt": "binary file (contains NUL bytes)", "broken.zip": reasons["broken.zip"],
        "empty.txt": "empty file", "not_an_export.txt": reasons["not_an_export.txt"]}
    assert reasons["broken.zip"].startswith("broken zip") and "no WhatsApp message header" in reasons[
        "not_an_export.txt"]
    assert "skipped: empty file" in capsys.readouterr().out
    ios = rows(project, "WhatsApp Chat - Hiking Club")
    assert [r["text"] for r in ios if r["is_me"]] == ["You deleted this message.", "see you at the top", "two\nlines"]
    assert rows(project, "utf16_bom")[0]["is_me"] is True                   # Alice
    assert rows(project, "latin1")[0]["sender"] == "Zoë"                   # Latin-1 reads as Windows-1252


def test_me_detected_from_iphone_one_to_one_chat(raw, project):
    add(raw, "ios_one_to_one.txt")
    assert extract.main([]) == 0
    assert [r["sender"] for r in rows(project, "ios_one_to_one") if r["is_me"]] == ["Sam"]
    assert "two-person chat" in summary(project)["me"]["evidence"][0]


def test_me_detected_as_the_sender_common_to_all_chats(raw, project):
    for i, other in enumerate(["Priya", "Omar"]):
        (raw / f"c{i}.txt").write_text(f"14/03/2024, 22:42 - {other}: hi\n14/03/2024, 22:43 - Sam: hey\n")
    assert extract.main([]) == 0
    assert summary(project)["me"]["names"] == ["Sam"]


def test_ambiguous_me_is_an_error_that_says_how_to_set_it(raw, project, capsys):
    add(raw, "a04_android_gb_24h.txt")
    from hive.cli import run

    assert run(lambda: extract.main([])) == 1
    err = capsys.readouterr().err
    assert "could not tell which sender is you" in err and '--me "Your Name"' in err and "extract.me" in err


def test_configured_me_that_matches_nobody_is_an_error(raw, capsys):
    add(raw, "a04_android_gb_24h.txt")
    from hive.cli import run

    assert run(lambda: extract.main(["--me", "Nobody"])) == 1
    assert "matches no sender" in capsys.readouterr().err


def test_missing_or_empty_input_and_nothing_usable(project, capsys):
    from hive.cli import run

    assert run(lambda: extract.main([])) == 1
    assert "put the .txt or .zip there" in capsys.readouterr().err
    raw = project / "dataset" / "raw"
    raw.mkdir(parents=True)
    (raw / ".gitkeep").write_text("")
    assert run(lambda: extract.main([])) == 1
    shutil.copy(DIR / "not_an_export.txt", raw)
    assert run(lambda: extract.main([])) == 1
    err = capsys.readouterr().err
    assert "no usable WhatsApp export" in err and "not_an_export.txt" in err


def test_input_and_output_flags(tmp_path, project):
    src, dst = tmp_path / "exports", tmp_path / "out"
    src.mkdir()
    shutil.copy(DIR / "android_de.txt", src)
    assert extract.main(["--input", str(src), "--output", str(dst)]) == 0
    assert [r["sender"] for r in rows_at(dst, "android_de") if r["is_me"]] == ["Lena", "Lena", "Lena"]


def rows_at(folder, chat):
    return [json.loads(line) for line in (folder / f"{chat}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_pseudonyms_redaction_and_plain_output(raw, project):
    (raw / "WhatsApp Chat with Priya K.txt").write_text(
        "14/03/2024, 22:40 - Priya K: call me on +44 7700 900123 or mail priya@example.com\n"
        "14/03/2024, 22:41 - Sam: ok Priya K, see https://example.com/x\nsecond line\n"
        "14/03/2024, 22:42 - Sam: https://only.a/link\n"
        "14/03/2024, 22:43 - Sam: <Media omitted>\n"
        "14/03/2024, 22:44 - Omar: IMG-20240314-WA0001.jpg (file attached)\nsee www.omar.dev\n",
        encoding="utf-8")
    assert extract.main(["--me", "Sam", "--set", "extract.pseudonymize=true", "--set", "extract.write_plain=true"]) == 0
    out = rows(project, "WhatsApp Chat with Person 1")
    assert [(r["chat"], r["sender"], r["text"]) for r in out] == [
        ("WhatsApp Chat with Person 1", "Person 1", "call me on <PHONE> or mail <EMAIL>"),
        ("WhatsApp Chat with Person 1", "Sam", "ok Person 1, see <URL>\nsecond line"),
        ("WhatsApp Chat with Person 1", "Sam", "<URL>"),
        ("WhatsApp Chat with Person 1", "Sam", "<Media omitted>"),
        ("WhatsApp Chat with Person 1", "Person 2", "IMG-20240314-WA0001.jpg (file attached)\nsee <URL>"),
    ]
    plain = (project / "dataset" / "cleaned" / "WhatsApp Chat with Person 1.txt").read_text(encoding="utf-8")
    assert plain == "ok Person 1, see second line\n"


def test_outputs_of_earlier_runs_are_reported_as_stale(raw, project, capsys):
    add(raw, "android_nl.txt")
    stale = project / "dataset" / "cleaned" / "gone.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    assert extract.main(["--me", "Eva"]) == 0
    assert "not from this run" in capsys.readouterr().out and stale.exists()


def test_redact_can_be_turned_off(raw, project):
    (raw / "c.txt").write_text("14/03/2024, 22:40 - Sam: https://x.org +44 7700 900123\n")
    assert extract.main(["--me", "Sam", "--set", "extract.redact=[]"]) == 0
    assert rows(project, "c")[0]["text"] == "https://x.org +44 7700 900123"


def test_redactor_and_pseudonyms_units():
    r = Redactor(["url", "email", "phone"])
    assert r("ring (415) 555-0134, 98470 12345 or +49 30 1234 5678") == "ring <PHONE>, <PHONE> or <PHONE>"
    assert r("on 2024-03-14 at 10:30-11:30, 1,000,000 and id12345678901") == \
        "on 2024-03-14 at 10:30-11:30, 1,000,000 and id12345678901"
    assert r("see https://x.org/a?b=1. or www.y.com") == "see <URL>. or <URL>"
    p = Pseudonyms(["Anu", "Anu - Office", "Sam"], keep=["sam"])
    assert p.mapping == {"Anu": "Person 1", "Anu - Office": "Person 2"}
    assert p.text("Anu - Office told Anu and Sam; Anuradha stays") == "Person 2 told Person 1 and Sam; Anuradha stays"


def test_library_run_returns_a_result(raw, project):
    add(raw, "android_nl.txt")
    result = extraction.run(load_config(None, {"extract.me": ["Eva"]}), progress=False)
    assert [c.chat for c in result.written] == ["android_nl"]
    assert result.written[0].kinds == {"media": 1, "deleted": 2, "location": 1, "call": 1}
    assert result.written[0].my_messages == 2 and result.me.reason == "configured (extract.me)"


def test_ambiguous_dates_take_the_order_that_one_file_of_the_same_format_proves(raw, project, capsys):
    """One phone's exports: only the chat with Priya holds a day > 12; the short chats say nothing themselves."""
    (raw / "WhatsApp Chat with Priya.txt").write_text("02/03/2024, 10:00 - Priya: hi\n24/03/2024, 10:05 - Sam: ok\n")
    for name in ("Omar", "Lena", "Ravi"):
        (raw / f"WhatsApp Chat with {name}.txt").write_text(f"03/04/2024, 09:00 - {name}: hey\n"
                                                          f"03/04/2024, 09:01 - Sam: yo\n")
    (raw / "_chat.txt").write_text("[03/04/2024, 09:00:00] Maya: an iPhone export: another format\n"
                                   "[03/04/2024, 09:00:01] Sam: x\n")
    assert extract.main(["--me", "Sam"]) == 0
    files = {f["source"]: (f["date_order"], f["date_order_reason"]) for f in summary(project)["files"]}
    decided = ("DMY", "decided by file WhatsApp Chat with Priya.txt (day > 12 in 24/03/2024)")
    assert files == {"WhatsApp Chat with Priya.txt": ("DMY", "day > 12 in 24/03/2024"),
                     "WhatsApp Chat with Omar.txt": decided, "WhatsApp Chat with Lena.txt": decided,
                     "WhatsApp Chat with Ravi.txt": decided,
                     "_chat.txt": ("DMY", "GUESSED: no date decides it; set extract.date_order (DMY or MDY) if wrong")}
    assert rows(project, "WhatsApp Chat with Omar")[0]["timestamp"] == "2024-04-03T09:00"
    printed = capsys.readouterr().out
    assert "date order DMY: decided by file WhatsApp Chat with Priya.txt (day > 12 in 24/03/2024)" in printed
    assert "date order DMY: GUESSED" in printed
    assert extract.main(["--me", "Sam", "--set", "extract.date_order=MDY"]) == 0
    assert rows(project, "WhatsApp Chat with Omar")[0]["timestamp"] == "2024-03-04T09:00"


def test_media_with_captions_or_document_names_are_never_training_targets(raw, project):
    import convert
    from hive.fileio import read_jsonl

    (raw / "WhatsApp Chat with Priya.txt").write_text(
        "14/03/2024, 10:00 - Priya: what did you send?\n"
        "14/03/2024, 10:01 - Sam: <Media omitted>\nReport.pdf\n"
        "14/03/2024, 10:02 - Priya: and the photo?\n"
        "14/03/2024, 10:03 - Sam: IMG-20240314-WA0004.jpg (file attached)\nthe view from the top\n"
        "14/03/2024, 10:04 - Priya: nice\n"
        "14/03/2024, 10:05 - Sam: thanks, real text\n", encoding="utf-8")
    (raw / "_chat.txt").write_text(
        "[14/03/2024, 10:00:00] Priya: the report?\n"
        "[14/03/2024, 10:01:00] Sam: Report.pdf • \u200e4 pages \u200e<attached: 00000008-Report.pdf>\n"
        "[14/03/2024, 10:02:00] Priya: thanks\n"
        "[14/03/2024, 10:03:00] Sam: you're welcome\n", encoding="utf-8")
    assert extract.main(["--me", "Sam"]) == 0
    mine = [(r["kind"], r["text"]) for chat in ("WhatsApp Chat with Priya", "chat") for r in rows(project, chat)
            if r["is_me"]]
    assert mine == [("media", "<Media omitted>\nReport.pdf"), ("media", "IMG-20240314-WA0004.jpg (file attached)\n"
                    "the view from the top"), ("text", "thanks, real text"),
                    ("media", "Report.pdf • 4 pages <attached: 00000008-Report.pdf>"), ("text", "you're welcome")]
    assert convert.main(["--tokenizer", "estimate", "--set", "convert.validation_fraction=0"]) == 0
    targets = [s["messages"][-1]["content"] for s in read_jsonl(project / "dataset" / "final" / "personality.jsonl")]
    assert targets == ["thanks, real text", "you're welcome"]
