"""Safe file writing: every output goes to a temporary file that is renamed into place, so a crash or Ctrl-C
never leaves a half-written file, and repairs keep the original as `.bak`."""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the permissions a plain open() gives
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding, newline=None if "b" in mode else "\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_line(obj) -> str:
    """One JSONL line, UTF-8 kept readable (no \\u escapes for emoji and accents)."""
    return json.dumps(obj, ensure_ascii=False) + "\n"


def write_jsonl(path: str | os.PathLike, rows: Iterable) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json_line(row))
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> Iterator:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the fully written folder `new` to `final`; an older `final` is removed only after the new one is in
    place (and put back if the move fails). Both must be on one file system."""
    new, final = Path(new), Path(final)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, old / final.name)
    try:
        os.replace(new, final)
    except OSError:
        if old:
            os.replace(old / final.name, final)
        raise
    finally:
        if old:
            shutil.rmtree(old, ignore_errors=True)


def backup(path: str | os.PathLike) -> Path:
    """Copy `path` to a new backup before a repair rewrites it: FILE.bak, then FILE.bak2, FILE.bak3, ... An earlier
    backup is never replaced, so every original of a chain of repairs is kept."""
    path = Path(path)
    n = 1
    while (bak := path.with_name(path.name + (".bak" if n == 1 else f".bak{n}"))).exists():
        n += 1
    with atomic_write(bak, "wb") as f, open(path, "rb") as src:
        shutil.copyfileobj(src, f)
    shutil.copystat(path, bak)
    return bak
