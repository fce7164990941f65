"""WhatsApp chat exports (.txt): header-shape detection, streaming parsing and message classification.

An export is a sequence of messages; each starts with a header line (`DATE, TIME - Sender: text` on Android,
`[DATE, TIME] Sender: text` on iPhone, `DATE TIME: Sender: text` on old iPhones) and may continue over lines
without a header. The facts behind every rule here are in shared/notes/whatsapp-formats.md.

    fmt = detect_format(lines)                  # header shape locked per file + date order from all headers
    for msg in iter_messages(lines, fmt, stats):  # streams: one line in memory at a time
        ...
    parse_export(text)                          # both at once, for text already in memory

This module imports only the standard library: extract.py streams a million-line export in about a second.
"""

import codecs
import contextlib
import datetime
import io
import os
import re
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Optional

KINDS = ("text", "media", "deleted", "edited", "view_once", "poll", "location", "contact", "call", "system")

LRM = "\u200e"
# Bidi controls are never user content in an export (WhatsApp wraps phone numbers and system text in them).
_BIDI = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
# Senders additionally get no-break spaces turned into plain ones (iOS phone numbers, `~\u202fName`).
_SENDER_CHARS = {**_BIDI, 0xA0: " ", 0x202F: " ", 0x2011: "-"}

# ---------------------------------------------------------------------------------------------------------------
# Localized body strings (notes section 2). Compared after bidi controls are removed.

_DELETED_BY_OTHERS = ("This message was deleted", "Diese Nachricht wurde gelöscht", "Se eliminó este mensaje",
                      "Dit bericht is verwijderd", "Esta mensagem foi apagada", "Questo messaggio è stato eliminato")
_DELETED_BY_ME = ("You deleted this message", "Du hast diese Nachricht gelöscht", "Eliminaste este mensaje",
                  "U hebt dit bericht verwijderd", "Você apagou esta mensagem", "Hai eliminato questo messaggio")
_MEDIA_OMITTED = ("<Media omitted>", "<Medien ausgeschlossen>", "<Multimedia omitido>", "<Media weggelaten>",
                  "<Mídia oculta>", "<Без медиафайлов>", "<Média vynechány>",
                  # old iPhones wrap the iOS placeholder in angle brackets
                  "<image omitted>", "<video omitted>", "<audio omitted>", "<sticker omitted>", "<GIF omitted>")
# iOS placeholders; a document's is preceded by its name (`Name.pdf • 3 pages document omitted`)
_IOS_MEDIA = ("image omitted", "video omitted", "audio omitted", "sticker omitted", "GIF omitted",
              "document omitted", "Bild weggelassen", "Video weggelassen", "Audio weggelassen",
              "Sticker weggelassen", "GIF weggelassen", "Dokument weggelassen", "immagine omessa", "imagen omitida",
              "imagem não revelada")
_IOS_CONTACT = ("Contact card omitted", "Kontaktkarte ausgelassen")
_ATTACHED = (" (file attached)", " (Datei angehängt)", " (archivo adjunto)", " (bestand bijgevoegd)",
             " (arquivo anexado)")
_IOS_ATTACHED = ("<attached: ", "<Anhang: ")
_EDITED = ("<This message was edited>", "<Se editó este mensaje.>", "<Mensagem editada>")
_LOCATION = ("location: ", "Location: ", "Standort: ", "locatie: ", "Posizione: ", "Ubicación: ")
_CALLS = ("missed voice call", "missed video call", "gemiste spraakoproep")

_EXACT: dict[str, str] = {}
for _s in _DELETED_BY_OTHERS + _DELETED_BY_ME:
    _EXACT[_s] = _EXACT[_s + "."] = "deleted"
# an undecryptable message has no content either
_EXACT["Waiting for this message"] = "deleted"
_EXACT.update(dict.fromkeys(_MEDIA_OMITTED + _IOS_MEDIA, "media"))
_EXACT.update(dict.fromkeys(_IOS_CONTACT, "contact"))
_EXACT["null"] = "view_once"
_EXACT["live location shared"] = "location"
for _s in _CALLS:
    _EXACT[_s] = _EXACT[_s.capitalize()] = _EXACT[_s.title()] = "call"
_DELETED_BY_ME_SET = frozenset(_DELETED_BY_ME + tuple(s + "." for s in _DELETED_BY_ME))
_PLACEHOLDER_KINDS = frozenset({"media", "deleted", "location", "contact", "call", "view_once"})

