"""WhatsApp chat exports (.txt): decoding, header-format detection, date order, streaming parsing and message
classification. docs/whatsapp-formats.md describes every export variant and how each is handled here.

An export is a sequence of messages; each starts with a header line (`DATE, TIME - Sender: text` on Android,
`[DATE, TIME] Sender: text` on iPhone, `DATE TIME: Sender: text` on old iPhones) and may continue over lines
without a header.

    found = detect(open_text(stream))            # the file's header shape, and what its dates say about the order
    orders = DateOrders({"a.txt": found, ...})   # every file's date order, with the evidence that decided it
    fmt = orders.format("a.txt")
    for msg in iter_messages(open_text(stream), fmt, stats):   # streams, memory bounded per message
        ...
    fmt = orders.with_other_formats(fmt, stats) or fmt        # a second header format in the file: parse again

This module imports only the standard library: extract.py streams a million-line export in about a second.
"""

import codecs
import contextlib
import datetime
import functools
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import BinaryIO, NamedTuple, Optional

KINDS = ("text", "media", "deleted", "edited", "view_once", "poll", "location", "contact", "call", "system")

# A message keeps at most this many characters (WhatsApp's own limit is 65,536): the rest of a longer line and
# further lines of the message are dropped and counted, so one huge line never has to fit in memory.
MAX_MESSAGE_CHARS = 2**17

LRM = "\u200e"
# Bidi controls are never user content in an export (WhatsApp wraps phone numbers and system text in them).
_BIDI = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
# Senders additionally get no-break spaces turned into plain ones (iOS phone numbers, `~\u202fName`).
_SENDER_CHARS = {**_BIDI, 0xA0: " ", 0x202F: " ", 0x2011: "-"}

# ---------------------------------------------------------------------------------------------------------------
# Localized body strings (docs/whatsapp-formats.md, "Message bodies"). Compared after bidi controls are removed.

_DELETED_BY_OTHERS = ("This message was deleted", "Diese Nachricht wurde gelöscht", "Se eliminó este mensaje",
                      "Dit bericht is verwijderd", "Esta mensagem foi apagada", "Questo messaggio è stato eliminato")
_DELETED_BY_ME = ("You deleted this message", "Du hast diese Nachricht gelöscht", "Eliminaste este mensaje",
                  "U hebt dit bericht verwijderd", "Você apagou esta mensagem", "Hai eliminato questo messaggio")
_MEDIA_OMITTED = ("<Media omitted>", "<Medien ausgeschlossen>", "<Multimedia omitido>", "<Media weggelaten>",
                  "<Mídia oculta>", "<Без медиафайлов>", "<Média vynechány>",
                  # old iPhones wrap the iOS placeholder in angle brackets
                  "<image omitted>", "<video omitted>", "<audio omitted>", "<sticker omitted>", "<GIF omitted>")
# iOS placeholders; a document's is preceded by its name and size (`Name.pdf • 3 pages document omitted`)
_IOS_MEDIA = ("image omitted", "video omitted", "audio omitted", "sticker omitted", "GIF omitted",
              "document omitted", "Bild weggelassen", "Video weggelassen", "Audio weggelassen",
              "Sticker weggelassen", "GIF weggelassen", "Dokument weggelassen", "immagine omessa", "imagen omitida",
              "imagem não revelada")
_IOS_CONTACT = ("Contact card omitted", "Kontaktkarte ausgelassen")
_ATTACHED = (" (file attached)", " (Datei angehängt)", " (archivo adjunto)", " (bestand bijgevoegd)",
             " (arquivo anexado)")
# iOS attachment tags, alone or after a document's name and size (`Report.pdf • 4 pages <attached: 00000008-…>`)
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
# A media or contact placeholder may be the first line of a longer message: a caption, or (Android, without media)
# the document's file name, follows on the next lines.
_FIRST_LINE = {text: kind for text, kind in _EXACT.items() if kind in ("media", "contact")}
_DELETED_BY_ME_SET = frozenset(_DELETED_BY_ME + tuple(s + "." for s in _DELETED_BY_ME))
_PLACEHOLDER_KINDS = frozenset({"media", "deleted", "location", "contact", "call", "view_once"})

