"""The extract stage: every WhatsApp export under paths.raw (.txt, or the chat inside a WhatsApp .zip) becomes
paths.cleaned/<chat>.jsonl (the data contract in DEVELOPERS.md), plus _summary.json.

Files are streamed (memory bounded per message) and each output is written to a temporary file and renamed. Every
file is first detected (its header format, and what its dates say about the date order: the first lines, or the
whole file when no date shows the order); then every file's date order is decided, from its own dates or from the
other files of its format (whatsapp.DateOrders); then files are parsed and written. Who "me" is comes from
extract.me or, when that is empty, from clues in the chats (see decide_me), which needs one more read of every file
before writing. A large .txt export is cut at message headers into one piece per core, read by forked processes
(see _on_pieces); the output is the same byte for byte.

Input and output folders must not overlap: extract never writes where the exports are. A file that cannot be read is
skipped with its reason; the others are extracted. Temporary files that a killed run left in the output folder are
removed first, and SIGTERM removes those in flight (fileio).
"""

import contextlib
import functools
import json
import multiprocessing
import os
import re
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _json_str
from pathlib import Path, PurePosixPath
from typing import Optional

from hive import fileio, privacy, whatsapp
from hive.chatfiles import Source, Unreadable, find
from hive.config import Config
from hive.errors import HiveError
from hive.privacy import Pseudonyms, Redactor, strip_urls

SUMMARY_NAME = "_summary.json"
# Files smaller than this are read by one process: below it, forking and joining the pieces cost more than a second
# core saves (a 1M-line export is about 80 MB).
PARALLEL_MIN_BYTES = 8 * 2**20
MAX_JOBS = 4
# Outputs are written through a buffer this large: with the default 8 KB, the write(2) calls for the 160 MB of JSONL
# of a 1M-line export cost 0.1-0.3 s of CPU (of about 3.5 s).
_WRITE_BUFFER = 2**20
_SET_ME = 'pass --me "Your Name" (repeatable) or set extract.me in training_config.yaml'
# The other person of a 1:1 chat, from the export's own file name (English app language).
_CHAT_WITH = re.compile(r"^WhatsApp Chat (?:with|-) (.+?)(?: \d+)?$")
# Characters no file name may hold on some system, and lone surrogates (undecodable bytes of a file name)
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\ud800-\udfff]+')
_NAME_BYTES = 200       # a chat's file name, in UTF-8: file systems allow 255 bytes with ".jsonl" and " (2)"


@dataclass
class ChatReport:
    source: str
    status: str = "ok"                          # ok | skipped
    reason: Optional[str] = None
    chat: Optional[str] = None
    output: Optional[str] = None
    format: Optional[str] = None
    header: Optional[str] = None
    date_order: Optional[str] = None
    date_order_reason: Optional[str] = None
    other_formats: list = field(default_factory=list)   # further header formats parsed in the same file
    encoding: Optional[str] = None              # utf-8 | utf-16 | windows-1252 (bytes that are not UTF-8)
    # every line is counted once: lines == messages + continuation_lines + skipped_lines + dropped_lines
    lines: int = 0
    messages: int = 0                           # one header line each
    continuation_lines: int = 0
    skipped_lines: int = 0                      # before the first header
    dropped_lines: int = 0                      # past whatsapp.MAX_MESSAGE_CHARS of their message
    long_lines: int = 0
    cut_messages: int = 0
    invalid_headers: int = 0                    # header-like lines with no real date or time, kept as text
    foreign_lines: int = 0                      # header-like lines of another format, kept as text
    my_messages: int = 0
    kinds: dict = field(default_factory=dict)
    senders: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)   # what the user should know about this file


@dataclass
class MeDecision:
    names: list[str]
    reason: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class ExtractResult:
    input: Path
    output: Path
    me: MeDecision
    chats: list[ChatReport]
    summary_path: Path
    stale: list[str] = field(default_factory=list)   # *.jsonl in the output folder that this run did not write
    mapping_path: Optional[Path] = None               # the real names behind the pseudonyms (paths.private)
    removed: list[Path] = field(default_factory=list)   # temporary files of killed runs, removed first

    @property
    def written(self) -> list[ChatReport]:
        return [c for c in self.chats if c.status == "ok"]

    @property
    def skipped(self) -> list[ChatReport]:
        return [c for c in self.chats if c.status != "ok"]

    @property
    def kinds(self) -> Counter:
        return sum((Counter(c.kinds) for c in self.written), Counter())


