"""The run directory of ``bptt train``: every file of a run, its marker, its lock, atomic writes
and the one reader of JSON-lines files.

    RUN/
      .bptt-run        marker: bptt created this directory as a run (JSON: format, version)
      .lock            an exclusive OS lock (fcntl.flock) held by the one process training in RUN
                       for its whole life; the OS releases it when that process ends, kill -9
                       included, so there is never a stale lock. The file itself stays.
      config.json  corpus.json  corpus.npy  metrics.jsonl  samples.jsonl  samples.txt
      train.log  loss.png  report.html  last.json  best.json  checkpoints/*.safetensors

Rules (docs/reliability.md lists the tests that check them):

- bptt writes a run only into a directory it created as one (the marker) or an empty one; any
  other non-empty directory is refused, ``--overwrite`` or not;
- every file is written atomically (a temporary ``.NAME.tmp-PID`` beside it, fsynced, renamed);
  temporaries left by a killed process are removed the next time the run is opened;
- JSON-lines files are appended one whole line per ``write`` call. ``read_jsonl`` is their only
  reader: a torn last line (no newline: a kill during the append) is dropped and reported, a
  damaged complete line is an error naming the file, the line and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

MARKER = ".bptt-run"
LOCK = ".lock"
MARKER_FORMAT = "bptt-run"
ARRAYS_DIR = "checkpoints"
# Every file bptt train writes in RUN (the only ones --overwrite removes, with ARRAYS_DIR).
RUN_FILES = ("last.json", "best.json", "metrics.jsonl", "samples.txt", "samples.jsonl",
             "train.log", "loss.png", "config.json", "corpus.npy", "corpus.json", "report.html")
_TMP = re.compile(r"^\..+\.tmp-(\d+)$")


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (one-line message with the fix)."""


# ---------------------------------------------------------------- files