# Android system texts that contain ": " so the part before it looks like a sender (notes 1.7, 4.6).
_SYSTEM_IN_SENDER = re.compile(
    r" (?:added|changed|created|removed|joined|left|pinned|deleted|turned|updated|blocked)\b"
    r"|end-to-end encrypt|to a group in the community|^You(?:'re)? |^Your "
)
# Names that "You ..." system events show are someone else (the exporter is "You").
_NOT_ME_EVENTS = re.compile(r"^(?:You added (.+)|You removed (.+)|(.+) added you|Your security code with (.+) changed\b)")

# ---------------------------------------------------------------------------------------------------------------
# Header shapes

_SP = "[ \u00a0\u202f]"
_AMPM = rf"(?:[AaPp]\.?{_SP}?[Mm]\.?|vorm\.|nachm\.)"
# Permissive: any header shape of the catalogue. Only used on the first lines to find the file's own shape.
_CANDIDATE = re.compile(
    r"[\u200e\u200f]?(?P<open>\[)?"
    r"(?P<d1>\d{1,4})(?P<sep>[/.\-])(?P<sp> ?)(?P<d2>\d{1,2})(?P=sep)(?P=sp)(?P<d3>\d{2,4})(?P<dot>\.?)"
    rf"(?P<comma>,?){_SP}"
    r"(?P<h>\d{1,2})(?P<tsep>[:.])\d{2}(?:(?P=tsep)(?P<s>\d{2}))?"
    rf"(?P<ampm>{_SP}{_AMPM})?"
    r"(?P<close>\] | - |: )"
)
_SHAPE_LINES = 2000      # lines read to find the shape ...
_SHAPE_HEADERS = 200     # ... or this many candidate headers, whichever comes first


class NotAnExport(ValueError):
    """The text has no WhatsApp message header of a supported shape."""


@dataclass(frozen=True)
class Shape:
    """Everything that distinguishes one export's header lines from another's (and from pasted look-alikes)."""

    open: bool          # "[" (iPhone)
    sep: str            # date separator / . -
    sp: str             # space after the date separator ("13. 6. 2018")
    dot: str            # trailing dot after the year
    comma: str          # "," between date and time, or ""
    tsep: str           # time separator : or .
    seconds: bool
    ampm: bool
    close: str          # "] " | " - " | ": "
    year_first: bool
    year_digits: int

    @property
    def platform(self) -> str:
        return "iphone" if self.open else "android" if self.close == " - " else "iphone-old"

    def header_pattern(self, groups: bool = True) -> str:
        """The header of this shape; with `groups`, group 1 is the date and group 2 the time."""
        sep = re.escape(self.sep) + self.sp
        year = rf"\d{{{self.year_digits}}}"
        date = rf"{year}{sep}\d{{1,2}}{sep}\d{{1,2}}" if self.year_first else rf"\d{{1,2}}{sep}\d{{1,2}}{sep}{year}"
        t = re.escape(self.tsep)
        time = rf"\d{{1,2}}{t}\d{{2}}" + (rf"{t}\d{{2}}" if self.seconds else "") + (_SP + _AMPM if self.ampm else "")
        if groups:
            date, time = f"({date})", f"({time})"
        return (r"[\u200e\u200f]?" + (r"\[" if self.open else "") + f"{date}{re.escape(self.dot)}{self.comma}{_SP}"
                f"{time}{re.escape(self.close)}")

    def regex(self) -> "re.Pattern":
        """One compiled header pattern: group 1 the date, group 2 the time."""
        return re.compile(self.header_pattern())


def _shape_of(m: "re.Match") -> Shape:
    year_first = len(m["d1"]) == 4
    return Shape(
        open=bool(m["open"]), sep=m["sep"], sp=m["sp"], dot=m["dot"], comma=m["comma"], tsep=m["tsep"],
        seconds=m["s"] is not None, ampm=m["ampm"] is not None, close=m["close"], year_first=year_first,
        year_digits=len(m["d1"] if year_first else m["d3"]),
    )


def _valid_shape(m: "re.Match") -> bool:
    return (m["open"] is not None) == (m["close"] == "] ") and not (len(m["d1"]) == 4 and len(m["d3"]) > 2)


_NUMBERS = re.compile(r"\d+").findall