# ---------------------------------------------------------------------------------------------------------------
# Reading


@contextmanager
def _text(source: Source):
    with source.open() as raw:
        yield whatsapp.open_text(raw)


def _detect(source: Source, date_order: str, report: ChatReport) -> whatsapp.Detected:
    with _text(source) as text:
        report.encoding = "utf-16" if text.encoding == "utf-16" else "utf-8"
        return whatsapp.detect(text, date_order)


def _parse(parse: Callable, fmt: whatsapp.Format, orders: whatsapp.DateOrders) -> tuple:
    """(format, stats) of parse(fmt) -> stats; when those show a second header format in the file, of one more
    parse with it."""
    stats = parse(fmt)
    more = orders.with_other_formats(fmt, stats)
    return (more, parse(more)) if more else (fmt, stats)


def _survey(source: Source, fmt: whatsapp.Format, jobs: int) -> whatsapp.ParseStats:
    """Parse without writing: the statistics that decide who "me" is."""
    stats, *later = _on_pieces(source, fmt, jobs, _count, (fmt,))
    for more in later:
        stats.add(more)
    return stats


def _count(lines, fmt: whatsapp.Format) -> whatsapp.ParseStats:
    stats = whatsapp.ParseStats()
    deque(whatsapp.iter_messages(lines, fmt, stats), maxlen=0)
    return stats


# ---------------------------------------------------------------------------------------------------------------
# One file in several processes


def _jobs(requested: Optional[int]) -> int:
    """Processes per file. Only where fork exists on Linux: a forked worker starts at once with everything
    imported, while spawning one re-imports Hive (and macOS's fork is unsafe with some system libraries)."""
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return requested if requested is not None else min(os.cpu_count() or 1, MAX_JOBS)


def _on_pieces(source: Source, fmt: whatsapp.Format, jobs: int, work: Callable, args: tuple,
               outputs: tuple = (), folder: Optional[Path] = None) -> list:
    """[work(lines, *outputs, *args) for each piece of `source`], in file order. A plain file of at least
    PARALLEL_MIN_BYTES is cut at message headers into up to `jobs` pieces (whatsapp.message_starts): this process
    reads the first, writing into `outputs` (open text files or None), and forked ones read the others, each
    writing temporary part files in `folder` that are appended to `outputs` in order. Everything else is one piece.
    `work` and `args` go to the workers by pickle; their results come back the same way."""
    cuts = []
    if jobs > 1 and source.path is not None and source.path.stat().st_size >= PARALLEL_MIN_BYTES:
        with open(source.path, "rb") as f:
            cuts = whatsapp.message_starts(f, fmt, jobs)
    if not cuts:
        with _text(source) as lines:
            return [work(lines, *outputs, *args)]
    pieces = list(zip([0, *cuts], [*cuts, None]))
    parts = [[_part_path(folder) if out is not None else None for out in outputs] for _ in cuts]
    try:
        with multiprocessing.get_context("fork").Pool(len(cuts)) as pool:
            later = pool.starmap_async(_piece, [(work, source.path, piece, paths, args)
                                                for piece, paths in zip(pieces[1:], parts)])
            with whatsapp.open_range(source.path, *pieces[0]) as lines:
                results = [work(lines, *outputs, *args)]
            results += later.get()
        for out, paths in zip(outputs, zip(*parts)):
            if out is not None:
                _append(out, paths)
    finally:
        for path in (p for paths in parts for p in paths if p is not None):
            fileio.forget_temp(path)
    return results


def _piece(work: Callable, path: Path, piece: tuple, part_paths: list, args: tuple):
    """A worker: `work` on one piece of a file, writing into part files."""
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(whatsapp.open_range(path, *piece))
        outputs = [stack.enter_context(open(p, "w", encoding="utf-8", newline="\n", buffering=_WRITE_BUFFER))
                   if p is not None else None for p in part_paths]
        return work(lines, *outputs, *args)


def _part_path(folder: Path) -> str:
    # beside the output, on its file system; _on_pieces removes it, whatever happens (a killed run's: the next run)
    fd, path = fileio.temp_file(folder, "part")
    os.close(fd)
    return path


