"""Run files: atomic writes, tidy CSV logs and run.json (format documented in results/README.md).

Every file is written whole to a temporary file in the same folder and renamed over the old one, so a
reader (or a killed run) never sees a half-written file.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

RUN_FORMAT_VERSION = 2
_UMASK = os.umask(0)
os.umask(_UMASK)


TEMP_SUFFIX = ".tmp"
"""Temporary siblings of ``atomic_write`` are named ``.<name>.<random>.tmp``."""
LOCK_NAME = ".lock"


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write ``path`` via ``write(file)`` on a temporary sibling, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from collaborators
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(*folders: Path) -> list[Path]:
    """Delete the temporary siblings an interrupted ``atomic_write`` left in ``folders``; returns them.

    Only safe while no other process writes there, i.e. under the run's :class:`RunLock`.
    """
    removed = []
    for folder in folders:
        for path in sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


class RunLocked(RuntimeError):
    """Another process holds the run folder's lock; ``holder`` is what it wrote there (its PID and host)."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


class RunLock:
    """An exclusive ``flock`` on ``<folder>/.lock``, which holds the owner's PID and host while it lives.

    The kernel drops the lock when its process dies, however it dies, so a killed run never leaves a stale
    lock behind; the file itself stays (deleting it would let two processes lock two different files).
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting, or raise :class:`RunLocked` naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip()
            os.close(fd)
            # the holder writes its PID right after locking: an empty file means it is just starting
            raise RunLocked(self.path, holder or "a process that is starting") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent); the file is left for the next run."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _format(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly: eval.csv is compared bit for bit after a resume
    return value


class CsvLog:
    """A tidy CSV table kept in memory and rewritten atomically on ``flush``.

    Columns are the union of the keys seen, in first-seen order (the first ones fixed by ``columns``).
    ``truncate(n)`` drops rows past ``n``: a resumed run cuts what was logged after its checkpoint.
    """

    def __init__(self, path: Path, columns: tuple[str, ...] = ()):
        self.path = path
        self.columns: list[str] = list(columns)
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                for name in reader.fieldnames or []:
                    if name not in self.columns:
                        self.columns.append(name)
                self.rows = [dict(row) for row in reader]

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append({k: _format(v) for k, v in row.items()})

    def truncate(self, n: int) -> None:
        del self.rows[n:]

    def text(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def flush(self) -> None:
        atomic_write_text(self.path, self.text())


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("torch", "numpy", "gymnasium", "mujoco", "dm_control", "metaworld", "myosuite",
                    "mani_skill2"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def host_info() -> dict[str, Any]:
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