# Android system texts that contain ": " so the part before it looks like a sender.
_SYSTEM_IN_SENDER = re.compile(
    r" (?:added|changed|created|removed|joined|left|pinned|deleted|turned|updated|blocked)\b"
    r"|end-to-end encrypt|to a group in the community|^You(?:'re)? |^Your "
)
# Names that "You ..." system events show are someone else (the exporter is "You").
_NOT_ME_EVENTS = re.compile(r"^(?:You added (.+)|You removed (.+)|(.+) added you"
                            r"|Your security code with (.+) changed\b)")

# ---------------------------------------------------------------------------------------------------------------
# Header shapes

_SP = "[ \u00a0\u202f]"
_AMPM = rf"(?:[AaPp]\.?{_SP}?[Mm]\.?|vorm\.|nachm\.)"
# Permissive: any header shape of the catalogue. Finds a file's own shape in its first lines, and lines of other
# shapes later (iter_messages).
_CANDIDATE = re.compile(
    r"[\u200e\u200f]?(?P<open>\[)?"
    r"(?P<date>(?P<d1>\d{1,4})(?P<sep>[/.\-])(?P<sp> ?)(?P<d2>\d{1,2})(?P=sep)(?P=sp)(?P<d3>\d{2,4}))(?P<dot>\.?)"
    rf"(?P<comma>,?){_SP}"
    rf"(?P<time>(?P<h>\d{{1,2}})(?P<tsep>[:.])\d{{2}}(?:(?P=tsep)(?P<s>\d{{2}}))?(?P<ampm>{_SP}{_AMPM})?)"
    r"(?P<close>\] | - |: )"
)
# The characters a header line can start with: only lines that start with one are tried as another format's header.
_HEADER_FIRST = frozenset("0123456789[\u200e\u200f")
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

    def regex(self) -> "re.Pattern":
        """The compiled header pattern of this shape: group 1 is the date, group 2 the time."""
        sep = re.escape(self.sep) + self.sp
        year = rf"\d{{{self.year_digits}}}"
        date = rf"{year}{sep}\d{{1,2}}{sep}\d{{1,2}}" if self.year_first else rf"\d{{1,2}}{sep}\d{{1,2}}{sep}{year}"
        t = re.escape(self.tsep)
        time = rf"\d{{1,2}}{t}\d{{2}}" + (rf"{t}\d{{2}}" if self.seconds else "") + (_SP + _AMPM if self.ampm else "")
        return re.compile(r"[\u200e\u200f]?" + (r"\[" if self.open else "") + f"({date}){re.escape(self.dot)}"
                          f"{self.comma}{_SP}({time}){re.escape(self.close)}")


def _shape_of(m: "re.Match") -> Shape:
    year_first = len(m["d1"]) == 4
    return Shape(
        open=bool(m["open"]), sep=m["sep"], sp=m["sp"], dot=m["dot"], comma=m["comma"], tsep=m["tsep"],
        seconds=m["s"] is not None, ampm=m["ampm"] is not None, close=m["close"], year_first=year_first,
        year_digits=len(m["d1"] if year_first else m["d3"]),
    )


def _valid_shape(m: "re.Match") -> bool:
    return (m["open"] is not None) == (m["close"] == "] ") and not (len(m["d1"]) == 4 and len(m["d3"]) > 2)


def _plausible(m: "re.Match") -> bool:
    """Whether a candidate header holds a real time and a calendar date in some order (else it is text)."""
    if _iso_time(m["time"], m["ampm"] is not None) is None:
        return False
    a, b, c = int(m["d1"]), int(m["d2"]), int(m["d3"])
    if len(m["d1"]) == 4:
        return _iso_date(a, b, c) is not None
    return _iso_date(c, b, a) is not None or _iso_date(c, a, b) is not None


_NUMBERS = re.compile(r"\d+").findall


def _iso_date(y: int, m: int, d: int) -> Optional[str]:
    if y < 100:
        y += 2000   # two-digit years are 20xx for every export ever made
    try:
        return datetime.date(y, m, d).isoformat()
    except ValueError:
        return None


