"""``dataset info --verify``: everything training checks about a dataset, without training.

Training (``algorithms/common/configure.py`` and the offline loop) refuses a dataset whose manifest is bad, whose
files differ from the manifest's SHA-256, whose episodes cannot be read or disagree with the manifest's counts,
whose memory-mapped cache is damaged, or whose tasks this harness does not know. :func:`verify_dataset` runs the
same checks and returns one line per check that passed; the first that fails raises ``DatasetError`` naming the
file or task. Which tasks cannot be created on this machine (a suite not installed) is reported, not an error:
another machine may train on them.
"""

from __future__ import annotations

from pathlib import Path

from offline.cache import ARRAYS, CACHE_MANIFEST, DatasetCache, _read_cache_manifest, default_cache_dir
from offline.dataset import MANIFEST, DatasetError, iter_episodes, read_manifest, source_fingerprint
from fileio import file_sha256


def verify_cache(path: str | Path, cache_dir: str | Path | None = None) -> str:
    """Check the dataset's cache as training opens it, and every array's SHA-256 (training checks large caches'
    index arrays only); returns what was found. A missing or out-of-date cache is not an error: training
    (re)builds it."""
    path = Path(path)
    directory = default_cache_dir(path, cache_dir)
    record = _read_cache_manifest(directory)
    if record is None:
        return f"cache: none yet at {directory} (training builds it on first use)"
    if record.get("source_fingerprint") != source_fingerprint(path):
        return f"cache: {directory} is out of date (training rebuilds it)"
    cache = DatasetCache.__new__(DatasetCache)
    cache.path, cache.cache_dir = path, directory
    cache._open(record)  # headers, shapes, sizes, index arrays, as training does
    for name in ARRAYS:
        file = directory / f"{name}.npy"
        if file_sha256(file) != record["arrays"][name]["sha256"]:
            raise DatasetError(f"{file} is corrupt: its SHA-256 differs from {CACHE_MANIFEST}; delete {directory} "
                               "to rebuild the cache")
    return f"cache: {directory}, {len(ARRAYS)} arrays verified"


def verify_dataset(path: str | Path, cache_dir: str | Path | None = None) -> list[str]:
    """Every check training makes, in its order; one line per check passed (DatasetError at the first failure)."""
    from envs import availability
    from envs.registry import get_task

    path = Path(path)
    manifest = read_manifest(path)
    lines = [f"manifest: {path / MANIFEST} (format {manifest['format_version']}, {len(manifest['tasks'])} tasks)"]
    unavailable = []
    for task in manifest["tasks"]:
        try:
            spec = get_task(task, "state")
        except (KeyError, ValueError) as err:
            raise DatasetError(f"task {task!r} of {path / MANIFEST} is not a task of this harness: {err}") from None
        ok, reason = availability(spec)
        if not ok:
            unavailable.append(f"{task} ({reason})")
    lines.append(f"tasks: all {len(manifest['tasks'])} known to the task registry")
    if unavailable:
        lines.append(f"note: {len(unavailable)} task(s) cannot be created on this machine, so training here would "
                     f"refuse the dataset: {', '.join(unavailable)}")
    episodes = sum(1 for _ in iter_episodes(path, manifest=manifest, verify=True))
    lines.append(f"files: {len(manifest['files'])} Minari file(s) match their SHA-256; {episodes} episodes read, "
                 "counts as the manifest records")
    lines.append(verify_cache(path, cache_dir))
    return lines