def _append(out, paths: tuple) -> None:
    """Append files to an open text file, copied by the kernel (os.sendfile) rather than through Python."""
    out.flush()
    for path in paths:
        with open(path, "rb") as part:
            size, done = os.fstat(part.fileno()).st_size, 0
            while done < size:
                done += os.sendfile(out.fileno(), part.fileno(), done, size - done)


# ---------------------------------------------------------------------------------------------------------------
# Who is "me"


def decide_me(configured: list[str], chats: list[tuple[str, whatsapp.ParseStats]]) -> MeDecision:
    """The exporting user's name(s). Configured names win. Otherwise, in order of strength: the sender of
    "You deleted this message" (any language); in a two-person chat, the participant other than the one the chat
    names (iPhone attributed system events, "You added X", the file name); the one sender present in every chat.
    Raises HiveError when the clues are missing or contradict each other."""
    if configured:
        return MeDecision(list(configured), "configured (extract.me)")
    found: dict[str, list[str]] = {}
    for chat, stats in chats:
        for name, n in stats.deleted_by_me.items():
            found.setdefault(name, []).append(f'{chat}: "{name}" sent "You deleted this message" ({n}x)')
        others = set(stats.attributed) | set(stats.not_me) | ({m.group(1)} if (m := _CHAT_WITH.match(chat)) else set())
        senders = set(stats.senders)
        if len(senders) == 2 and len(senders & others) == 1:
            (other,) = senders & others
            (me,) = senders - others
            found.setdefault(me, []).append(f'{chat}: two-person chat; the chat itself names "{other}" as the other')
    senders_of = [set(stats.senders) for _, stats in chats]
    if found:
        together = [sorted(s & set(found)) for s in senders_of if len(s & set(found)) > 1]
        if together:
            raise HiveError(f"who is you is ambiguous: {' and '.join(together[0])} both look like you and write in "
                            f"the same chat; {_SET_ME}")
        return MeDecision(sorted(found), "detected", [e for name in sorted(found) for e in found[name]])
    everyone = Counter(name for _, stats in chats for name in stats.senders.elements())
    if len(chats) > 1:
        common = set.intersection(*senders_of)
        if len(common) == 1:
            (me,) = common
            return MeDecision([me], "detected", [f'"{me}" is the only sender present in all {len(chats)} chats'])
    listed = ", ".join(f"{name} ({n:,})" for name, n in everyone.most_common(8))
    raise HiveError(f"could not tell which sender is you (no \"You deleted this message\", no two-person chat that "
                    f"names the other person, no single sender common to all chats); senders: {listed}; {_SET_ME}")


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _chat_name(title: str, label: str, used: set) -> str:
    """A file-safe chat name, unique in this run (two `_chat.txt` of different zips, or equal names in folders)."""
    name = _safe(title) or "chat"
    if name.casefold() in used:
        parent = str(PurePosixPath(label.replace("\\", "/")).parent)
        name = f"{name} ({_safe(parent)})" if parent != "." else name
    base, n = name, 2
    while name.casefold() in used:
        name, n = f"{base} ({n})", n + 1
    used.add(name.casefold())
    return name


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).encode("utf-8")[:_NAME_BYTES].decode("utf-8", "ignore").strip(" ._")


def _write_chat(source: Source, fmt: whatsapp.Format, chat: str, out: Path, me: set, redactor: Redactor,
                pseudonyms: Optional[Pseudonyms], plain: bool, jobs: int) -> whatsapp.ParseStats:
    """Stream one chat into <chat>.jsonl (and <chat>.txt when `plain`); returns its stats."""
    with fileio.atomic_write(out / f"{chat}.jsonl") as jsonl_file, \
            (fileio.atomic_write(out / f"{chat}.txt") if plain else _nothing()) as txt_file, \
            _buffered(jsonl_file) as f, _buffered(txt_file) as txt:
        stats, *later = _on_pieces(source, fmt, jobs, _write_messages,
                                   (fmt, _json_str(chat), me, redactor, pseudonyms), (f, txt), out)
    for more in later:
        stats.add(more)
    return stats