@dataclass
class Format:
    """A file's locked header shape and date order; turns header date/time strings into ISO text."""

    shape: Shape
    date_order: str                  # DMY | MDY | YMD
    date_order_reason: str
    example: str                     # the first header, e.g. "14/03/2024, 22:42 - " (no names, no text)

    def __post_init__(self):
        self.regex = self.shape.regex()
        self._dates: dict[str, Optional[str]] = {}
        self._times: dict[str, str] = {}

    @property
    def platform(self) -> str:
        return self.shape.platform

    def is_header(self, line: str) -> bool:
        """Whether the line starts a message (iter_messages' rule: the locked shape and a real calendar date)."""
        m = self.regex.match(line)
        return m is not None and self.timestamp(*m.group(1, 2)) is not None

    def iso_date(self, text: str) -> Optional[str]:
        """`YYYY-MM-DD`, or None when the numbers are no calendar date in this order (then it is no header)."""
        try:
            return self._dates[text]
        except KeyError:
            pass
        a, b, c = map(int, _NUMBERS(text))
        y, m, d = {"DMY": (c, b, a), "MDY": (c, a, b), "YMD": (a, b, c)}[self.date_order]
        if y < 100:
            y += 2000   # two-digit years are 20xx for every export ever made
        try:
            iso = datetime.date(y, m, d).isoformat()
        except ValueError:
            iso = None
        self._dates[text] = iso
        return iso

    def timestamp(self, date: str, time: str) -> Optional[str]:
        """ISO local time for a header's date and time strings; None when the date is no calendar date."""
        day = self._dates[date] if date in self._dates else self.iso_date(date)
        if day is None:
            return None
        return day + "T" + (self._times[time] if time in self._times else self.iso_time(time))

    def iso_time(self, text: str) -> str:
        """`HH:MM` or `HH:MM:SS` (24 h) from any clock style of the catalogue."""
        try:
            return self._times[text]
        except KeyError:
            pass
        nums = _NUMBERS(text)
        h = int(nums[0])
        if self.shape.ampm:
            token = text.rstrip(".").lower()
            pm = token.endswith(("p.m", "pm", "p. m", "p.\u00a0m", "p.\u202fm", "nachm"))
            h = h % 12 + (12 if pm else 0)
        iso = ":".join([f"{h:02d}", *nums[1:3]])
        self._times[text] = iso
        return iso


# ---------------------------------------------------------------------------------------------------------------
# Reading files


def open_text(stream: BinaryIO) -> io.TextIOWrapper:
    """A text view of a binary export: UTF-16 when it starts with a UTF-16 BOM, else UTF-8 (BOM dropped);
    \\r\\n and \\r become \\n. Raises NotAnExport for binary data; a later UnicodeDecodeError means not UTF-8."""
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    head = stream.peek(4096)[:4096]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in head:
        raise NotAnExport("binary file (contains NUL bytes)")
    else:
        encoding = "utf-8-sig"
    return io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline=None)


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n", after \\r\\n and \\r became \\n (str.splitlines would also split on U+2028 etc.)."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    last = lines.pop()
    return [line + "\n" for line in lines] + ([last] if last else [])


_HEADER_BYTES = 128      # more than the longest header of any shape, in UTF-8