def _iso_time(text: str, ampm: bool) -> Optional[str]:
    """`HH:MM` or `HH:MM:SS` (24 h) from any clock style of the catalogue; None for no real time (27:75)."""
    nums = _NUMBERS(text)
    h = int(nums[0])
    if ampm:
        if h > 12:
            return None
        token = text.rstrip(".").lower()
        pm = token.endswith(("p.m", "pm", "p. m", "p.\u00a0m", "p.\u202fm", "nachm"))
        h = h % 12 + (12 if pm else 0)
    elif h > 23:
        return None
    if any(int(n) > 59 for n in nums[1:3]):
        return None
    return ":".join([f"{h:02d}", *nums[1:3]])


@dataclass
class Format:
    """A header format of a file (its shape and date order), with the other formats found in the same file; turns
    header date/time strings into ISO text."""

    shape: Shape
    date_order: str                  # DMY | MDY | YMD
    date_order_reason: str
    example: str                     # the first header, e.g. "14/03/2024, 22:42 - " (no names, no text)
    others: tuple = ()               # Formats of other header shapes in the same file (DateOrders.with_other_formats)

    def __post_init__(self):
        self.regex = self.shape.regex()
        self._dates: dict[str, Optional[str]] = {}
        self._times: dict[str, Optional[str]] = {}

    @property
    def platform(self) -> str:
        return self.shape.platform

    def is_header(self, line: str) -> bool:
        """Whether the line starts a message (iter_messages' rule: a header of one of the file's formats with a real
        calendar date and time)."""
        for f in (self, *self.others):
            m = f.regex.match(line)
            if m is not None:
                return f.timestamp(*m.group(1, 2)) is not None
        return False

    def iso_date(self, text: str) -> Optional[str]:
        """`YYYY-MM-DD`, or None when the numbers are no calendar date in this order (then it is no header)."""
        try:
            return self._dates[text]
        except KeyError:
            pass
        a, b, c = map(int, _NUMBERS(text))
        iso = _iso_date(*{"DMY": (c, b, a), "MDY": (c, a, b), "YMD": (a, b, c)}[self.date_order])
        self._dates[text] = iso
        return iso

    def iso_time(self, text: str) -> Optional[str]:
        """`HH:MM` or `HH:MM:SS` (24 h), or None when the numbers are no time of day (then it is no header)."""
        try:
            return self._times[text]
        except KeyError:
            iso = self._times[text] = _iso_time(text, self.shape.ampm)
            return iso

    def timestamp(self, date: str, time: str) -> Optional[str]:
        """ISO local time for a header's date and time strings; None when they are no real date and time."""
        day = self._dates[date] if date in self._dates else self.iso_date(date)
        clock = self._times[time] if time in self._times else self.iso_time(time)
        return None if day is None or clock is None else day + "T" + clock


# ---------------------------------------------------------------------------------------------------------------
# Reading files


class _LegacyBytes:
    """The decoding error handler "hive-legacy": bytes that are not UTF-8 are read as Windows-1252 (a file re-saved
    by an old Windows editor; the few bytes Windows-1252 leaves undefined become U+FFFD). Counts them, so that the
    summary can say so (iter_messages adds this process's count during a parse to ParseStats.legacy_bytes)."""

    name = "hive-legacy"

    def __init__(self):
        self.count = 0

    def __call__(self, error: UnicodeError) -> tuple[str, int]:
        if not isinstance(error, UnicodeDecodeError):
            raise error
        chunk = error.object[error.start:error.end]
        self.count += len(chunk)
        return bytes(chunk).decode("cp1252", "replace"), error.end


_LEGACY = _LegacyBytes()


def open_text(stream: BinaryIO) -> io.TextIOWrapper:
    """A text view of a binary export: UTF-16 when it starts with a UTF-16 BOM, else UTF-8 (BOM dropped) with any
    byte that is not UTF-8 read as Windows-1252; \\r\\n and \\r become \\n. Raises NotAnExport for binary data; a
    later UnicodeDecodeError means broken UTF-16."""
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    head = stream.peek(4096)[:4096]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return io.TextIOWrapper(stream, encoding="utf-16", errors="strict", newline=None)
    if b"\x00" in head:
        raise NotAnExport("binary file (contains NUL bytes)")
    return _utf8(stream, "utf-8-sig")


