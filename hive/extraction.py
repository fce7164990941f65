"""The extract stage: every WhatsApp export under paths.raw (.txt, or the chat inside a WhatsApp .zip) becomes
paths.cleaned/<chat>.jsonl (the data contract in DEVELOPERS.md), plus _summary.json.

Files are streamed (one line in memory at a time) and each output is written to a temporary file and renamed.
Who "me" is comes from extract.me or, when that is empty, from clues in the chats (see decide_me); detection
needs one extra read of every file before writing. A large .txt export is cut at message headers into one piece
per core, read by forked processes (see _on_pieces); the output is the same byte for byte.
"""

import contextlib
import multiprocessing
import os
import re
import sys
import tempfile
import zipfile
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _json_str
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional

from hive import fileio, privacy, whatsapp
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
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


@dataclass
class Source:
    """One chat text to read: a .txt file, or a .txt member of a .zip."""

    label: str                                  # path relative to the input folder (zip members as zip/member)
    title: str                                  # the chat's name before collisions are resolved
    open: Optional[Callable] = None             # () -> context manager of a binary stream
    problem: Optional[str] = None               # set when the file cannot be used at all
    path: Optional[Path] = None                 # the file of a plain .txt (zip members are read as one piece)


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
    lines: int = 0
    skipped_lines: int = 0
    messages: int = 0
    my_messages: int = 0
    kinds: dict = field(default_factory=dict)
    senders: dict = field(default_factory=dict)


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

    @property
    def written(self) -> list[ChatReport]:
        return [c for c in self.chats if c.status == "ok"]

    @property
    def skipped(self) -> list[ChatReport]:
        return [c for c in self.chats if c.status != "ok"]


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def find_sources(root: Path) -> list[Source]:
    """Every file under `root` (sorted, hidden files ignored) as a Source; zips are opened to find their chats."""
    sources = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        suffix = path.suffix.lower()
        if suffix == ".txt":
            sources.append(Source(str(rel), path.stem, open=lambda p=path: open(p, "rb"), path=path))
        elif suffix == ".zip":
            sources.extend(_zip_sources(path, rel))
        else:
            sources.append(Source(str(rel), path.stem, problem="not a .txt or .zip export"))
    return sources


def _zip_sources(path: Path, rel: Path) -> list[Source]:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".txt")
                       and not i.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError) as e:
        return [Source(str(rel), path.stem, problem=f"broken zip ({e})")]
    if not members:
        return [Source(str(rel), path.stem, problem="zip holds no chat text (.txt)")]

    def opener(member):
        @contextmanager
        def open_member():
            with zipfile.ZipFile(path) as zf, zf.open(member) as f:
                yield f
        return open_member

    # WhatsApp names the text `_chat.txt` and the zip after the chat, so the zip's name is the chat's
    single = len(members) == 1
    return [Source(f"{rel}/{m}", path.stem if single else f"{path.stem} - {PurePosixPath(m).stem}", open=opener(m))
            for m in members]


@contextmanager
def _lines(source: Source) -> Iterator:
    with source.open() as raw:
        yield whatsapp.open_text(raw)


def _format(source: Source, date_order: str) -> whatsapp.Format:
    with _lines(source) as lines:
        return whatsapp.detect_format(lines, date_order)


def _unusable(source: Source) -> Optional[str]:
    """Why the source cannot be read as an export, checked cheaply before any parsing (None if it may be)."""
    if source.problem:
        return source.problem
    with source.open() as raw:
        if not raw.read(1):
            return "empty file"
    return None


def _survey(source: Source, date_order: str, jobs: int) -> tuple[whatsapp.Format, whatsapp.ParseStats]:
    """Parse without writing: the statistics that decide who "me" is."""
    fmt = _format(source, date_order)
    stats, *later = _on_pieces(source, fmt, jobs, _count, (fmt,))
    for more in later:
        stats.add(more)
    return fmt, stats


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
        with _lines(source) as lines:
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
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return results