def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never a part.
    A failure (a full disk) leaves the old file as it was and no temporary behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is a regular file (checked with stat, before any open, so a FIFO
    or a device never blocks or streams forever); otherwise a one-line error."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file; check the path (the {what})") from None
    except OSError as e:
        raise RunDirError(f"{path}: cannot read this {what} ({e.strerror}); check the path "
                          f"and its permissions") from None
    if stat.S_ISDIR(mode):
        raise RunDirError(f"{path} is a directory; give a {what}")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if (
            stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) else "not a regular file"
        raise RunDirError(f"{path} is {kind}, not a regular {what}; give a regular file")
    return path


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line with a single write call (O_APPEND), so lines never interleave."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike, on_torn: Callable[[str], None] | None = None
               ) -> list[dict]:
    """The JSON objects of a JSON-lines file ([] if it does not exist); the one reader of
    ``metrics.jsonl`` and ``samples.jsonl``.

    A last line without its newline that does not parse is what a kill during an append leaves:
    it is dropped and described to ``on_torn``. Any other line that is not a JSON object raises
    ``RunDirError`` naming the file, the line and the fix. Blank lines are skipped.
    """
    path = Path(path)
    if not path.exists():
        return []
    check_regular_file(path, "JSON-lines file")
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()                          # "" when the file ends with a newline
    out = []
    for n, line in enumerate([*lines, tail], 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            if n == len(lines) + 1:             # the torn tail
                if on_torn is not None:
                    on_torn(f"{path}: dropped a partial last line (a process was stopped while "
                            f"writing it)")
                continue
            raise RunDirError(f"{path}:{n}: not JSON ({getattr(e, 'msg', e)}); the file is "
                              f"damaged: fix or delete line {n}") from None
        if not isinstance(rec, dict):
            raise RunDirError(f"{path}:{n}: not JSON object; the file is damaged: fix or delete "
                              f"line {n}")
        out.append(rec)
    return out


def clean_temporaries(directory: str | os.PathLike) -> None:
    """Remove ``.NAME.tmp-PID`` files in ``directory`` whose process no longer exists."""
    directory = Path(directory)
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for f in entries:
        m = _TMP.match(f.name)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                f.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True                             # exists, owned by someone else
    return True


# ---------------------------------------------------------------- what a run directory is

def is_run_dir(path: str | os.PathLike) -> bool:
    """True for a directory bptt made as a run: the marker, or (runs from before the marker)
    a last.json beside a config.json or a checkpoints/ folder."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    return (path / "last.json").is_file() and ((path / "config.json").is_file()
                                                or (path / ARRAYS_DIR).is_dir())


def run_file_of(path: str | os.PathLike) -> Path | None:
    """The run directory whose own file ``path`` would be (a checkpoint, the metrics, the
    marker ...), or None. ``report.html`` is not counted: ``bptt report`` rewrites it."""
    path = Path(os.path.abspath(path))
    for parent in path.parents:
        if is_run_dir(parent):
            rel = path.relative_to(parent)
            first = rel.parts[0]
            if first == ARRAYS_DIR or first in (MARKER, LOCK) or (
                    len(rel.parts) == 1 and first in RUN_FILES and first != "report.html"):
                return parent
            return None
    return None


def refuse_run_file(path: str | os.PathLike, option: str) -> None:
    """A one-line error when ``path`` is a file of a run directory (never written over by any
    command but ``bptt train``)."""
    run = run_file_of(path)
    if run is not None:
        raise RunDirError(f"{option} {path} is a file of the run {run}; bptt never writes over a "
                          f"run's own files: choose another path")


# ---------------------------------------------------------------- the run directory

class RunDir:
    """The directory of one training run: its files, its marker and its lock.

    ``RunDir.create(path, overwrite)`` for a new run, ``RunDir.open(path)`` to resume; both take
    the lock, which ``close()`` (or the end of the process) releases.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------ paths

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples_path(self) -> Path:
        return self.path / "samples.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    # ------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | os.PathLike, overwrite: bool = False) -> RunDir:
        """A directory for a new run: created, or an existing empty one, or (with ``overwrite``)
        an existing run, whose files are removed. Locked; marked as a run."""
        path = _check_out(path)
        if path.exists():                        # a foreign directory is refused untouched
            _check_reusable(path, overwrite, locked=False)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _os_error(path, e, "choose a directory you can write to") from None
        run = cls(path)
        run.lock()
        _check_reusable(path, overwrite, locked=True)   # no one else can start now
        if overwrite:
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
            adir = path / ARRAYS_DIR
            if adir.is_dir():
                for f in adir.iterdir():
                    f.unlink(missing_ok=True)
        clean_temporaries(path)
        if not (path / MARKER).is_file():
            run.write_marker()
        return run

    def write_marker(self) -> None:
        atomic_write_text(self.path / MARKER, json.dumps(
            {"format": MARKER_FORMAT, "version": 1,
             "created": datetime.now().isoformat(timespec="seconds")}) + "\n")

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run, to resume: locked, stale temporaries removed."""
        path = Path(path)
        if not path.is_dir():
            raise RunDirError(f"{path}: no such run directory, so no checkpoint to resume; "
                              f"start a run with bptt train --out {path}")
        if not (path / "last.json").is_file():
            hint = ("; its best.json remains: copy it to last.json to resume from it"
                    if (path / "best.json").is_file() else "")
            raise RunDirError(f"{path} holds no checkpoint to resume (last.json missing){hint}; "
                              f"or start a new run with bptt train --out DIR")
        run = cls(path)
        run.lock()
        clean_temporaries(path)
        clean_temporaries(path / ARRAYS_DIR)
        if not (path / MARKER).is_file():           # a run from before the marker
            run.write_marker()
        return run

    def lock(self) -> None:
        """Take the run's exclusive lock, or refuse in one line naming the process that has it."""
        if self._lock_fd is not None:
            return
        lock_path = self.path / LOCK
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _os_error(self.path, e, "choose a directory you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (pid {int(os.pread(fd, 32, 0).decode().split()[0])})"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(f"{self.path} is in use by another bptt train{holder}; wait "
                                  f"for it to finish, or stop it, then try again") from None
            raise _os_error(self.path, e, "use a local directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the OS also does when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self):
        self.close()

    # ------------------------------------------------------------ metrics and samples

    def read_records(self, name: str, warn: Callable[[str], None] | None = None) -> list[dict]:
        return read_jsonl(self.path / name, on_torn=warn)

    def rewrite_records(self, name: str, records: list[dict]) -> None:
        atomic_write_text(self.path / name, "".join(json.dumps(r) + "\n" for r in records))

    def append_record(self, name: str, record: dict) -> None:
        append_line(self.path / name, json.dumps(record))

    def append_text(self, name: str, text: str) -> None:
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(text)


def _check_out(path) -> Path:
    if path is None or str(path).strip() == "":
        raise RunDirError("--out is empty; give the run directory a name, e.g. --out runs/first")
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RunDirError(f"--out {path} is a broken symbolic link (or a loop of them); give "
                          f"another directory")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a directory; give a directory (new or "
                          f"empty)")
    return path


def _check_reusable(path: Path, overwrite: bool, locked: bool) -> None:
    """Refuse a non-empty directory that is not a run; with the lock held (``locked``), also a
    run that would be overwritten (before it, another process may be writing that run)."""
    try:
        names = {p.name for p in path.iterdir() if not _own_leftover(p.name)}
    except OSError as e:
        raise _os_error(path, e, "choose a directory you can read and write") from None
    if not names:
        return
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not empty and is not a bptt run directory; bptt never "
                          f"writes into it (not even with --overwrite): choose a new or empty "
                          f"--out")
    if overwrite or not locked:
        return
    if (path / "last.json").is_file():
        raise RunDirError(f"{path} already holds a run; continue it with bptt train --resume "
                          f"{path}, or pass --overwrite to start over")
    leftovers = sorted(names & {"metrics.jsonl", "best.json", ARRAYS_DIR})
    if leftovers:
        raise RunDirError(f"{path} holds a run whose last.json is missing ({', '.join(leftovers)} "
                          f"remain); restore last.json to resume, or pass --overwrite to start "
                          f"over")


def _own_leftover(name: str) -> bool:
    """The lock file, or a temporary of one of bptt's own files left by a process that no longer
    exists (a kill while the marker was being written leaves nothing else)."""
    if name == LOCK:
        return True
    m = _TMP.match(name)
    return m is not None and name[1:name.rindex(".tmp-")] in (*RUN_FILES, MARKER) and \
        not _alive(int(m.group(1)))


def _os_error(path: Path, e: OSError, fix: str) -> RunDirError:
    return RunDirError(f"{path}: {e.strerror or e}; {fix}")