def _utf8(stream: BinaryIO, encoding: str) -> io.TextIOWrapper:
    codecs.register_error(_LEGACY.name, _LEGACY)
    return io.TextIOWrapper(stream, encoding=encoding, errors=_LEGACY.name, newline=None)


def _lines(text: Iterable[str]) -> Iterator[str]:
    """The lines of a text stream, each at most MAX_MESSAGE_CHARS long (a longer one comes in pieces: iter_messages
    keeps the first and drops the rest); any other iterable of lines as it is."""
    readline = getattr(text, "readline", None)
    return iter(functools.partial(readline, MAX_MESSAGE_CHARS), "") if readline else iter(text)


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
        yield open_text(stream) if start == 0 else _utf8(stream, "utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Detection and date order


@dataclass
class DateEvidence:
    """What a file's header dates say about day-first vs month-first: the first date with a field > 12 decides;
    otherwise the direction of time (the right order steps back in time less often). Also how the two fields are
    zero-padded: a trait of the phone's locale, so files that differ in it come from different locales."""

    decided: Optional[str] = None               # DMY | MDY
    decisive: Optional[str] = None              # the date that decided it
    ambiguous: bool = False                     # some date reads differently in the two orders
    backwards: dict = field(default_factory=lambda: {"DMY": 0, "MDY": 0})
    padded: tuple = (None, None)                # 1st / 2nd field: "07" (True), "7" (False), no value < 10 (None)
    first: Optional[tuple] = None               # the first and last date's numbers (to join pieces' chronology)
    last: Optional[tuple] = None
    _seen: dict = field(default_factory=dict, compare=False, repr=False)

    def add(self, date: str) -> bool:
        """Count one header date (in file order); True once the order is decided."""
        nums = self._seen.get(date)
        if nums is None:
            parts = _NUMBERS(date)
            a, b, c = nums = tuple(map(int, parts))
            self._seen[date] = nums
            # the first decisive date wins: a later contradicting one is no valid date in this order anyway
            if self.decided is None and (a > 12 or b > 12):
                self.decided, self.decisive = ("DMY" if a > 12 else "MDY"), date
            self.ambiguous |= a != b
            if None in self.padded:
                self.padded = tuple(p if p is not None or n >= 10 else len(s) > 1
                                    for p, n, s in zip(self.padded, nums, parts))
        if self.last is None:
            self.first = nums
        else:
            self._step(self.last, nums)
        self.last = nums
        return self.decided is not None

    def _step(self, prev: tuple, nums: tuple) -> None:
        (pa, pb, pc), (a, b, c) = prev, nums
        self.backwards["DMY"] += (c, b, a) < (pc, pb, pa)
        self.backwards["MDY"] += (c, a, b) < (pc, pa, pb)

    def add_later(self, later: "DateEvidence") -> None:
        """Count in the evidence of the next piece of the same file, as if read in one pass."""
        if later.first is None:
            return
        if self.last is None:
            self.first = later.first
        else:
            self._step(self.last, later.first)
        self.last = later.last
        for order, n in later.backwards.items():
            self.backwards[order] += n
        if self.decided is None:
            self.decided, self.decisive = later.decided, later.decisive
        self.ambiguous |= later.ambiguous
        self.padded = tuple(p if p is not None else q for p, q in zip(self.padded, later.padded))

    def reason(self) -> str:
        """Why its own dates decide the order."""
        return f"{'day' if self.decided == 'DMY' else 'second field'} > 12 in {self.decisive}"


@dataclass
class Detected:
    """A file's header shape and the evidence of its dates (detect); DateOrders turns it into a Format."""

    shape: Shape
    evidence: DateEvidence
    example: str


def detect(text: Iterable[str], date_order: str = "auto") -> Detected:
    """Lock the header shape from the first candidate headers, then gather date-order evidence.

    Reads only as far as it must: a field > 12 (or a 4-digit first field) settles the order; in a file where every
    field is <= 12 the rest is read for the chronology, unless `date_order` (DMY or MDY) says it. Raises NotAnExport
    when no header is found."""
    lines = _lines(text)
    shapes: Counter = Counter()
    found = []
    for n, line in enumerate(lines):
        m = _CANDIDATE.match(line)
        if m and _valid_shape(m) and _plausible(m):
            shape = _shape_of(m)
            shapes[shape] += 1
            found.append((shape, m))
            if len(found) >= _SHAPE_HEADERS:
                break
        if n >= _SHAPE_LINES:
            break
    if not shapes:
        raise NotAnExport("no WhatsApp message header (e.g. `14/03/2024, 22:42 - Name: text`) in the first lines")
    shape = shapes.most_common(1)[0][0]
    mine = [m for s, m in found if s == shape]
    evidence = DateEvidence()
    for m in mine:
        evidence.add(m["date"])
    if not shape.year_first and evidence.decided is None and date_order not in ("DMY", "MDY"):
        regex, times = shape.regex(), {}
        for line in lines:
            m = regex.match(line)
            if m is None:
                continue
            time = m.group(2)
            if time not in times:
                times[time] = _iso_time(time, shape.ampm) is not None
            if times[time] and evidence.add(m.group(1)):
                break
    return Detected(shape, evidence, mine[0].group(0).lstrip("\u200e\u200f"))


def _compatible(a: tuple, b: tuple) -> bool:
    return all(x is None or y is None or x == y for x, y in zip(a, b))


_GUESSED = "GUESSED: no date decides it; set extract.date_order (DMY or MDY) if wrong"
_SAME_EITHER_WAY = "every date reads the same either way"
# How reasons start when the file's own dates decide its order (or cannot be read wrong): nothing to point out.
OWN_DATE_EVIDENCE = ("day > 12", "second field > 12", "year first", _SAME_EITHER_WAY)


@dataclass
class _Pool:
    """The date evidence of the files of one header shape and padding style."""

    shown: Counter = field(default_factory=Counter)     # order -> files whose dates show it
    first: dict = field(default_factory=dict)           # order -> (rank, file, evidence) of the first such file
    undecided: int = 0                                  # files whose dates do not show it ...
    backwards: Counter = field(default_factory=Counter)     # ... and their steps back in time in each order


class DateOrders:
    """The date order of every file of a run, each with the evidence that decided it (Format.date_order_reason).

    In this order: a 4-digit first field (YMD); the file's own dates (a field > 12); extract.date_order; the other
    files of the same export format (same header shape, padding not contradicting: one phone's exports), when those
    that show it agree; the chronology of all undecided files of that format together; a guess (DMY)."""

    def __init__(self, files: "dict[str, Detected]", configured: str = "auto"):
        self.files, self.configured = files, configured
        # shape -> padding style -> pool: a file's evidence comes from the (few) styles that do not contradict its own
        self._pools: dict[Shape, dict[tuple, _Pool]] = {}
        for rank, (name, d) in enumerate(files.items()):
            pool = self._pools.setdefault(d.shape, {}).setdefault(d.evidence.padded, _Pool())
            if d.evidence.decided:
                pool.shown[d.evidence.decided] += 1
                pool.first.setdefault(d.evidence.decided, (rank, name, d.evidence))
            else:
                pool.undecided += 1
                pool.backwards.update(d.evidence.backwards)

    def format(self, name: str) -> Format:
        """The Format of file `name` (one of those given)."""
        d = self.files[name]
        return Format(d.shape, *self.decide(d.shape, d.evidence, name), d.example)

    def decide(self, shape: Shape, evidence: DateEvidence, name: Optional[str] = None) -> tuple[str, str]:
        """(order, why) for headers of `shape` with `evidence`; `name`: the file they come from, when it is one of
        the run's files (a second format in a file is not)."""
        if shape.year_first:
            return "YMD", "year first"
        if evidence.decided:
            return evidence.decided, evidence.reason()
        if self.configured in ("DMY", "MDY"):      # YMD needs no setting: a 4-digit first field is always detected
            return self.configured, "extract.date_order"
        pools = [pool for style, pool in self._pools.get(shape, {}).items() if _compatible(style, evidence.padded)]
        shown = sum((pool.shown for pool in pools), Counter())
        first = {order: min(pool.first[order] for pool in pools if order in pool.first) for order in shown}
        note = ""
        if len(shown) == 2:
            note = f"; files of this format disagree (DMY: {first['DMY'][1]}, MDY: {first['MDY'][1]})"
            files, backwards = 1, evidence.backwards
        elif shown:
            [(order, n)] = shown.items()
            _, file, e = first[order]
            if n == 1:
                return order, f"decided by file {file} ({e.reason()})"
            return order, f"from {n} other files of this format (first: {file}, {e.reason()})"
        else:
            files, backwards = sum(pool.undecided for pool in pools), sum((pool.backwards for pool in pools), Counter())
            if name not in self.files:
                files, backwards = files + 1, backwards + Counter(evidence.backwards)
        if not evidence.ambiguous:
            return "DMY", _SAME_EITHER_WAY + note
        dmy, mdy = backwards["DMY"], backwards["MDY"]
        if dmy == mdy:
            return "DMY", _GUESSED + note
        of = f" of {files} files of this format" if files > 1 else ""
        return ("DMY" if dmy < mdy else "MDY"), f"chronology{of} (steps back in time: DMY {dmy}, MDY {mdy})" + note

    def with_other_formats(self, fmt: Format, stats: "ParseStats") -> Optional[Format]:
        """`fmt` plus the header formats of other shapes that a parse with it found to be message headers, or None
        when there are none. Lines of another shape (two or more) are taken as headers when most of them name a sender
        of the file (the same people, exported from another phone), or when they are at least a fifth of the file's
        headers; otherwise they stay message text (pasted from elsewhere) and the summary reports them."""
        more = []
        for shape, seen in stats.foreign.items():
            known = sum(n for sender, n in seen.senders.items() if sender in stats.senders)
            if seen.lines >= 2 and (2 * known > seen.lines or 5 * seen.lines >= stats.messages + seen.lines):
                more.append(Format(shape, *self.decide(shape, seen.evidence), seen.example))
        return replace(fmt, others=fmt.others + tuple(more)) if more else None


# ---------------------------------------------------------------------------------------------------------------
# Parsing


class Message(NamedTuple):
    timestamp: str          # ISO 8601 local time, seconds only when the export has them
    sender: Optional[str]   # None for system events
    text: str
    kind: str               # one of KINDS


@dataclass
class ForeignHeaders:
    """Lines that look like message headers of a shape that is not one of the file's formats."""

    example: str
    lines: int = 0
    senders: Counter = field(default_factory=Counter)
    evidence: DateEvidence = field(default_factory=DateEvidence)

    def add(self, m: "re.Match") -> None:
        self.lines += 1
        self.evidence.add(m["date"])
        candidate, sep, _ = m.string[m.end():].partition(": ")
        sender = _sender_of(candidate) if sep and candidate[:1] != LRM else None
        if sender is not None:
            self.senders[sender] += 1

    def add_later(self, later: "ForeignHeaders") -> None:
        self.lines += later.lines
        self.senders.update(later.senders)
        self.evidence.add_later(later.evidence)


@dataclass
class ParseStats:
    """What a parse saw, for the summary and for deciding who "me" is. Every line is counted once:
    lines == messages + continuation_lines + skipped_lines + dropped_lines."""

    lines: int = 0
    skipped_lines: int = 0                              # lines before the first header
    continuation_lines: int = 0                         # lines after a header line, part of its message
    dropped_lines: int = 0                              # lines of a message past MAX_MESSAGE_CHARS
    long_lines: int = 0                                 # lines longer than MAX_MESSAGE_CHARS, cut there
    cut_messages: int = 0                               # messages whose lines reached MAX_MESSAGE_CHARS
    invalid_headers: int = 0                            # lines with a header but no real date or time: text
    legacy_bytes: int = 0                               # bytes that were not UTF-8 (read as Windows-1252)
    kinds: Counter = field(default_factory=Counter)
    senders: Counter = field(default_factory=Counter)
    deleted_by_me: Counter = field(default_factory=Counter)   # senders of "You deleted this message"
    attributed: Counter = field(default_factory=Counter)      # iPhone pseudo-senders of system events
    not_me: Counter = field(default_factory=Counter)          # names in "You added X", "X added you", ...
    you_events: int = 0                                       # system events about "You"
    foreign: dict = field(default_factory=dict)               # Shape -> ForeignHeaders

    @property
    def messages(self) -> int:
        return sum(self.kinds.values())

    def add(self, later: "ParseStats") -> None:
        """Count in the stats of the next piece of the same export (message_starts), parsed separately."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(later, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)     # names first seen later go last, as in one pass
            elif isinstance(mine, dict):
                for shape, seen in theirs.items():
                    if shape in mine:
                        mine[shape].add_later(seen)
                    else:
                        mine[shape] = seen
            else:
                setattr(self, f.name, mine + theirs)


def _sender_of(candidate: str) -> Optional[str]:
    """The sender for the text before the first ": ", or None when it is an Android system text."""
    if _SYSTEM_IN_SENDER.search(candidate):
        return None
    name = candidate.translate(_SENDER_CHARS).strip()
    if name.startswith("~") and len(name) > 1:
        name = name[1:].lstrip()
    return name or None


# Only texts with one of these ends or starts (or several lines) can be more than plain text: checked first
# because classification runs on every message.
_MAYBE_END = (">", ")", "omitted", "weggelassen")
_MAYBE_START = _LOCATION + ("POLL:",)


def _classify_further(text: str) -> tuple[str, str]:
    """(kind, text) for a sender's message that is not one of the exact placeholders."""
    if text[-1:] == ">":
        for marker in _EDITED:
            if text.endswith(marker):
                return "edited", text[: -len(marker)].rstrip()
    first = text.partition("\n")[0]
    kind = _FIRST_LINE.get(first)
    if kind is not None:
        return kind, text
    if first.endswith(_ATTACHED):
        return ("contact" if first[: first.rindex(" (")].lower().endswith(".vcf") else "media"), text
    if first.endswith(">") and first[first.rfind("<"):].startswith(_IOS_ATTACHED):
        return ("contact" if first.lower().endswith(".vcf>") else "media"), text
    if first.endswith(_IOS_MEDIA) and " • " in first:
        return "media", text
    if first.startswith(_LOCATION) and "://" in first:
        return "location", text
    if first.startswith("POLL:") and "\nOPTION:" in text:
        return "poll", text
    return "text", text


_new = tuple.__new__


def iter_messages(text: Iterable[str], fmt: Format, stats: Optional[ParseStats] = None) -> Iterator[Message]:
    """The messages of an export (a text stream, or lines keeping their "\\n") in file order. A line starts a message
    only when it is a header of one of the file's formats (Format.is_header); every other line continues the
    previous message (or, before the first header, is counted in stats.skipped_lines). A message keeps at most
    MAX_MESSAGE_CHARS characters of its lines. Lines that look like headers of another shape are counted in
    stats.foreign (DateOrders.with_other_formats decides whether they are a second format of the file).

    This loop runs once per line of exports of millions of lines: one compiled regex per line at most, the rest is
    cached (timestamps, senders) or skipped by cheap checks (see _Builder)."""
    stats = stats if stats is not None else ParseStats()
    lines, cap, legacy = _lines(text), MAX_MESSAGE_CHARS, _LEGACY.count
    match, stamp = fmt.regex.match, fmt.timestamp
    main_iphone = fmt.platform != "android"
    other = _OtherHeaders(fmt, stats).header
    builder = _Builder(stats)
    build = builder.build
    ts = rest = None
    iphone = main_iphone
    # The last header matched and its timestamp (None: no real date and time). Consecutive messages often share their
    # minute, and a line that starts with the last header is a header of that minute without running the regex
    # (no header is a prefix of another). The start value is no line's start.
    head, head_ts = "\x00", None
    cont: list[str] = []
    size = 0                            # characters of the message so far, counted once it has continuation lines
    headers = continued = skipped = dropped = long_lines = cut = 0
    cut_at = -1                         # `headers` when the last cut message was counted
    for line in lines:
        if len(line) >= cap and line[-1] != "\n":
            line = _cut(line, lines)
            long_lines += 1
        if line.startswith(head):
            new = head_ts
        else:
            m = match(line)
            if m is not None:
                head, head_ts = m.group(0), stamp(*m.group(1, 2))
                new = head_ts
            else:
                new = None
        if new is not None:
            start, new_iphone = len(head), main_iphone
        elif line[:1] in _HEADER_FIRST and (found := other(line)) is not None:
            new, start, new_iphone = found
        elif rest is None:
            skipped += 1
            continue
        else:
            if not cont:
                size = len(rest)
            size += len(line)
            if size <= cap:
                cont.append(line)
            else:
                keep = cap - size + len(line)
                if keep > 0:
                    cont.append(line[:keep] + "\n")
                else:
                    dropped += 1
                if cut_at != headers:
                    cut, cut_at = cut + 1, headers
            continue
        if rest is not None:
            if cont:
                continued += len(cont)
                yield build(ts, rest, cont, iphone)
                cont = []
            else:
                yield build(ts, rest, None, iphone)
        headers += 1
        ts, rest, iphone = new, line[start:], new_iphone
    if rest is not None:
        continued += len(cont)
        yield build(ts, rest, cont, iphone)
    builder.finish()
    stats.skipped_lines += skipped
    stats.continuation_lines += continued
    stats.dropped_lines += dropped
    stats.long_lines += long_lines
    stats.cut_messages += cut
    stats.lines += headers + continued + skipped + dropped
    stats.legacy_bytes += _LEGACY.count - legacy


def _cut(line: str, lines: Iterator[str]) -> str:
    """The first piece of a line longer than MAX_MESSAGE_CHARS, with its end; the rest is read and dropped."""
    for more in lines:
        if more[-1] == "\n":
            break
    return line + "\n"


class _OtherHeaders:
    """What a line that is no header of a file's main format may be instead: a header of one of its other formats
    (returned as (timestamp, header length, iPhone?)), a header with no real date or time (counted in
    stats.invalid_headers), or a header of a shape that is none of the file's (counted in stats.foreign)."""

    def __init__(self, fmt: Format, stats: ParseStats):
        self.main = fmt.regex.match
        self.others = [(f.regex.match, f.timestamp, f.platform != "android") for f in fmt.others]
        self.known = {fmt.shape, *(f.shape for f in fmt.others)}
        self.stats = stats

    def header(self, line: str) -> Optional[tuple[str, int, bool]]:
        if self.main(line):
            self.stats.invalid_headers += 1
            return None
        for match, stamp, iphone in self.others:
            m = match(line)
            if m is not None:
                ts = stamp(*m.group(1, 2))
                if ts is None:
                    self.stats.invalid_headers += 1
                    return None
                return ts, m.end(), iphone
        m = _CANDIDATE.match(line)
        if m is not None and _valid_shape(m) and _plausible(m):
            shape = _shape_of(m)
            if shape not in self.known:
                foreign = self.stats.foreign
                if shape not in foreign:
                    foreign[shape] = ForeignHeaders(m.group(0).lstrip("\u200e\u200f"))
                foreign[shape].add(m)
        return None


# Only texts that end or start with one of these characters (or have several lines) can be more than plain text
# (_MAYBE_END, _MAYBE_START): a set lookup is the cheapest first test for the million plain ones.
_END_CHARS = frozenset(s[-1] for s in _MAYBE_END)
_START_CHARS = frozenset(s[0] for s in _MAYBE_START)


class _Builder:
    """Turns a header's remainder plus continuation lines into a Message, counting what it sees. Counts go to
    plain dicts while parsing (a Counter increment costs twice as much) and into `stats` at finish()."""

    def __init__(self, stats: ParseStats):
        self.stats = stats
        self.senders: dict[str, Optional[str]] = {}    # text before ": " -> sender (None: a system text)
        self.kinds: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.by_sender: dict[str, int] = {}

    def build(self, ts: str, rest: str, cont: Optional[list], iphone: bool) -> Message:
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
                if lrm_start and iphone and kind not in _PLACEHOLDER_KINDS:
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