def _piece(work: Callable, path: Path, piece: tuple, part_paths: list, args: tuple):
    """A worker: `work` on one piece of a file, writing into part files."""
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(whatsapp.open_range(path, *piece))
        outputs = [stack.enter_context(open(p, "w", encoding="utf-8", newline="\n", buffering=_WRITE_BUFFER))
                   if p is not None else None for p in part_paths]
        return work(lines, *outputs, *args)


def _part_path(folder: Path) -> str:
    # beside the output, on its file system; _on_pieces removes it, whatever happens
    fd, path = tempfile.mkstemp(prefix=".part.", suffix=".tmp", dir=folder)
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
    name = _UNSAFE.sub("_", title).strip(" ._") or "chat"
    if name.casefold() in used:
        parent = str(PurePosixPath(label.replace("\\", "/")).parent)
        name = f"{name} ({_UNSAFE.sub('_', parent)})" if parent != "." else name
    base, n = name, 2
    while name.casefold() in used:
        name, n = f"{base} ({n})", n + 1
    used.add(name.casefold())
    return name


def _write_chat(source: Source, fmt, chat: str, out: Path, me: set, redactor: Redactor,
                pseudonyms: Optional[Pseudonyms], plain: bool, jobs: int) -> tuple[whatsapp.ParseStats, int]:
    """Stream one chat into <chat>.jsonl (and <chat>.txt when `plain`); returns its stats and my message count."""
    with fileio.atomic_write(out / f"{chat}.jsonl") as jsonl_file, \
            (fileio.atomic_write(out / f"{chat}.txt") if plain else _nothing()) as txt_file, \
            _buffered(jsonl_file) as f, _buffered(txt_file) as txt:
        (stats, mine), *later = _on_pieces(source, fmt, jobs, _write_messages,
                                           (fmt, _json_str(chat), me, redactor, pseudonyms), (f, txt), out)
    for more, more_mine in later:
        stats.add(more)
        mine += more_mine
    return stats, mine


def _write_messages(lines, f, txt, fmt, chat_json: str, me: set, redactor: Redactor,
                    pseudonyms: Optional[Pseudonyms]) -> tuple[whatsapp.ParseStats, int]:
    """The JSONL lines (and plain lines when `txt`) of the messages in `lines`; their stats and my message count."""
    stats = whatsapp.ParseStats()
    people: dict = {None: ("null", "false", False)}    # sender -> (JSON of the name shown, is_me JSON, is_me)
    kind_json = {k: f'"kind": "{k}", "text": ' for k in whatsapp.KINDS}
    redact = redactor.__call__
    mine = 0
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
        if is_me:
            mine += 1
            if txt is not None and kind in ("text", "edited"):
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
    return stats, mine


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


def _report(report: ChatReport, fmt: whatsapp.Format, stats: whatsapp.ParseStats) -> None:
    report.format, report.header = fmt.platform, fmt.example
    report.date_order, report.date_order_reason = fmt.date_order, fmt.date_order_reason
    report.lines, report.skipped_lines, report.messages = stats.lines, stats.skipped_lines, stats.messages
    report.kinds = {k: stats.kinds[k] for k in whatsapp.KINDS if stats.kinds[k]}
    report.senders = dict(stats.senders.most_common())


_UNREADABLE = (whatsapp.NotAnExport, UnicodeDecodeError, zipfile.BadZipFile, OSError)


def _skip(report: ChatReport, e: Exception) -> None:
    report.status = "skipped"
    if isinstance(e, UnicodeDecodeError):
        report.reason = "not UTF-8 or UTF-16 text (a WhatsApp export is UTF-8)"
    elif isinstance(e, zipfile.BadZipFile):
        report.reason = f"broken zip ({e})"
    else:
        report.reason = str(e)


