"""Files written whole or not at all, and the storage errors behind a failed write: the one io helper every room
shares (run files, offline datasets, analysis outputs).

Every file is written to a temporary sibling in the same folder, fsynced and renamed over the old one, so a reader
(or a killed process) never sees a half-written file; a storage failure (disk full, quota, read-only, I/O error) is
one :class:`ResultsWriteError` naming the file and the free space left there. This package imports nothing from
the rest of the project, so that every room can import it downward.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


TEMP_SUFFIX = ".tmp"
"""Temporary siblings of ``atomic_write`` are named ``.<name>.<random>.tmp``."""


class ResultsWriteError(OSError):
    """A run file could not be written (disk full, quota, read-only, I/O error); the message names the file,
    the system's reason and the free space left there. The file's previous version, if any, is intact."""


# Errors of the file system under the results folder, as opposed to a bug of the caller.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM, errno.EFBIG}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def free_space(path: Path) -> str:
    """The free space of the file system holding ``path`` (its nearest existing ancestor), human-readable."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return human_bytes(shutil.disk_usage(folder).free)
            except OSError:
                break
    return "unknown"


def _write_error(path: Path, err: OSError) -> ResultsWriteError:
    return ResultsWriteError(err.errno, f"cannot write {path}: {err.strerror or err} ({free_space(path.parent)} "
                                        f"free there); free some space or choose another --results-dir")


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 4 MiB blocks (checkpoints and datasets can be many GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write ``path`` via ``write(file)`` on a temporary sibling, fsync, then rename over ``path``.

    A storage failure (disk full, quota, read-only, I/O) raises :class:`ResultsWriteError` naming ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as err:
        if err.errno in _STORAGE_ERRNOS:
            raise _write_error(path, err) from None
        raise
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from collaborators
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, ResultsWriteError) and err.errno in _STORAGE_ERRNOS:
            raise _write_error(path, err) from None
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


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