def _write_messages(lines, f, txt, fmt, chat_json: str, me: set, redactor: Redactor,
                    pseudonyms: Optional[Pseudonyms]) -> whatsapp.ParseStats:
    """The JSONL lines (and plain lines when `txt`) of the messages in `lines`; their stats."""
    stats = whatsapp.ParseStats()
    people: dict = {None: ("null", "false", False)}    # sender -> (JSON of the name shown, is_me JSON, is_me)
    kind_json = {k: f'"kind": "{k}", "text": ' for k in whatsapp.KINDS}
    redact = redactor.__call__
    last_ts = last_sender = prefix = is_me = None
    write = f.write
    for ts, sender, text, kind in whatsapp.iter_messages(lines, fmt, stats):
        # the line up to "kind" only changes with the timestamp or the sender (identity: both come from caches)
        if ts is not last_ts or sender is not last_sender:
            last_ts, last_sender = ts, sender
            try:
                shown, me_json, is_me = people[sender]
            except KeyError:
                is_me = sender.casefold() in me
                # an unsaved contact's sender is a phone number: redacted like one when not pseudonymized
                shown = _json_str(sender if is_me else redactor(pseudonyms.name(sender) if pseudonyms else sender))
                shown, me_json, is_me = people[sender] = (shown, "true" if is_me else "false", is_me)
            prefix = f'{{"chat": {chat_json}, "timestamp": "{ts}", "sender": {shown}, "is_me": {me_json}, '
        if is_me and txt is not None and kind in ("text", "edited"):
            line = redact(strip_urls(text))
            line = " ".join((pseudonyms.text(line) if pseudonyms else line).split())
            if line:
                txt.write(line + "\n")
        if kind == "text":
            text = redact(text)
        elif kind == "media":
            # only a caption is message text; the placeholder line holds file names with digit runs
            head, sep, caption = text.partition("\n")
            text = head + sep + redact(caption) if caption else text
        elif kind not in ("deleted", "view_once"):
            text = redact(text)
        if pseudonyms is not None:
            text = pseudonyms.text(text)
        write(f"{prefix}{kind_json[kind]}{_json_str(text)}}}\n")     # one allocation, where + makes three
    return stats


@contextmanager
def _nothing():
    yield None


@contextmanager
def _buffered(f):
    """An atomic_write file (or None) written through a _WRITE_BUFFER buffer: a second file object on its descriptor
    (atomic_write's own is left empty; it still syncs and renames the file)."""
    if f is None:
        yield None
        return
    with open(f.fileno(), "w", encoding="utf-8", newline="\n", buffering=_WRITE_BUFFER, closefd=False) as big:
        yield big


def _report(report: ChatReport, fmt: whatsapp.Format, stats: whatsapp.ParseStats, me: set) -> None:
    report.format, report.header = fmt.platform, fmt.example
    report.date_order, report.date_order_reason = fmt.date_order, fmt.date_order_reason
    report.other_formats = [{"format": f.platform, "header": f.example, "date_order": f.date_order,
                             "date_order_reason": f.date_order_reason} for f in fmt.others]
    for name in ("lines", "messages", "continuation_lines", "skipped_lines", "dropped_lines", "long_lines",
                 "cut_messages", "invalid_headers"):
        setattr(report, name, getattr(stats, name))
    report.foreign_lines = sum(seen.lines for seen in stats.foreign.values())
    report.my_messages = sum(n for sender, n in stats.senders.items() if sender.casefold() in me)
    report.kinds = {k: stats.kinds[k] for k in whatsapp.KINDS if stats.kinds[k]}
    report.senders = dict(stats.senders.most_common())
    report.notes = _notes(fmt, stats)
    if stats.legacy_bytes:
        report.encoding = "windows-1252"


def _notes(fmt: whatsapp.Format, stats: whatsapp.ParseStats) -> list[str]:
    """What the user should know about a file, one short sentence each."""
    cap = f"{whatsapp.MAX_MESSAGE_CHARS:,}"
    notes = []
    if not fmt.date_order_reason.startswith(whatsapp.OWN_DATE_EVIDENCE):
        notes.append(f"date order {fmt.date_order}: {fmt.date_order_reason}")
    notes += [f"second header format parsed too: {f.platform} `{f.example.strip()}` ({f.date_order})"
              for f in fmt.others]
    notes += [f"{seen.lines:,} line(s) look like headers of another format (`{seen.example.strip()}`) and were kept "
              f"as message text" for seen in stats.foreign.values()]
    if stats.invalid_headers:
        notes.append(f"{stats.invalid_headers:,} line(s) with a header but no real date or time kept as message text")
    if stats.legacy_bytes:
        notes.append(f"not UTF-8: {stats.legacy_bytes:,} byte(s) read as Windows-1252; if accents look wrong, save "
                     f"the file as UTF-8 and run again")
    if stats.long_lines:
        notes.append(f"{stats.long_lines:,} line(s) longer than {cap} characters cut there")
    if stats.cut_messages:
        notes.append(f"{stats.cut_messages:,} message(s) longer than {cap} characters cut there "
                     f"({stats.dropped_lines:,} line(s) dropped)")
    return notes


