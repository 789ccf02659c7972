"""Run files: the run folder's lock, tidy CSV logs and run.json's provenance (format: results/README.md).

Every file is written whole through ``fileio`` (a temporary sibling renamed over the old one), so a reader (or a
killed run) never sees a half-written file; the atomic writers are re-exported here for the run loop's callers.
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from fileio import (TEMP_SUFFIX, ResultsWriteError, atomic_write, atomic_write_json, atomic_write_text,  # noqa: F401
                    file_sha256, free_space, remove_stale_temp_files)

RUN_FORMAT_VERSION = 2
"""Run-file format of online runs (results/README.md)."""
EVAL_COLUMNS = ("step", "episode_return", "episode_return_std", "episode_return_min", "episode_return_max",
                "success", "episode_length", "episodes")
TRAIN_COLUMNS = ("step", "updates", "episodes", "wall_time_s", "env_steps_per_s", "update_ms", "act_ms")
EPISODE_COLUMNS = ("step", "episode", "episode_return", "success", "episode_length")

OFFLINE_RUN_FORMAT_VERSION = 3
"""Run-file format of offline runs: run.json gains ``step_unit``, ``tasks``, ``dataset``; eval.csv gains ``task``
(results/README.md). Online runs, whose files did not change, still write format 2."""
OFFLINE_STEP_UNIT = "update"
OFFLINE_EVAL_COLUMNS = ("step", "task", *EVAL_COLUMNS[1:])
OFFLINE_TRAIN_COLUMNS = ("step", "updates", "wall_time_s", "updates_per_s", "update_ms", "sample_ms")

LOCK_NAME = ".lock"


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


def _format(value: Any) -> str:
    """A cell as the file holds it, so that rows in memory equal rows read back (the checkpoint compares them)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly: eval.csv is compared bit for bit after a resume
    return str(value)


class CsvLog:
    """A tidy CSV table kept in memory and rewritten atomically on ``flush``.

    Columns are the union of the keys seen, in first-seen order (the first ones fixed by ``columns``).
    ``truncate(n)`` drops rows past ``n``: a resumed run cuts what was logged after its checkpoint.
    An existing file that cannot be read as such a table (not text, a row of the wrong width, the fixed
    columns missing) is not loaded: ``damage`` says what is wrong with it, naming the file, and the owner
    decides (a resume restores it from the checkpoint's copy, ``state()``).
    """

    def __init__(self, path: Path, columns: tuple[str, ...] = ()):
        self.path = path
        self.columns: list[str] = list(columns)
        self.rows: list[dict[str, Any]] = []
        self.damage: str | None = None
        if path.exists():
            self._read(tuple(columns))

    def _read(self, fixed: tuple[str, ...]) -> None:
        try:
            with open(self.path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows = [dict(row) for row in reader]
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            self.damage = f"{self.path} cannot be read as a CSV table ({type(err).__name__}: {err})"
            return
        missing = [name for name in fixed if name not in header]
        if missing and (header or self.path.stat().st_size):
            self.damage = f"{self.path} lacks column(s) {', '.join(missing)} (header {header[:8]})"
            return
        for number, row in enumerate(rows, start=2):
            if None in row or None in row.values():
                self.damage = f"{self.path} line {number} has {'more' if None in row else 'fewer'} fields " \
                              f"than its header"
                return
        for name in header:
            if name not in self.columns:
                self.columns.append(name)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def state(self) -> dict[str, Any]:
        """What the file holds now (columns and rows as written), for a checkpoint to restore it from."""
        return {"columns": list(self.columns), "rows": [dict(row) for row in self.rows]}

    def disagreement(self, state: dict[str, Any]) -> str | None:
        """Why the file's first rows are not the checkpoint's ``state`` (None when they are: later rows may
        follow, logged after the checkpoint)."""
        if self.damage:
            return self.damage
        saved = state["rows"]
        if len(self.rows) < len(saved):
            return f"{self.path} has {len(self.rows)} row(s), the checkpoint recorded {len(saved)}"
        for index, (row, expected) in enumerate(zip(self.rows, saved)):
            if any(row.get(key, "") != value for key, value in expected.items()):
                return f"{self.path} row {index + 1} differs from what the checkpoint recorded"
        return None

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the rows (and columns) by a checkpoint's ``state``."""
        self.columns = list(state["columns"])
        self.rows = [dict(row) for row in state["rows"]]
        self.damage = None

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
