"""The files extract reads: WhatsApp exports (.txt) under the input folder, and the chat texts inside WhatsApp's .zip
files. Each zip is opened once for the whole run (a zip of 5,000 chats is read member after member from one open
file). A file or zip member that cannot be read gets its reason (`Source.problem`), or raises Unreadable when
reading it fails later, so that one bad file never stops the others."""

import contextlib
import functools
import io
import lzma
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Optional

# What zipfile raises for a damaged zip or member: a broken structure (BadZipFile; header fields out of range:
# ValueError, struct.error), data that does not decompress (zlib.error, lzma.LZMAError, OSError from bz2), a member
# shorter than the directory says (EOFError).
_DAMAGED = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, struct.error)
_UNZIP_YOURSELF = "unzip it yourself (e.g. with 7-Zip) and put the .txt here"
_PASSWORD = ("password-protected zip (WhatsApp's own export has no password): export the chat again (chat > More > "
             "Export chat) and keep the .zip as it is, or unzip it yourself with its password (e.g. `unzip FILE` or "
             "7-Zip) and put the .txt here")
_ENCRYPTED, _STRONG_ENCRYPTION = 0x1, 0x40       # zip general-purpose flag bits


class Unreadable(Exception):
    """A file or zip member that cannot be read; the message says why and what to do."""


@dataclass
class Source:
    """One chat text to read: a .txt file, or a .txt member of a .zip."""

    label: str                                  # path relative to the input folder (zip members as zip/member)
    title: str                                  # the chat's name before collisions are resolved
    open: Optional[Callable[[], contextlib.AbstractContextManager[BinaryIO]]] = None   # raises Unreadable
    problem: Optional[str] = None               # set when the file cannot be used at all
    path: Optional[Path] = None                 # the file of a plain .txt (zip members are read as one piece)

    def unusable(self) -> Optional[str]:
        """Why the source cannot be read as an export, checked cheaply before any parsing (None if it may be)."""
        if self.problem:
            return self.problem
        try:
            with self.open() as raw:
                return None if raw.read(1) else "empty file"
        except Unreadable as e:
            return str(e)


def find(root: Path, zips: contextlib.ExitStack) -> list[Source]:
    """Every file under `root` (sorted, hidden files ignored) as a Source. Zips are opened to find their chats and
    stay open on `zips`, which the caller closes after the run."""
    sources = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        suffix = path.suffix.lower()
        if suffix == ".txt":
            sources.append(Source(str(rel), path.stem, open=functools.partial(_open_file, path), path=path))
        elif suffix == ".zip":
            sources.extend(_zip_sources(path, rel, zips))
        else:
            sources.append(Source(str(rel), path.stem, problem="not a .txt or .zip export"))
    return sources


@contextlib.contextmanager
def _open_file(path: Path) -> Iterator[BinaryIO]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise Unreadable(f"cannot read the file ({e.strerror})") from None
    with f:
        yield f


def _zip_sources(path: Path, rel: Path, zips: contextlib.ExitStack) -> list[Source]:
    def problem(reason: str) -> list[Source]:
        return [Source(str(rel), path.stem, problem=reason)]

    try:
        zf = zips.enter_context(zipfile.ZipFile(path))
        # (a name ending in .txt is no folder; ZipInfo.is_dir fails on an empty name)
        infos = [i for i in zf.infolist() if i.filename.lower().endswith(".txt")
                 and not i.filename.startswith("__MACOSX/")]
    except UnicodeDecodeError as e:
        return problem(f"a file name inside the zip is not valid UTF-8 ({e.reason}); {_UNZIP_YOURSELF}")
    except NotImplementedError as e:
        return problem(f"a zip feature Python cannot read ({e}); {_UNZIP_YOURSELF}")
    except _DAMAGED as e:
        return problem(f"broken zip ({e or type(e).__name__})")
    if not infos:
        return problem("zip holds no chat text (.txt)")
    # WhatsApp names the text `_chat.txt` and the zip after the chat, so the zip's name is the chat's
    single = len(infos) == 1
    sources = []
    for info in infos:
        title = path.stem if single else f"{path.stem} - {PurePosixPath(info.filename).stem}"
        source = Source(f"{rel}/{info.filename}", title)
        if info.flag_bits & _STRONG_ENCRYPTION:
            source.problem = f"strongly encrypted zip member (PKWARE strong encryption); {_UNZIP_YOURSELF}"
        elif info.flag_bits & _ENCRYPTED:
            source.problem = _PASSWORD
        else:
            source.open = functools.partial(_open_member, zf, info)
        sources.append(source)
    return sources


@contextlib.contextmanager
def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[BinaryIO]:
    try:
        f = zf.open(info)
    except NotImplementedError as e:
        raise Unreadable(f"cannot unzip it ({e}); {_UNZIP_YOURSELF}") from None
    except _DAMAGED as e:
        raise Unreadable(f"damaged zip member ({e or type(e).__name__})") from None
    with f:
        yield _Member(f)


class _Member(io.RawIOBase):
    """A zip member's data; what zipfile raises for damaged data becomes Unreadable."""

    def __init__(self, f: BinaryIO):
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.f.read(len(buffer))
        except _DAMAGED as e:
            raise Unreadable(f"damaged zip member ({type(e).__name__}: {e})") from None
        buffer[: len(data)] = data
        return len(data)