def _check_sources(raw: Path) -> tuple[list[ChatReport], list[tuple[Source, ChatReport]]]:
    """A report for every file under `raw`, and the sources worth parsing."""
    reports, usable = [], []
    for source in find_sources(raw):
        report = ChatReport(source.label)
        reports.append(report)
        try:
            reason = _unusable(source)
        except (OSError, zipfile.BadZipFile) as e:
            _skip(report, e)
            continue
        if reason:
            report.status, report.reason = "skipped", reason
        else:
            usable.append((source, report))
    return reports, usable


def run(cfg: Config, progress: bool = True, jobs: Optional[int] = None) -> ExtractResult:
    """Extract every chat under paths.raw into paths.cleaned; see the module docstring. `jobs`: processes per large
    file (default: one per core, at most MAX_JOBS; always 1 where fork is missing)."""
    from tqdm import tqdm

    raw, out = cfg.path("raw"), cfg.path("cleaned")
    if not raw.is_dir() or not any(p.is_file() and not p.name.startswith(".") for p in raw.rglob("*")):
        raise HiveError(f"no WhatsApp exports in {raw}: export a chat in WhatsApp (chat > More > Export chat) and "
                        f"put the .txt or .zip there (any sub-folder), or pass --input DIR")
    x = cfg.extract
    if jobs is not None and jobs < 1:
        raise HiveError(f"--jobs {jobs}: give 1 or more processes per file")
    jobs = _jobs(jobs)
    reports, usable = _check_sources(raw)

    # Detecting "me" and pseudonyms need every chat's senders before the first line is written: one more read.
    surveys: dict[str, tuple[whatsapp.Format, whatsapp.ParseStats]] = {}
    if not x.me or x.pseudonymize:
        for source, report in tqdm(usable, desc="extract: reading", unit="file", disable=not progress):
            try:
                surveys[report.source] = _survey(source, x.date_order, jobs)
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

    me = decide_me(x.me, [(r.chat, surveys[r.source][1]) for _, r in usable] if surveys else [])
    pseudonyms = mapping_path = None
    if x.pseudonymize:
        names = [n for _, stats in surveys.values() for n in [*stats.senders, *stats.attributed]]
        pseudonyms = Pseudonyms(names, keep=me.names)
        mapping_path = privacy.write_mapping(pseudonyms, cfg.path("private"))
    me_set, redactor = {n.casefold() for n in me.names}, Redactor(x.redact)
    # chat and file names hold contacts' names and numbers: named again, scrubbed, now that "me" is decided
    scrub, used = privacy.scrubber(redactor, pseudonyms), set()
    for source, report in usable:
        report.chat = _chat_name(scrub(source.title), scrub(source.label), used)
    for source, report in tqdm(usable, desc="extract: writing", unit="file", disable=not progress):
        try:
            fmt = surveys[report.source][0] if surveys else _format(source, x.date_order)
            stats, report.my_messages = _write_chat(source, fmt, report.chat, out, me_set, redactor, pseudonyms,
                                                    x.write_plain, jobs)
            report.output = f"{report.chat}.jsonl"
            _report(report, fmt, stats)
        except _UNREADABLE as e:
            _skip(report, e)
    summary = _write_summary(out, raw, me, reports, scrub)
    written = {r.output for r in reports if r.status == "ok"}
    stale = sorted(p.name for p in out.glob("*.jsonl") if p.name not in written)
    result = ExtractResult(raw, out, me, reports, summary, stale, mapping_path)
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
    import json

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
            note = "" if "GUESSED" not in (r.date_order_reason or "") else "date order guessed"
            rows.append((r.source, r.format, r.date_order, f"{r.messages:,}", f"{r.my_messages:,}",
                         str(len(r.senders)), note))
        else:
            rows.append((r.source, "-", "-", "-", "-", "-", f"skipped: {r.reason}"))
    widths = [min(max(len(row[i]) for row in rows), 48) for i in range(len(rows[0]) - 1)]
    return "\n".join("  " + "  ".join(c[:48].ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]
                     for row in rows)