_UNREADABLE = (whatsapp.NotAnExport, Unreadable, UnicodeDecodeError)


def _skip(report: ChatReport, e: Exception) -> None:
    report.status = "skipped"
    report.reason = "not valid UTF-16 text (save it as UTF-8)" if isinstance(e, UnicodeDecodeError) else str(e)


def _check_sources(raw: Path, zips: contextlib.ExitStack) -> tuple[list, list]:
    """A report for every file under `raw`, and the (source, report) pairs worth parsing."""
    reports, usable = [], []
    for source in find(raw, zips):
        report = ChatReport(source.label)
        reports.append(report)
        reason = source.unusable()
        if reason:
            report.status, report.reason = "skipped", reason
        else:
            usable.append((source, report))
    return reports, usable


def _check_folders(raw: Path, out: Path) -> None:
    """Refuse an output folder that overlaps the input (extract would write among, or over, the exports) or that
    cannot be written, before any work."""
    r, o = raw.resolve(), out.resolve()
    if _within(o, r) or _within(r, o):
        raise HiveError(f"the output folder {out} and the input folder {raw} overlap: extract never writes where your "
                        f"exports are; pass an --output outside the input (default dataset/cleaned)")
    if o.exists() and not o.is_dir():
        raise HiveError(f"the output {out} is a file, not a folder; pass --output DIR (paths.cleaned)")
    try:
        o.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=o):
            pass
    except OSError as e:
        raise HiveError(f"cannot write in the output folder {out} ({e.strerror}); pass --output DIR, a folder you "
                        f"can write (paths.cleaned)") from None


def _within(folder: Path, other: Path) -> bool:
    """Whether `folder` is `other` or lies inside it, compared as the same folder on disk (links, bind mounts and
    case-insensitive names included)."""
    return other.exists() and any(p.exists() and os.path.samefile(p, other) for p in (folder, *folder.parents))


def run(cfg: Config, progress: bool = True, jobs: Optional[int] = None) -> ExtractResult:
    """Extract every chat under paths.raw into paths.cleaned; see the module docstring. `jobs`: processes per large
    file (default: one per core, at most MAX_JOBS; always 1 where fork is missing)."""
    raw, out = cfg.path("raw"), cfg.path("cleaned")
    if not raw.is_dir() or not any(p.is_file() and not p.name.startswith(".") for p in raw.rglob("*")):
        raise HiveError(f"no WhatsApp exports in {raw}: export a chat in WhatsApp (chat > More > Export chat) and "
                        f"put the .txt or .zip there (any sub-folder), or pass --input DIR")
    if jobs is not None and jobs < 1:
        raise HiveError(f"--jobs {jobs}: give 1 or more processes per file")
    _check_folders(raw, out)
    removed = fileio.remove_stale_temps(out)
    try:
        with contextlib.ExitStack() as zips, fileio.sigterm_exits():
            result = _extract(cfg, raw, out, _jobs(jobs), zips, progress)
    except OSError as e:
        raise HiveError(f"extract stopped: {e.strerror or e} ({e.filename}); check that {out} can be written and "
                        f"has free space") from None
    result.removed = removed
    return result


