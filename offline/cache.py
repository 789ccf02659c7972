"""A memory-mapped cache of an offline dataset, and uniform sampling of sub-trajectories from it.

On first use the dataset's episodes (read through Minari) are laid out in contiguous ``.npy`` arrays, one slot
per observation as in ``algorithms.common.buffer.ReplayBuffer``: an episode of T steps takes T+1 consecutive
slots; slot k holds its k-th observation and, for k < T, the action taken there, its reward and whether it
terminated (the last slot's action/reward are zero)::

    obs.npy         (S, obs_dim) float32     observations, zero-padded to the largest task's size
    action.npy      (S, action_dim) float32  actions, zero-padded to the largest action size
    reward.npy      (S,) float32
    terminated.npy  (S,) bool
    episode_start.npy, episode_length.npy, episode_task.npy   (E,) int64: first slot, T, task id
    cache.json      shapes, dtypes, SHA-256 of each array, and the source's fingerprint

The cache lives in ``PATH/.cache`` (or ``cache_dir/<name>-<hash of PATH>``). It is written into a temporary
folder and renamed into place, ``cache.json`` last; a cache whose recorded fingerprint differs from the dataset
on disk (rewritten, re-imported) is rebuilt. Arrays are opened with ``np.load(mmap_mode="r")``, so a cache far
larger than memory samples at the speed of the page cache. A damaged cache raises ``DatasetError`` naming the
file: array headers, shapes and sizes are checked on every open, the episode index arrays' SHA-256 too, and
every array's SHA-256 when the cache is under ``FULL_CHECK_BYTES``.

Sampling is uniform over valid starts: a start slot of an episode of T steps is valid for horizon H when it
is one of the episode's first T-H+1 slots, so a sub-trajectory never crosses an episode boundary. The draws
come from one ``np.random.Generator`` seeded by ``seed``; ``state_dict()``/``load_state_dict()`` carry its
state, so a resumed run samples the same batches bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fileio import file_sha256

from offline.batch import Batch
from offline.dataset import MANIFEST, DatasetError, iter_episodes, read_manifest, source_fingerprint

CACHE_FORMAT_VERSION = 1
CACHE_MANIFEST = "cache.json"
FULL_CHECK_BYTES = 256 << 20  # caches below this size get every array's SHA-256 checked on open
ARRAYS = ("obs", "action", "reward", "terminated", "episode_start", "episode_length", "episode_task")
INDEX_ARRAYS = ("episode_start", "episode_length", "episode_task")



def default_cache_dir(path: Path, cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        return path / ".cache"
    tag = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{path.resolve().name}-{tag}"


def build_cache(path: str | Path, directory: Path, manifest: dict[str, Any], fingerprint: str) -> None:
    """Read every episode (SHA-256 of the Minari files checked first) into the cache arrays at ``directory``."""
    path = Path(path)
    obs_dim, action_dim = max(manifest["obs_dims"]), max(manifest["action_dims"])
    num_episodes, num_transitions = sum(manifest["episodes"]), sum(manifest["transitions"])
    slots = num_transitions + num_episodes
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        shapes = {"obs": ((slots, obs_dim), np.float32), "action": ((slots, action_dim), np.float32),
                  "reward": ((slots,), np.float32), "terminated": ((slots,), np.bool_),
                  "episode_start": ((num_episodes,), np.int64), "episode_length": ((num_episodes,), np.int64),
                  "episode_task": ((num_episodes,), np.int64)}
        arrays = {name: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
                  for name, (shape, dtype) in shapes.items()}
        slot, episode_index = 0, 0
        for task_id, episode in iter_episodes(path, manifest=manifest, verify=True):
            if episode_index >= num_episodes or slot + len(episode) + 1 > slots:
                raise DatasetError(f"{path / MANIFEST}: the Minari files hold more data than the manifest records")
            steps, d, a = len(episode), episode.obs.shape[1], episode.action.shape[1]
            arrays["obs"][slot:slot + steps + 1, :d] = episode.obs
            arrays["action"][slot:slot + steps, :a] = episode.action
            arrays["reward"][slot:slot + steps] = episode.reward
            arrays["terminated"][slot:slot + steps] = episode.terminated
            arrays["episode_start"][episode_index] = slot
            arrays["episode_length"][episode_index] = steps
            arrays["episode_task"][episode_index] = task_id
            slot += steps + 1
            episode_index += 1
        for array in arrays.values():
            array.flush()
        del arrays
        record = {"cache_format_version": CACHE_FORMAT_VERSION, "source": str(path.resolve()),
                  "source_fingerprint": fingerprint, "tasks": manifest["tasks"], "obs_dims": manifest["obs_dims"],
                  "action_dims": manifest["action_dims"], "obs_dim": obs_dim, "action_dim": action_dim,
                  "num_transitions": num_transitions, "num_episodes": num_episodes, "num_slots": slots,
                  "arrays": {name: {"shape": list(shapes[name][0]), "dtype": np.dtype(shapes[name][1]).str,
                                    "bytes": (tmp / f"{name}.npy").stat().st_size,
                                    "sha256": file_sha256(tmp / f"{name}.npy")} for name in ARRAYS}}
        (tmp / CACHE_MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        try:
            os.replace(tmp, directory)
        except OSError:  # another process published the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_cache_manifest(directory: Path) -> dict[str, Any] | None:
    file = directory / CACHE_MANIFEST
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{file} is corrupt or truncated ({err}); delete {directory} to rebuild the cache") \
            from None
    if not isinstance(record, dict) or record.get("cache_format_version") != CACHE_FORMAT_VERSION:
        return None  # another cache format: rebuilt
    return record


class DatasetCache:
    """Uniform sub-trajectory sampling from an offline dataset through its memory-mapped cache."""

    tasks: list[str]
    obs_dims: list[int]
    action_dims: list[int]
    obs_dim: int
    action_dim: int
    num_transitions: int
    num_episodes: int

    def __init__(self, path: str | Path, seed: int = 0, cache_dir: str | Path | None = None):
        self.path = Path(path)
        manifest = read_manifest(self.path)
        fingerprint = source_fingerprint(self.path)
        self.cache_dir = default_cache_dir(self.path, cache_dir)
        record = _read_cache_manifest(self.cache_dir)
        if record is None or record.get("source_fingerprint") != fingerprint:
            build_cache(self.path, self.cache_dir, manifest, fingerprint)
            record = _read_cache_manifest(self.cache_dir)
            if record is None:
                raise DatasetError(f"{self.cache_dir / CACHE_MANIFEST} was not written (cache build failed)")
        self._open(record)
        self.rng = np.random.default_rng(seed)
        self._valid_cumsum: dict[int, np.ndarray] = {}

    def _open(self, record: dict[str, Any]) -> None:
        directory = self.cache_dir
        try:
            self.tasks = list(record["tasks"])
            self.obs_dims = [int(d) for d in record["obs_dims"]]
            self.action_dims = [int(d) for d in record["action_dims"]]
            self.obs_dim, self.action_dim = int(record["obs_dim"]), int(record["action_dim"])
            self.num_transitions, self.num_episodes = int(record["num_transitions"]), int(record["num_episodes"])
            specs = record["arrays"]
            total = sum(int(specs[name]["bytes"]) for name in ARRAYS)
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{directory / CACHE_MANIFEST} is incomplete ({err!r}); delete {directory} to "
                               "rebuild the cache") from None
        arrays = {}
        for name in ARRAYS:
            file = directory / f"{name}.npy"
            spec = specs[name]
            if not file.is_file():
                raise DatasetError(f"{file} is missing; delete {directory} to rebuild the cache")
            size = file.stat().st_size
            if size != spec["bytes"]:
                raise DatasetError(f"{file} is truncated or altered: {size} bytes, {CACHE_MANIFEST} records "
                                   f"{spec['bytes']}; delete {directory} to rebuild the cache")
            if (name in INDEX_ARRAYS or total <= FULL_CHECK_BYTES) and file_sha256(file) != spec["sha256"]:
                raise DatasetError(f"{file} is corrupt: its SHA-256 differs from {CACHE_MANIFEST}; delete "
                                   f"{directory} to rebuild the cache")
            try:
                array = np.load(file, mmap_mode="r", allow_pickle=False)
            except Exception as err:  # bad header, short file: numpy's many ValueErrors
                raise DatasetError(f"{file} cannot be read as a .npy array ({err}); delete {directory} to "
                                   "rebuild the cache") from None
            if list(array.shape) != list(spec["shape"]) or array.dtype.str != spec["dtype"]:
                raise DatasetError(f"{file} has shape {array.shape} {array.dtype.str}, {CACHE_MANIFEST} records "
                                   f"{spec['shape']} {spec['dtype']}; delete {directory} to rebuild the cache")
            arrays[name] = array
        self.obs, self.action = arrays["obs"], arrays["action"]
        self.mapped_bytes = int(sum(a.nbytes for a in arrays.values()))
        """Bytes of the memory-mapped arrays (read through the page cache, not loaded)."""
        self.reward, self.terminated = arrays["reward"], arrays["terminated"]
        self.episode_start = np.array(arrays["episode_start"])
        self.episode_length = np.array(arrays["episode_length"])
        self.episode_task = np.array(arrays["episode_task"])
        slots = len(self.obs)
        if (len(self.episode_start) != self.num_episodes or int(self.episode_length.sum()) != self.num_transitions
                or (self.episode_length < 0).any() or (self.episode_start + self.episode_length >= slots).any()
                or ((self.episode_task < 0) | (self.episode_task >= len(self.tasks))).any()):
            raise DatasetError(f"{directory}: the episode index arrays are inconsistent; delete {directory} to "
                               "rebuild the cache")

    def _cumsum(self, horizon: int) -> np.ndarray:
        cumsum = self._valid_cumsum.get(horizon)
        if cumsum is None:
            cumsum = np.cumsum(np.maximum(self.episode_length - horizon + 1, 0))
            self._valid_cumsum[horizon] = cumsum
        return cumsum

    def can_sample(self, horizon: int) -> bool:
        """Whether some episode has at least ``horizon`` steps."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        cumsum = self._cumsum(horizon)
        return bool(len(cumsum) and cumsum[-1] > 0)

    def sample(self, batch_size: int, horizon: int = 1) -> Batch:
        """``batch_size`` sub-trajectories of ``horizon`` steps, uniform over all valid start slots.

        obs (B, H+1, obs_dim) float32, action (B, H, action_dim) float32, reward (B, H) float32,
        terminated (B, H) bool, task (B,) int64; sizes beyond a task's own are zero."""
        if not self.can_sample(horizon):
            raise DatasetError(f"{self.path}: no episode has {horizon} steps, cannot sample sub-trajectories "
                               f"of horizon {horizon}")
        cumsum = self._cumsum(horizon)
        draws = self.rng.integers(0, cumsum[-1], size=batch_size)
        episodes = np.searchsorted(cumsum, draws, side="right")
        offsets = draws - (cumsum[episodes] - np.maximum(self.episode_length[episodes] - horizon + 1, 0))
        starts = self.episode_start[episodes] + offsets
        slots = starts[:, None] + np.arange(horizon + 1)
        acted = slots[:, :horizon]
        return Batch(obs=np.asarray(self.obs[slots]), action=np.asarray(self.action[acted]),
                     reward=np.asarray(self.reward[acted]), terminated=np.asarray(self.terminated[acted]),
                     task=self.episode_task[episodes].astype(np.int64))

    def state_dict(self) -> dict:
        """The sampling RNG's state: load it into a cache of the same dataset to continue bit for bit."""
        return {"rng": self.rng.bit_generator.state, "num_transitions": self.num_transitions,
                "num_episodes": self.num_episodes}

    def load_state_dict(self, state: dict) -> None:
        if (state.get("num_transitions", self.num_transitions), state.get("num_episodes", self.num_episodes)) != \
                (self.num_transitions, self.num_episodes):
            raise DatasetError(f"sampler state of a dataset with {state['num_episodes']} episodes / "
                               f"{state['num_transitions']} transitions; {self.path} has {self.num_episodes} / "
                               f"{self.num_transitions}")
        self.rng.bit_generator.state = state["rng"]

    def task_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(tasks, obs_dim) and (tasks, action_dim) bool masks of each task's real (unpadded) entries."""
        obs = np.arange(self.obs_dim)[None, :] < np.asarray(self.obs_dims)[:, None]
        action = np.arange(self.action_dim)[None, :] < np.asarray(self.action_dims)[:, None]
        return obs, action


def open_dataset(path: str | Path, seed: int = 0, cache_dir: str | Path | None = None) -> DatasetCache:
    """Open (building or rebuilding its cache if needed) an offline dataset for sampling."""
    return DatasetCache(path, seed=seed, cache_dir=cache_dir)
