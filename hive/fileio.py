"""Safe file writing: every output goes to a temporary file that is renamed into place, so a crash or Ctrl-C
never leaves a half-written file, and repairs keep the original as `.bak`.

A process killed outright (kill -9, power loss) cannot remove its temporary files: they hold a copy of what was being
written (chat text), so every stage that writes into a folder calls remove_stale_temps on it first. Temporary files
are named `.<output name>.hive-<pid>-<random>.tmp` (temp_file), and only names of that form whose process is gone
are removed. sigterm_exits turns SIGTERM into an exit that runs every clean-up (like Ctrl-C does)."""

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

# The temporary files of this process that are not yet renamed or removed: never stale, even when a dead process of
# an earlier run had the same pid (a container's first process always has pid 1).
_IN_FLIGHT: set[str] = set()
_HOOKED: list[bool] = []        # sigterm_exits' fork hooks are registered (once per process)
_ACTIVE: list[bool] = []        # one entry per sigterm_exits in progress; the fork hooks act only then
_TEMP_NAME = re.compile(r"\A\..*\.hive-(\d+)-[a-z0-9_]+\.tmp\Z", re.DOTALL)
# Long output names are cut in the temporary name, which must stay below the file system's 255 bytes.
_NAME_BYTES = 100
SIGTERM_EXIT = 128 + signal.SIGTERM


def _prefix(name: str) -> str:
    short = name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore")
    return f".{short}.hive-{os.getpid()}-"


def temp_file(folder: str | os.PathLike, name: str) -> tuple[int, str]:
    """A new empty temporary file in `folder` for the output `name`: (open descriptor, path). The caller renames or
    removes it and then calls forget_temp(path)."""
    fd, path = tempfile.mkstemp(prefix=_prefix(name), suffix=".tmp", dir=folder)
    _IN_FLIGHT.add(os.path.abspath(path))
    return fd, path


def forget_temp(path: str) -> None:
    """Remove a temporary file of temp_file if it still exists (it was not renamed into place)."""
    _IN_FLIGHT.discard(os.path.abspath(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def temp_dir(folder: str | os.PathLike, name: str) -> Path:
    """A new hidden folder in `folder` for building `name` (an export, say) before it is renamed into place; its name
    says which process made it, so remove_stale_temps can tell a killed run's from a running one's."""
    path = Path(tempfile.mkdtemp(prefix=_prefix(name), suffix=".tmp", dir=folder))
    _IN_FLIGHT.add(os.path.abspath(path))
    return path


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (and folders: temp_dir) that killed runs of any stage left in `folder`: only names
    that temp_file and temp_dir make, and only when the process that made them is no longer running. Returns them."""
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            m = _TEMP_NAME.match(entry.name)
            if m and os.path.abspath(entry.path) not in _IN_FLIGHT and not _running(int(m[1])):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    removed.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return False    # an earlier process with this pid: this one's own files are in _IN_FLIGHT
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:     # another user's process
        return True
    return True


@contextlib.contextmanager
def sigterm_exits() -> Iterator[None]:
    """While active, SIGTERM (`kill PID`, a container or job scheduler stopping the run) raises SystemExit in the main
    thread, so every atomic_write in flight removes its temporary file and `finally` blocks run before the process
    exits with status 143. Without it, SIGTERM ends Python at once and leaves the temporary files behind.

    Processes forked meanwhile (multiprocessing workers) keep SIGTERM's default: their parent cleans up, and
    multiprocessing's Pool.terminate relies on SIGTERM ending a worker wherever it waits. SIGTERM is blocked across
    fork() so that one sent to a new worker before it has reset its handler is not lost (Python drops signals that
    arrive in a child before its signal state is reset)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_cleanly(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)    # a second SIGTERM must not interrupt the clean-up
        print("terminated (SIGTERM): removing temporary files", file=sys.stderr, flush=True)
        raise SystemExit(SIGTERM_EXIT)

    if not _HOOKED and hasattr(os, "register_at_fork"):     # no fork on Windows
        os.register_at_fork(before=_block_sigterm, after_in_parent=_unblock_sigterm, after_in_child=_default_sigterm)
        _HOOKED.append(True)
    previous = signal.signal(signal.SIGTERM, exit_cleanly)
    _ACTIVE.append(True)
    try:
        yield
    finally:
        _ACTIVE.pop()
        signal.signal(signal.SIGTERM, previous)


def _block_sigterm() -> None:
    if _ACTIVE:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _unblock_sigterm() -> None:
    if _ACTIVE:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_sigterm() -> None:
    if _ACTIVE:
        _ACTIVE.clear()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path.parent, path.name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the permissions a plain open() gives
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding=encoding if text else None, newline="\n" if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        forget_temp(tmp)


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
        old = temp_dir(final.parent, f"{final.name}.old")
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