def message_starts(stream: BinaryIO, fmt: Format, parts: int) -> list[int]:
    """Byte offsets that cut an export into up to `parts` pieces of about equal size, each after the first starting
    with a message header (see Format.is_header), so that parsing the pieces one after another (open_range) gives
    what parsing the whole file gives. Each cut is the first header line at or after its share of the size; fewer
    cuts when headers are too far apart, none for UTF-16 (its line ends are no single b"\\n")."""
    stream.seek(0)
    if stream.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return []
    size = stream.seek(0, io.SEEK_END)
    cuts: list[int] = []
    for i in range(1, parts):
        pos = stream.seek(max(size * i // parts, cuts[-1] if cuts else 0))
        # Position 0 and any position after a b"\n" start a line (\r\n, \r and \n all end lines when read as
        # text); the line under the first position is skipped, as it may be cut in the middle. Lines are read in
        # bounded pieces so that one without any b"\n" (old Mac \r line ends) is never held whole.
        at_line_start = False
        while True:
            piece = stream.readline(65536)
            if not piece:
                return cuts
            # a character cut off at _HEADER_BYTES is dropped; a header is complete well before that
            if at_line_start and fmt.is_header(piece[:_HEADER_BYTES].decode("utf-8", "ignore")):
                cuts.append(pos)
                break
            at_line_start = piece.endswith(b"\n")
            pos += len(piece)
    return cuts


class _Slice(io.RawIOBase):
    """At most `size` bytes of a raw file from its current position."""

    def __init__(self, raw: BinaryIO, size: int):
        self.raw, self.left = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with memoryview(buffer) as view:
            n = self.raw.readinto(view[: self.left]) if self.left else 0
        self.left -= n
        return n


@contextlib.contextmanager
def open_range(path: "str | os.PathLike", start: int, end: Optional[int]) -> Iterator[io.TextIOWrapper]:
    """The text of bytes [start, end) of an export file (end None: to its end) as open_text reads the whole file;
    `start` and `end` are 0, None or cuts from message_starts."""
    with open(path, "rb", buffering=0) as raw:
        raw.seek(start)
        stream = io.BufferedReader(raw if end is None else _Slice(raw, end - start))
        # Past the start, a UTF-8 file has no BOM to drop and open_text's look for binary data is not repeated
        # (it checks only a file's head).
        yield open_text(stream) if start == 0 else io.TextIOWrapper(stream, encoding="utf-8", errors="strict",
                                                                   newline=None)


# ---------------------------------------------------------------------------------------------------------------
# Detection


def detect_format(lines: Iterable[str], date_order: str = "auto") -> Format:
    """Lock the header shape from the first candidate headers, then decide the date order from all headers.

    Reads only as far as it must: a component > 12 (or a 4-digit first component) settles the order; files where
    every component is <= 12 are decided by `date_order` (DMY or MDY) when given, else read to the end and
    decided by chronology (fewer steps back in time). Raises NotAnExport when no header is found.
    """
    it = iter(lines)
    shapes: Counter = Counter()
    matches = []
    for n, line in enumerate(it):
        m = _CANDIDATE.match(line)
        if m and _valid_shape(m):
            shapes[_shape_of(m)] += 1
            matches.append(m)
            if len(matches) >= _SHAPE_HEADERS:
                break
        if n >= _SHAPE_LINES:
            break
    if not shapes:
        raise NotAnExport("no WhatsApp message header (e.g. `14/03/2024, 22:42 - Name: text`) in the first lines")
    shape = shapes.most_common(1)[0][0]
    dates = [m["d1"] + shape.sep + m["d2"] + shape.sep + m["d3"] for m in matches if _shape_of(m) == shape]
    example = next(m.group(0) for m in matches if _shape_of(m) == shape).lstrip("\u200e\u200f")
    if shape.year_first:
        return Format(shape, "YMD", "year first", example)
    regex = shape.regex()
    order = _DateOrderVote()
    for d in dates:
        order.add(d)
    if order.decided is None and date_order not in ("DMY", "MDY"):
        for line in it:
            m = regex.match(line)
            if m and order.add(m.group(1)):
                break
    decided, reason = order.result(date_order)
    return Format(shape, decided, reason, example)


class _DateOrderVote:
    """Evidence for day-first vs month-first: components > 12, else the direction of time."""

    def __init__(self):
        self.decided: Optional[str] = None
        self.first_gt12 = self.second_gt12 = None
        self.ambiguous = False        # some date reads differently in the two orders
        self.prev: Optional[tuple] = None
        self.backwards = {"DMY": 0, "MDY": 0}
        self._seen: dict[str, tuple] = {}

    def add(self, date: str) -> bool:
        """Count one header date; True once the order is settled."""
        nums = self._seen.get(date)
        if nums is None:
            a, b, c = nums = tuple(map(int, _NUMBERS(date)))
            self._seen[date] = nums
            # the first decisive date wins: a later contradicting one is no valid date in this order anyway
            if a > 12 and self.decided is None:
                self.first_gt12, self.decided = date, "DMY"
            elif b > 12 and self.decided is None:
                self.second_gt12, self.decided = date, "MDY"
            self.ambiguous |= a != b
        a, b, c = nums
        if self.prev is not None:
            pa, pb, pc = self.prev
            self.backwards["DMY"] += (c, b, a) < (pc, pb, pa)
            self.backwards["MDY"] += (c, a, b) < (pc, pa, pb)
        self.prev = nums
        return self.decided is not None

    def result(self, configured: str) -> tuple[str, str]:
        if self.decided == "DMY":
            return "DMY", f"day > 12 in {self.first_gt12}"
        if self.decided == "MDY":
            return "MDY", f"second field > 12 in {self.second_gt12}"
        if configured in ("DMY", "MDY"):      # YMD needs no setting: a 4-digit first field is always detected
            return configured, "extract.date_order"
        if not self.ambiguous:
            return "DMY", "every date reads the same either way"
        dmy, mdy = self.backwards["DMY"], self.backwards["MDY"]
        if dmy != mdy:
            best = "DMY" if dmy < mdy else "MDY"
            return best, f"chronology (steps back in time: DMY {dmy}, MDY {mdy})"
        return "DMY", "GUESSED: no date decides it; set extract.date_order (DMY or MDY) if wrong"


# ---------------------------------------------------------------------------------------------------------------
# Parsing


class Message(NamedTuple):
    timestamp: str          # ISO 8601 local time, seconds only when the export has them
    sender: Optional[str]   # None for system events
    text: str
    kind: str               # one of KINDS


@dataclass
class ParseStats:
    """What a parse saw, for the summary and for deciding who "me" is."""

    lines: int = 0
    skipped_lines: int = 0                              # lines before the first header
    kinds: Counter = field(default_factory=Counter)
    senders: Counter = field(default_factory=Counter)
    deleted_by_me: Counter = field(default_factory=Counter)   # senders of "You deleted this message"
    attributed: Counter = field(default_factory=Counter)      # iPhone pseudo-senders of system events
    not_me: Counter = field(default_factory=Counter)          # names in "You added X", "X added you", ...
    you_events: int = 0                                       # system events about "You"

    @property
    def messages(self) -> int:
        return sum(self.kinds.values())

    def add(self, later: "ParseStats") -> None:
        """Count in the stats of the next piece of the same export (message_starts), parsed separately."""
        for f in fields(self):
            if isinstance(getattr(self, f.name), Counter):
                getattr(self, f.name).update(getattr(later, f.name))   # names first seen later go last, as in one pass
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(later, f.name))


def _sender_of(candidate: str) -> Optional[str]:
    """The sender for the text before the first ": ", or None when it is an Android system text."""
    if _SYSTEM_IN_SENDER.search(candidate):
        return None
    name = candidate.translate(_SENDER_CHARS).strip()
    if name.startswith("~") and len(name) > 1:
        name = name[1:].lstrip()
    return name or None


def classify(text: str) -> tuple[str, str]:
    """(kind, text) for a sender's message; `text` is stripped, bidi controls already removed."""
    kind = _EXACT.get(text)
    return (kind, text) if kind is not None else _classify_further(text)


# Only texts with one of these ends or starts (or several lines) can be more than plain text: checked first
# because classification runs on every message.
_MAYBE_END = (">", ")", "omitted", "weggelassen")
_MAYBE_START = _LOCATION + ("POLL:",)


def _classify_further(text: str) -> tuple[str, str]:
    if text[-1:] == ">":
        for marker in _EDITED:
            if text.endswith(marker):
                return "edited", text[: -len(marker)].rstrip()
    first = text.partition("\n")[0]
    if first.endswith(_ATTACHED):
        return ("contact" if first[: first.rindex(" (")].lower().endswith(".vcf") else "media"), text
    if first.startswith(_IOS_ATTACHED) and first.endswith(">"):
        return ("contact" if first.lower().endswith(".vcf>") else "media"), text
    if first.endswith(_IOS_MEDIA) and " • " in first:
        return "media", text
    if first.startswith(_LOCATION) and "://" in first:
        return "location", text
    if first.startswith("POLL:") and "\nOPTION:" in text:
        return "poll", text
    return "text", text


_new = tuple.__new__


def iter_messages(lines: Iterable[str], fmt: Format, stats: Optional[ParseStats] = None) -> Iterator[Message]:
    """The messages of an export in file order. A line starts a message only when it matches the file's locked
    header shape with a real calendar date; every other line continues the previous message (or, before the first
    header, is counted in stats.skipped_lines). Lines may keep their "\\n" (as a text file yields them).

    This loop runs once per line of exports of millions of lines: one compiled regex per line at most, the rest is
    cached (timestamps, senders) or skipped by cheap checks (see _Builder)."""
    stats = stats if stats is not None else ParseStats()
    match, stamp = fmt.regex.match, fmt.timestamp
    builder = _Builder(fmt.shape.platform != "android", stats)
    build = builder.build
    ts = rest = None
    # The last header matched and its timestamp (None: no calendar date). Consecutive messages often share their
    # minute, and a line that starts with the last header is a header of that minute without running the regex
    # (no header is a prefix of another). The start value is no line's start.
    head, head_ts = "\x00", None
    cont: list[str] = []
    headers = continued = skipped = 0
    for line in lines:
        if line.startswith(head):
            is_header = head_ts is not None
        else:
            m = match(line)
            is_header = m is not None
            if is_header:
                head, head_ts = m.group(0), stamp(*m.group(1, 2))
                is_header = head_ts is not None
        if is_header:
            if rest is not None:
                if cont:
                    continued += len(cont)
                    yield build(ts, rest, cont)
                    cont = []
                else:
                    yield build(ts, rest, None)
            headers += 1
            ts, rest = head_ts, line[len(head):]
        elif rest is None:
            skipped += 1
        else:
            cont.append(line)
    if rest is not None:
        continued += len(cont)
        yield build(ts, rest, cont)
    builder.finish()
    stats.skipped_lines += skipped
    stats.lines += skipped + continued + headers


# Only texts that end or start with one of these characters (or have several lines) can be more than plain text
# (_MAYBE_END, _MAYBE_START): a set lookup is the cheapest first test for the million plain ones.
_END_CHARS = frozenset(s[-1] for s in _MAYBE_END)
_START_CHARS = frozenset(s[0] for s in _MAYBE_START)


class _Builder:
    """Turns a header's remainder plus continuation lines into a Message, counting what it sees. Counts go to
    plain dicts while parsing (a Counter increment costs twice as much) and into `stats` at finish()."""

    def __init__(self, iphone: bool, stats: ParseStats):
        self.iphone, self.stats = iphone, stats
        self.senders: dict[str, Optional[str]] = {}    # text before ": " -> sender (None: a system text)
        self.kinds: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.by_sender: dict[str, int] = {}

    def build(self, ts: str, rest: str, cont: Optional[list]) -> Message:
        # Sender and text split at the first ": "; a line without one is a system event.
        candidate, sep, text = rest.partition(": ")
        if sep:
            try:
                sender = self.senders[candidate]
            except KeyError:
                sender = self.senders[candidate] = None if candidate[:1] == LRM else _sender_of(candidate)
            if sender is not None:
                text = (text + "".join(cont) if cont else text).strip()
                lrm_start = False
                if not text.isascii():   # O(1); plain ASCII text cannot hold bidi controls
                    lrm_start = text[:1] == LRM
                    text = text.translate(_BIDI).strip()
                kind = _EXACT.get(text)
                if kind is None:
                    if cont or text and (text[-1] in _END_CHARS or text[0] in _START_CHARS):
                        kind, text = _classify_further(text)
                    else:
                        kind = "text"
                if lrm_start and self.iphone and kind not in _PLACEHOLDER_KINDS:
                    # 2023+ iPhone system event: the group, contact or actor stands where the sender goes
                    self.stats.attributed[sender] += 1
                    return self.system(ts, text)
                if kind == "deleted" and text in _DELETED_BY_ME_SET:
                    self.stats.deleted_by_me[sender] += 1
                self.kinds[kind] += 1
                by_sender = self.by_sender
                by_sender[sender] = by_sender.get(sender, 0) + 1
                return _new(Message, (ts, sender, text, kind))
        return self.system(ts, (rest + "".join(cont) if cont else rest).translate(_BIDI).strip())

    def system(self, ts: str, text: str) -> Message:
        stats = self.stats
        if text.startswith(("You ", "You'", "Your ")):
            stats.you_events += 1
        m = _NOT_ME_EVENTS.match(text)
        if m:
            stats.not_me[next(g for g in m.groups() if g).strip().translate(_SENDER_CHARS).lstrip("~ ")] += 1
        self.kinds["system"] += 1
        return _new(Message, (ts, None, text, "system"))

    def finish(self) -> None:
        self.stats.kinds.update({k: n for k, n in self.kinds.items() if n})
        self.stats.senders.update(self.by_sender)


@dataclass
class ParsedChat:
    format: Format
    messages: list[Message]
    stats: ParseStats

    @property
    def date_order(self) -> str:
        return self.format.date_order

    @property
    def skipped_lines(self) -> int:
        return self.stats.skipped_lines


def parse_export(text: str, date_order: str = "auto") -> ParsedChat:
    """Parse a whole export held in memory (tests, small files). Raises NotAnExport."""
    lines = split_lines(text)
    fmt = detect_format(lines, date_order)
    stats = ParseStats()
    return ParsedChat(fmt, list(iter_messages(lines, fmt, stats)), stats)