def _extract(cfg: Config, raw: Path, out: Path, jobs: int, zips: contextlib.ExitStack,
             progress: bool) -> ExtractResult:
    from tqdm import tqdm

    x = cfg.extract
    reports, usable = _check_sources(raw, zips)
    detected: dict[str, whatsapp.Detected] = {}
    for source, report in tqdm(usable, desc="extract: detecting", unit="file", disable=not progress):
        try:
            detected[report.source] = _detect(source, x.date_order, report)
        except _UNREADABLE as e:
            _skip(report, e)
    usable = [(s, r) for s, r in usable if r.source in detected]
    orders = whatsapp.DateOrders(detected, x.date_order)
    formats = {r.source: orders.format(r.source) for _, r in usable}

    # Detecting "me" and pseudonyms need every chat's senders before the first line is written: one more read.
    surveys: dict[str, whatsapp.ParseStats] = {}
    if not x.me or x.pseudonymize:
        for source, report in tqdm(usable, desc="extract: reading", unit="file", disable=not progress):
            try:
                formats[report.source], surveys[report.source] = _parse(
                    functools.partial(_survey, source, jobs=jobs), formats[report.source], orders)
            except _UNREADABLE as e:
                _skip(report, e)
        usable = [(s, r) for s, r in usable if r.source in surveys]
    if not usable:
        _write_summary(out, raw, None, reports, Redactor(x.redact))
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in reports[:5])
        raise HiveError(f"no usable WhatsApp export in {raw} ({reasons}); export the chat again from WhatsApp "
                        f"(without media is enough) and put the .txt or .zip there")
    used: set = set()
    for source, report in usable:
        report.chat = _chat_name(source.title, source.label, used)

    me = decide_me(x.me, [(r.chat, surveys[r.source]) for _, r in usable] if surveys else [])
    pseudonyms = mapping_path = None
    if x.pseudonymize:
        names = [n for stats in surveys.values() for n in [*stats.senders, *stats.attributed]]
        pseudonyms = Pseudonyms(names, keep=me.names)
        mapping_path = privacy.write_mapping(pseudonyms, cfg.path("private"))
    me_set, redactor = {n.casefold() for n in me.names}, Redactor(x.redact)
    # chat and file names hold contacts' names and numbers: named again, scrubbed, now that "me" is decided
    scrub, used = privacy.scrubber(redactor, pseudonyms), set()
    for source, report in usable:
        report.chat = _chat_name(scrub(source.title), scrub(source.label), used)
    for source, report in tqdm(usable, desc="extract: writing", unit="file", disable=not progress):
        try:
            write = functools.partial(_write_chat, source, chat=report.chat, out=out, me=me_set, redactor=redactor,
                                      pseudonyms=pseudonyms, plain=x.write_plain, jobs=jobs)
            fmt = formats[report.source]
            fmt, stats = (fmt, write(fmt)) if surveys else _parse(write, fmt, orders)
            report.output = f"{report.chat}.jsonl"
            _report(report, fmt, stats, me_set)
        except _UNREADABLE as e:
            _skip(report, e)
    summary = _write_summary(out, raw, me, reports, scrub)
    written = {r.output for r in reports if r.status == "ok"}
    stale = sorted(p.name for p in out.glob("*.jsonl") if p.name not in written)
    result = ExtractResult(raw, out, me, reports, summary, stale, mapping_path=mapping_path)
    if not result.written:
        raise HiveError(f"no usable WhatsApp export in {raw}; see {summary}")
    if x.me and not any(r.my_messages for r in result.written):
        found = Counter()
        for r in result.written:
            found.update(r.senders)
        raise HiveError(f"extract.me {x.me} matches no sender (names must match the export); senders: "
                        f"{', '.join(n for n, _ in found.most_common(8))}; {_SET_ME}")
    return result


def _write_summary(out: Path, raw: Path, me: Optional[MeDecision], reports: list[ChatReport],
                   scrub: Callable[[str], str]) -> Path:
    """_summary.json, scrubbed like the chats (it travels with them): file names, senders and evidence."""
    path = out / SUMMARY_NAME
    data = privacy.scrub_json({"input": str(raw), "output": str(out), "me": asdict(me) if me else None,
                               "files": [asdict(r) for r in reports]}, scrub)
    with fileio.atomic_write(path) as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
    return path


def table(result: ExtractResult) -> str:
    """One compact row per input file, for the terminal."""
    rows = [("file", "format", "order", "messages", "mine", "senders", "note")]
    for r in result.chats:
        if r.status == "ok":
            rows.append((r.source, r.format, r.date_order, f"{r.messages:,}", f"{r.my_messages:,}",
                         str(len(r.senders)), "; ".join(r.notes)))
        else:
            rows.append((r.source, "-", "-", "-", "-", "-", f"skipped: {r.reason}"))
    widths = [min(max(len(row[i]) for row in rows), 48) for i in range(len(rows[0]) - 1)]
    return "\n".join("  " + "  ".join(c[:48].ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]
                     for row in rows)
