"""Offline multi-task data: the dataset format (Minari per task + a manifest), its memory-mapped cache,
collection from runs, TD-MPC2's mt30/mt80 importer and the named task sets. See offline/dataset.py."""

from offline.dataset import DatasetError, FORMAT_VERSION

__all__ = ["DatasetError", "FORMAT_VERSION", "open_dataset"]


def open_dataset(path, seed: int = 0, cache_dir=None):
    """The memory-mapped sampler of an offline dataset (offline.cache.DatasetCache)."""
    from offline.cache import open_dataset as _open

    return _open(path, seed=seed, cache_dir=cache_dir)
