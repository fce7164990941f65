"""The WhatsApp parser: every header variant of docs/whatsapp-formats.md (A1-A15, I1-I9, L1-L2), body placeholders
in several languages, invisible characters, encodings, date order, and properties on random text."""

import io
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive import whatsapp
from hive.whatsapp import Message, NotAnExport
from tests.conftest import FIXTURES, Parsed, parse_export

DIR = FIXTURES / "whatsapp"


def parse_file(name: str, date_order: str = "auto") -> Parsed:
    return parse_export((DIR / name).read_bytes(), date_order)


# Each variant file holds the same three messages (14 Mar 2024 22:42:05 / 22:43:10, 15 Mar 2024 09:05:30),
# rendered in that variant's header shape; the second message has a continuation line.
VARIANTS = {
    "a01_android_us_12h_nnbsp": ("android", "MDY"), "a02_android_us_12h_space": ("android", "MDY"),
    "a03_android_us_24h": ("android", "MDY"), "a04_android_gb_24h": ("android", "DMY"),
    "a05_android_in_12h_nnbsp": ("android", "DMY"), "a06_android_in_12h_space": ("android", "DMY"),
    "a07_android_de_dots": ("android", "DMY"), "a08_android_ru_dots_4y": ("android", "DMY"),
    "a09_android_cs_no_comma": ("android", "DMY"), "a10_android_nl_dashes": ("android", "DMY"),
    "a11_android_es_pm_nbsp": ("android", "DMY"), "a12_android_ptbr": ("android", "DMY"),
    "a13_android_ca_iso_pm": ("android", "YMD"), "a14_android_year_first": ("android", "YMD"),
    "a15_android_de_12h_words": ("android", "DMY"),
    "i01_ios_gb_24h": ("iphone", "DMY"), "i02_ios_us_12h_nnbsp": ("iphone", "MDY"),
    "i03_ios_us_12h_space": ("iphone", "MDY"), "i04_ios_us_24h": ("iphone", "MDY"),
    "i05_ios_in_12h_nnbsp": ("iphone", "DMY"), "i06_ios_de_dots": ("iphone", "DMY"),
    "i07_ios_fi_time_dots": ("iphone", "DMY"), "i08_ios_no_comma": ("iphone", "MDY"),
    "i09_ios_am_pm_dots": ("iphone", "DMY"),
    "l01_old_iphone": ("iphone-old", "DMY"), "l02_old_iphone_ampm": ("iphone-old", "MDY"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_header_variant(name):
    platform, order = VARIANTS[name]
    chat = parse_file(name + ".txt")
    year = "2022" if name == "i08_ios_no_comma" else "2024"
    stamps = ["14T22:42:05", "14T22:43:10", "15T09:05:30"]
    if platform == "android":     # Android exports have no seconds
        stamps = [s[:-3] for s in stamps]
    assert chat.format.platform == platform
    assert chat.format.date_order == order
    assert chat.messages == [
        Message(f"{year}-03-{stamps[0]}", "Alice", "Hi there", "text"),
        Message(f"{year}-03-{stamps[1]}", "Bob", "first line\nsecond line", "text"),
        Message(f"{year}-03-{stamps[2]}", "Alice", "ok", "text"),
    ]
    assert chat.stats.skipped_lines == 0 and chat.stats.lines == 4


def test_android_english_features():
    chat = parse_file("android_en_features.txt")
    t = "2024-03-14T21:"
    assert chat.messages == [
        Message(t + "00", None, "Messages and calls are end-to-end encrypted. Only people in this chat can read, "
                "listen to, or share them. Learn more.", "system"),
        Message(t + "01", None, 'Dmitry created group "Trip: 2024"', "system"),
        Message(t + "02", None, "Dmitry added you to a group in the community: Hikers", "system"),
        Message(t + "03", "+91 98470 12345", "hello from a number", "text"),
        Message(t + "04", "Karan", "hi, not a contact", "text"),
        Message(t + "05", "Ammu :)", "name with a colon", "text"),
        Message(t + "06", "Anu - Office", "name with a dash", "text"),
        Message(t + "07", "Nikhil 🏏", "<Media omitted>", "media"),
        Message(t + "08", "Sam", "You deleted this message", "deleted"),
        Message(t + "09", "Nikhil 🏏", "This message was deleted", "deleted"),
        Message(t + "10", "Sam", "see you at 5", "edited"),
        Message(t + "11", "Nikhil 🏏", "null", "view_once"),
        Message(t + "12", "Sam", "POLL:\nWhere to eat?\nOPTION: Pizza (2 votes)\nOPTION: Sushi (1 vote)", "poll"),
        Message(t + "13", "Sam", "location: https://maps.google.com/?q=12.9,77.6", "location"),
        Message(t + "14", "Nikhil 🏏", "live location shared", "location"),
        Message(t + "15", "Anu - Office", "Priya.vcf (file attached)", "contact"),
        Message(t + "16", "Anu - Office", "Missed voice call", "call"),
        Message(t + "17", "Sam", "IMG-20240314-WA0004.jpg (file attached)\nlook at this", "media"),
        # lines that look like headers of another shape, or have no calendar date, stay inside the message
        Message(t + "18", "Sam", "pasting a log:\n14/03/2024, 22:42 - Bob: a pasted header of another shape\n"
                "[3/14/24, 9:00:00 PM] Eve: and an iPhone one\n"
                "13/25/24, 9:00\u202fPM - Mallory: same shape but no calendar date", "text"),
        Message(t + "19", "Sam", "indented\n\n\tafter a blank line", "text"),
        Message(t + "20", None, "You added Rahul", "system"),
        Message(t + "21", None, "Dmitry changed the subject from “Trip” to “Trip: 2024”", "system"),
        Message(t + "22", "Nikhil 🏏", "Waiting for this message", "deleted"),
    ]
    assert chat.stats.deleted_by_me == {"Sam": 1}
    assert chat.stats.not_me == {"Rahul": 1, "Dmitry": 1}
    assert chat.stats.you_events == 1
    assert chat.stats.lines == 33 and chat.stats.skipped_lines == 0


def test_iphone_features_attributed_system_lines_crlf_and_invisible_marks():
    chat = parse_file("ios_en_features.txt")
    t = "2024-03-14T09:"
    assert chat.messages == [
        Message(t + "00:00", None, "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
                "WhatsApp, can read or listen to them.", "system"),
        Message(t + "00:01", None, "Dmitry created group “Hiking Club”", "system"),
        Message(t + "00:02", None, "Dmitry added you", "system"),
        Message(t + "01:00", "Dmitry", "image omitted", "media"),
        Message(t + "02:00", "Dmitry", "<attached: 00000014-PHOTO-2024-03-14-09-02-00.jpg>", "media"),
        Message(t + "03:00", "Priya (Toronto)", "Route.pdf • 3 pages document omitted", "media"),
        Message(t + "04:00", "+44 7700 900123", "This message was deleted.", "deleted"),
        Message(t + "05:00", "Sam", "You deleted this message.", "deleted"),
        Message(t + "06:00", "Sam", "see you at the top", "edited"),
        Message(t + "07:00", "Priya (Toronto)", "Contact card omitted", "contact"),
        Message(t + "08:00", "Priya (Toronto)", "Location: https://maps.google.com/?q=51.5,-0.1", "location"),
        Message(t + "09:00", "Sam", "two\nlines", "text"),
        Message(t + "10:00", "Karan", "hi", "text"),
        Message(t + "11:00", "+44 7700 900123", "<attached: 00000042-Karan.vcf>", "contact"),
        Message(t + "12:00", None, "Sam changed the group description", "system"),
    ]
    assert chat.stats.attributed == {"Hiking Club": 2, "Dmitry": 1}
    assert chat.stats.deleted_by_me == {"Sam": 1}


@pytest.mark.parametrize("name, expected", [
    ("android_de.txt", [
        (None, "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt. Niemand außerhalb dieses Chats kann sie lesen.",
         "system"),
        ("Jonas", "<Medien ausgeschlossen>", "media"), ("Jonas", "Diese Nachricht wurde gelöscht.", "deleted"),
        ("Lena", "Du hast diese Nachricht gelöscht.", "deleted"),
        ("Lena", "IMG-20240314-WA0001.jpg (Datei angehängt)", "media"),
        ("Lena", "Standort: https://maps.google.com/?q=52.5,13.4", "location")]),
    ("android_es.txt", [
        ("Diego", "<Multimedia omitido>", "media"), ("Diego", "Se eliminó este mensaje.", "deleted"),
        ("Ana", "Eliminaste este mensaje.", "deleted"), ("Ana", "nos vemos", "edited"), ("Ana", "medianoche", "text")]),
    ("android_nl.txt", [
        ("Daan", "<Media weggelaten>", "media"), ("Daan", "Dit bericht is verwijderd", "deleted"),
        ("Eva", "U hebt dit bericht verwijderd", "deleted"),
        ("Eva", "locatie: https://maps.google.com/?q=52.3,4.9", "location"), ("Daan", "Gemiste spraakoproep", "call")]),
    ("android_ptbr.txt", [
        ("João", "<Mídia oculta>", "media"), ("João", "Esta mensagem foi apagada", "deleted"),
        ("Maria", "Você apagou esta mensagem", "deleted"), ("Maria", "até amanhã", "edited")]),
    ("ios_de.txt", [
        ("Jonas", "Bild weggelassen", "media"),
        ("Jonas", "<Anhang: 00000003-PHOTO-2024-03-14-22-41-00.jpg>", "media"),
        ("Lena", "Kontaktkarte ausgelassen", "contact")]),
    ("old_iphone_system.txt", [
        (None, "Sophia created this group", "system"), ("Sophia", "hello", "text"),
        (None, "Missed Voice Call", "system"), ("Sophia", "<image omitted>", "media")]),
])
def test_localized_placeholders(name, expected):
    assert [(m.sender, m.text, m.kind) for m in parse_file(name).messages] == expected


def test_localized_you_deleted_marks_me():
    for name, me in [("android_de.txt", "Lena"), ("android_es.txt", "Ana"), ("android_nl.txt", "Eva"),
                     ("android_ptbr.txt", "Maria")]:
        assert parse_file(name).stats.deleted_by_me == {me: 1}, name


def test_twelve_am_pm_and_out_of_order_lines_are_kept_in_file_order():
    stamps = [m.timestamp for m in parse_file("android_es.txt").messages]
    assert stamps[-2:] == ["2024-03-14T22:43", "2024-03-14T00:10"]     # 12:10 a. m. is 00:10; never sorted


@pytest.mark.parametrize("name", ["windows_bom_crlf.txt", "utf16_bom.txt"])
def test_bom_crlf_and_utf16(name):
    assert parse_file(name).messages == [Message("2024-03-14T22:42", "Alice", "hi", "text"),
                                         Message("2024-03-14T22:43", "Bob", "a\nb", "text")]


def test_binary_and_non_exports_are_rejected():
    with pytest.raises(NotAnExport, match="binary"):
        whatsapp.open_text(io.BytesIO(b"PK\x03\x04\x00\x00 binary"))
    with pytest.raises(NotAnExport, match="no WhatsApp message header"):
        parse_file("not_an_export.txt")
    with pytest.raises(NotAnExport):
        parse_export("")


def test_date_order_from_chronology_config_and_guess():
    chat = parse_file("ambiguous_dates.txt")
    assert (chat.format.date_order, [m.timestamp[:10] for m in chat.messages]) == (
        "DMY", ["2024-02-01", "2024-02-03", "2024-03-01"])
    assert chat.format.date_order_reason.startswith("chronology")
    assert parse_file("ambiguous_dates.txt", date_order="MDY").format.date_order == "MDY"
    # a day > 12 beats the configured order (which would make the dates impossible)
    assert parse_file("a04_android_gb_24h.txt", date_order="MDY").format.date_order == "DMY"
    guessed = parse_export("01/02/2024, 10:00 - A: x\n")
    assert guessed.format.date_order == "DMY" and "GUESSED" in guessed.format.date_order_reason


def test_date_order_decided_by_a_late_header():
    lines = [f"0{d}/0{m}/2024, 10:00 - A: x\n" for m in range(1, 10) for d in range(1, 10)] * 30
    lines.append("05/13/2024, 10:00 - A: month-first after all\n")
    assert parse_export("".join(lines)).format.date_order == "MDY"


def test_shape_is_locked_to_the_majority_of_the_first_headers():
    text = "[14/03/2024, 22:42:05] A: pasted first\n" + "14/03/2024, 22:43 - B: hi\n" * 3
    chat = parse_export(text)
    assert chat.format.platform == "android" and chat.format.others == ()
    assert chat.stats.skipped_lines == 1 and len(chat.messages) == 3
    assert [(f.example, f.lines) for f in chat.stats.foreign.values()] == [("[14/03/2024, 22:42:05] ", 1)]


def test_lines_before_the_first_header_are_counted_as_skipped():
    chat = parse_export("garbage\n\n14/03/2024, 22:43 - B: hi\n")
    assert (chat.stats.skipped_lines, chat.stats.lines, chat.messages) == (2, 3, [Message("2024-03-14T22:43", "B", "hi",
                                                                                    "text")])


ANDROID, IOS, OLD_IPHONE = "14/03/2024, 22:42 - Sam: ", "[14/03/2024, 22:42:05] Sam: ", "13/06/16 10:59:59: Sam: "
L = "\u200e"
# Every media form of docs/whatsapp-formats.md ("Message bodies"), in each language documented there: exports without
# media (placeholders), with media (file names, attachment tags), documents (name and pages), captions and Android's
# file name on the line after `<Media omitted>`.
MEDIA = [(ANDROID, p) for p in ["<Media omitted>", "<Medien ausgeschlossen>", "<Multimedia omitido>",
                                "<Media weggelaten>", "<Mídia oculta>", "<Без медиафайлов>", "<Média vynechány>"]] + [
    (ANDROID, f"{name} {attached}") for attached in ["(file attached)", "(Datei angehängt)", "(archivo adjunto)",
                                                     "(bestand bijgevoegd)", "(arquivo anexado)"]
    for name in ["IMG-20240314-WA0004.jpg", "VID-20240314-WA0005.mp4", "PTT-20240314-WA0006.opus",
                 "AUD-20240314-WA0007.m4a", "STK-20240314-WA0008.webp", "GIF-20240314-WA0009.mp4", "Report.pdf"]] + [
    (IOS, L + p) for p in ["image omitted", "video omitted", "audio omitted", "sticker omitted", "GIF omitted",
                           "Bild weggelassen", "Video weggelassen", "Audio weggelassen", "Sticker weggelassen",
                           "GIF weggelassen", "immagine omessa", "imagen omitida", "imagem não revelada"]] + [
    (IOS, f"Report.pdf • {L}3 pages {L}document omitted"), (IOS, f"Bericht.pdf • {L}3 Seiten {L}Dokument weggelassen"),
    (IOS, f"Report.pdf • {L}4 pages {L}<attached: 00000008-Report.pdf>"),
    (IOS, f"Bericht.pdf • {L}4 Seiten {L}<Anhang: 00000008-Bericht.pdf>")] + [
    (IOS, f"{L}<{tag}: 00000014-{kind}-2024-03-14-09-02-00.{ext}>") for tag in ["attached", "Anhang"]
    for kind, ext in [("PHOTO", "jpg"), ("VIDEO", "mp4"), ("AUDIO", "opus"), ("STICKER", "webp"), ("GIF", "mp4")]] + [
    (OLD_IPHONE, f"<{L}{p} omitted>") for p in ["image", "video", "audio", "sticker", "GIF"]]
CONTACTS = [(ANDROID, "Priya.vcf (file attached)"), (ANDROID, "Priya.vcf (Datei angehängt)"),
            (IOS, L + "Contact card omitted"), (IOS, L + "Kontaktkarte ausgelassen"),
            (IOS, L + "<attached: 00000042-Priya.vcf>"), (IOS, L + "<Anhang: 00000042-Priya.vcf>")]


def one_message(header: str, body: str) -> Message:
    (message,) = parse_export(header + body + "\n").messages
    return message


@pytest.mark.parametrize("header, body", MEDIA + CONTACTS)
@pytest.mark.parametrize("caption", ["", "\nlook at this", "\nReport.pdf"])
def test_every_media_form_is_media_and_keeps_its_caption(header, body, caption):
    """Never `text` (convert never makes a media message a training target); a caption, or the document name that
    Android puts on the next line, stays in the text after the placeholder line."""
    message = one_message(header, body + caption)
    assert message.kind == ("contact" if (header, body) in CONTACTS else "media")
    assert message.text == (body + caption).replace(L, "")
    assert message.sender == "Sam"


@pytest.mark.parametrize("header, body, kind", [
    (ANDROID, "This message was deleted", "deleted"), (IOS, L + "This message was deleted.", "deleted"),
    (ANDROID, "Questo messaggio è stato eliminato.", "deleted"), (ANDROID, "null", "view_once"),
    (ANDROID, "Missed video call", "call"), (ANDROID, "POLL:\nQ?\nOPTION: a (1 vote)", "poll"),
    (ANDROID, "Posizione: https://maps.google.com/?q=1,2", "location"), (ANDROID, "live location shared", "location"),
    (ANDROID, "hello <This message was edited>", "edited"), (ANDROID, "POLL: no options", "text"),
    (ANDROID, "(smile)", "text"), (ANDROID, "see https://example.com", "text"), (ANDROID, "location: home", "text"),
    (ANDROID, "my image omitted here", "text"), (ANDROID, "<Media omitted> was a joke", "text"),
    (IOS, "an <attached: note> in text", "text"), (ANDROID, "I said\n<Media omitted>", "text"),
])
def test_message_kinds(header, body, kind):
    assert one_message(header, body).kind == kind


_HEADERISH = st.sampled_from([
    "14/03/2024, 22:42 - ", "3/14/24, 10:42\u202fPM - ", "[14/03/2024, 22:42:05] ", "13/06/16 10:59:59: ",
    "99/99/2024, 22:42 - ", "Name: ", ": ", "\u200e", "\u202a", "~\u202f", "<Media omitted>", "null", "POLL:",
    "\nOPTION: a", " <This message was edited>", "\r", "\r\n", "\n", "\ufeff",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_HEADERISH, st.text(max_size=12)), max_size=30))
def test_arbitrary_text_never_crashes_and_every_line_is_accounted_for(pieces):
    text = "".join(pieces)
    try:
        chat = parse_export(text)
    except NotAnExport:
        return
    lines = io.StringIO(text.lstrip("\ufeff"), newline=None).readlines()     # \r\n, \r and \n end lines
    stats = chat.stats
    assert stats.lines == len(lines)
    assert stats.lines == stats.messages + stats.continuation_lines + stats.skipped_lines + stats.dropped_lines
    assert stats.messages == len(chat.messages)
    assert set(m.kind for m in chat.messages) <= set(whatsapp.KINDS)
    assert all(m.timestamp[:2] == "20" for m in chat.messages)
    # every line after the first header survives in some message (bidi marks removed, ends stripped)
    joined = "\n".join(m.text for m in chat.messages)
    for line in lines[chat.stats.skipped_lines:]:
        content = line.translate(whatsapp._BIDI).strip()
        if content and not whatsapp._CANDIDATE.match(line) and "<" not in content:
            assert content in joined


def test_parser_imports_only_the_standard_library():
    code = ("import sys, hive.whatsapp, hive.privacy; "
            "print(sorted({'yaml', 'pandas', 'torch', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=DIR.parents[2])
    assert out.stdout.strip() == "[]"


def detected(text: str) -> whatsapp.Detected:
    return whatsapp.detect(io.StringIO(text))


def test_date_order_pools_the_evidence_of_files_of_the_same_format():
    files = {
        "decisive.txt": detected("24/03/2024, 10:00 - A: x\n"),
        "short.txt": detected("01/02/2024, 10:00 - A: x\n"),
        "unpadded.txt": detected("1/2/2024, 10:00 - A: x\n"),          # another locale: not zero-padded
        "iphone.txt": detected("[01/02/2024, 10:00:00] A: x\n"),        # another header shape
        "year-first.txt": detected("2024/02/01, 10:00 - A: x\n"),
    }
    orders = whatsapp.DateOrders(files)
    assert {name: orders.format(name).date_order_reason for name in files} == {
        "decisive.txt": "day > 12 in 24/03/2024",
        "short.txt": "decided by file decisive.txt (day > 12 in 24/03/2024)",
        "unpadded.txt": whatsapp._GUESSED, "iphone.txt": whatsapp._GUESSED, "year-first.txt": "year first"}
    more = whatsapp.DateOrders({**files, "later.txt": detected("25/12/2024, 10:00 - A: x\n")})
    assert more.format("short.txt").date_order_reason == \
        "from 2 other files of this format (first: decisive.txt, day > 12 in 24/03/2024)"
    # extract.date_order overrides the other files, never a file's own evidence
    configured = whatsapp.DateOrders(files, "MDY")
    assert [configured.format(n).date_order for n in ("decisive.txt", "short.txt")] == ["DMY", "MDY"]


def test_date_order_from_the_chronology_of_all_undecided_files_and_disagreeing_files():
    back_in_mdy = "02/01/2024, 10:00 - A: x\n01/02/2024, 10:00 - A: x\n"     # DMY: 2 Jan -> 1 Feb; MDY goes back
    back_in_dmy = "05/06/2024, 10:00 - A: x\n07/05/2024, 10:00 - A: x\n"
    files = {"a.txt": detected(back_in_mdy), "b.txt": detected(back_in_dmy), "c.txt": detected(back_in_mdy)}
    orders = whatsapp.DateOrders(files)
    assert (orders.format("b.txt").date_order, orders.format("b.txt").date_order_reason) == (
        "DMY", "chronology of 3 files of this format (steps back in time: DMY 1, MDY 2)")
    alone = whatsapp.DateOrders({"b.txt": files["b.txt"]}).format("b.txt")
    assert (alone.date_order, alone.date_order_reason) == ("MDY", "chronology (steps back in time: DMY 1, MDY 0)")
    disagree = whatsapp.DateOrders({**files, "d.txt": detected("24/03/2024, 10:00 - A: x\n"),
                                    "m.txt": detected("03/24/2024, 10:00 - A: x\n")}).format("b.txt")
    assert (disagree.date_order, disagree.date_order_reason) == (
        "MDY", "chronology (steps back in time: DMY 1, MDY 0); files of this format disagree (DMY: d.txt, MDY: m.txt)")
