"""Multi-task offline RL datasets: one Minari dataset per task, tied together by a harness manifest.

On disk a dataset is a folder::

    PATH/
      manifest.json                      the harness manifest (below); written last, so its presence = complete
      minari/<task>-v0/data/             one Minari 0.5 dataset per task that has data (hdf5 storage):
        metadata.json, main_data.hdf5      Minari's own files; MINARI_DATASETS_PATH=PATH/minari reads them
      .cache/                            the memory-mapped cache (offline/cache.py), built on first use

``writer.py`` writes this layout, ``cache.py`` reads it for training; this module owns the format and reading.

Why one Minari dataset per task: tasks differ in observation and action size and a Minari dataset has one
observation and one action space, so each task keeps its own (unpadded) Box spaces and any Minari tool reads
it as it is (``minari.load_dataset("cheetah-run-v0")`` with ``MINARI_DATASETS_PATH=PATH/minari``). Padding to
the largest task's sizes happens only in the cache.

Each Minari episode holds ``observations`` (T+1, obs_dim) float32 (first to last observation), ``actions``
(T, action_dim) float32 in [-1, 1], ``rewards`` (T,), ``terminations`` (T,), ``truncations`` (T,), and
``infos["task_id"]`` (T+1,) int64, the task's index in the manifest's task list (so an episode read on its own
still names its task). State observations only: pixel tasks are refused (their frames would need another
storage layout).

``manifest.json`` (``format_version`` 1)::

    format: "mbdpo-offline-dataset", format_version: 1, harness_version: "0.1.0", minari_version,
    created (UTC ISO time), source ("runs", "tdmpc2:mt30", ...),
    tasks: [names, paper naming as envs.registry; index = task id],
    obs_dims, action_dims: [per task],
    episodes, transitions: [per task], returns: [per task: {mean, min, max} or null],
    minari_ids: [per task: "cartpole-balance-v0", or null for a task without data],
    files: {relative path: {bytes, sha256}} of every Minari file,
    runs: [{run_dir, task, algo, seed, checkpoint, env_step, source, noise_std, episodes, config}, ...]

A task of the list may have no data (an imported mt80 subset keeps TD-MPC2's task ids). Every problem with
the files (missing, truncated, corrupt, a digest that differs from the manifest, counts that differ) raises
``DatasetError`` whose message names the file and what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from fileio import file_sha256

FORMAT = "mbdpo-offline-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MINARI_DIR = "minari"
MINARI_VERSION_SUFFIX = "-v0"


class DatasetError(RuntimeError):
    """An offline dataset or its cache that cannot be used; the message names the file and what is wrong."""


def harness_version() -> str:
    try:
        from importlib.metadata import version

        return version("mbdpo-bench")
    except Exception:  # not installed (run from a checkout)
        return "0.1.0"


@dataclass
class Episode:
    """One episode: T transitions, T+1 observations (the first and every next observation)."""

    obs: np.ndarray  # (T+1, obs_dim) float32
    action: np.ndarray  # (T, action_dim) float32
    reward: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray = field(default=None)  # (T,) bool; default: the last step when not terminated

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.action = np.asarray(self.action, dtype=np.float32)
        self.reward = np.asarray(self.reward, dtype=np.float32).reshape(-1)
        self.terminated = np.asarray(self.terminated, dtype=bool).reshape(-1)
        steps = len(self.reward)
        if self.truncated is None:
            self.truncated = np.zeros(steps, dtype=bool)
            if steps and not self.terminated[-1]:
                self.truncated[-1] = True
        self.truncated = np.asarray(self.truncated, dtype=bool).reshape(-1)
        if self.obs.ndim != 2:
            raise DatasetError(f"episode observations must be vectors (T+1, obs_dim), got shape {self.obs.shape}: "
                               "offline datasets hold state observations only")
        if self.action.ndim != 2 or len(self.action) != steps or len(self.obs) != steps + 1 \
                or len(self.terminated) != steps or len(self.truncated) != steps:
            raise DatasetError(f"inconsistent episode: obs {self.obs.shape}, action {self.action.shape}, "
                               f"reward {self.reward.shape}, terminated {self.terminated.shape}")

    def __len__(self) -> int:
        return len(self.reward)

    @property
    def episode_return(self) -> float:
        return float(self.reward.astype(np.float64).sum())


def minari_id(task: str) -> str:
    return f"{task}{MINARI_VERSION_SUFFIX}"


@contextlib.contextmanager
def minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` (MINARI_DATASETS_PATH) for the duration, so nothing goes to ~/.minari."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    # absolute: Minari joins a relative root onto paths it already derived from it (``data/.x/minari/.../data/.x``)
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).absolute())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old



# --- reading ---------------------------------------------------------------------------------------------

def manifest_digest(path: str | Path) -> str:
    """SHA-256 of the dataset's manifest, which records every file's SHA-256: the data a run trained on."""
    return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The dataset's manifest, checked for format, version and consistency (DatasetError otherwise)."""
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise DatasetError(f"{path} is not an offline dataset folder (it does not exist or is not a folder)")
    if not file.is_file():
        raise DatasetError(f"{file} is missing: {path} is not a complete offline dataset")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{file} is corrupt or truncated (not valid JSON: {err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{file} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{file} has format_version {manifest.get('format_version')!r}; this harness reads "
                           f"{FORMAT_VERSION}")
    keys = ("tasks", "obs_dims", "action_dims", "episodes", "transitions", "minari_ids", "files")
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise DatasetError(f"{file} lacks {', '.join(missing)}")
    n = len(manifest["tasks"])
    if any(len(manifest[k]) != n for k in keys[1:6]):
        raise DatasetError(f"{file}: per-task lists do not all have {n} entries")
    return manifest


def verify_files(path: str | Path, manifest: dict[str, Any] | None = None) -> None:
    """Check every Minari file against the manifest's size and SHA-256 (DatasetError naming the file)."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    for rel, expected in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise DatasetError(f"{file} is missing (listed in {path / MANIFEST})")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise DatasetError(f"{file} is truncated or altered: {size} bytes, the manifest records "
                               f"{expected['bytes']}")
        if file_sha256(file) != expected["sha256"]:
            raise DatasetError(f"{file} is corrupt: its SHA-256 differs from the one in {path / MANIFEST}")


def source_fingerprint(path: str | Path, manifest_bytes: bytes | None = None) -> str:
    """A cheap digest of the dataset as it is on disk: the manifest's bytes (which hold every file's SHA-256)
    and each listed file's size and modification time. Any rewrite of the dataset changes it."""
    path = Path(path)
    digest = hashlib.sha256(manifest_bytes if manifest_bytes is not None else (path / MANIFEST).read_bytes())
    manifest = json.loads((path / MANIFEST).read_text()) if manifest_bytes is None else json.loads(manifest_bytes)
    for rel in sorted(manifest.get("files", {})):
        try:
            stat = (path / rel).stat()
            digest.update(f"{rel}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{rel}:missing\n".encode())
    return digest.hexdigest()


def _load_minari(path: Path, manifest: dict[str, Any], task_id: int):
    import minari

    dataset_id = manifest["minari_ids"][task_id]
    data = path / MINARI_DIR / dataset_id / "data"
    if not data.is_dir():
        raise DatasetError(f"{data} is missing: the Minari dataset of task {manifest['tasks'][task_id]}")
    try:
        with minari_root(path / MINARI_DIR):
            return minari.load_dataset(dataset_id)
    except Exception as err:  # h5py/JSON/Minari errors all mean: this file cannot be read
        raise DatasetError(f"{data} cannot be read as a Minari dataset (corrupt or truncated: "
                           f"{type(err).__name__}: {err})") from None


def iter_episodes(path: str | Path, tasks: Iterable[int] | None = None, *, verify: bool = True,
                  manifest: dict[str, Any] | None = None) -> Iterator[tuple[int, Episode]]:
    """Yield (task id, Episode) for every episode, task by task, read through Minari's own API.

    ``verify`` first checks every file against the manifest's SHA-256. Counts are checked against the manifest.
    """
    path = Path(path)
    manifest = manifest or read_manifest(path)
    if verify:
        verify_files(path, manifest)
    task_ids = range(len(manifest["tasks"])) if tasks is None else tasks
    for task_id in task_ids:
        if manifest["minari_ids"][task_id] is None:
            if manifest["episodes"][task_id]:
                raise DatasetError(f"{path / MANIFEST}: task {manifest['tasks'][task_id]} has episodes but no "
                                   "Minari dataset")
            continue
        dataset = _load_minari(path, manifest, task_id)
        data_file = path / MINARI_DIR / manifest["minari_ids"][task_id] / "data" / "main_data.hdf5"
        count, steps = 0, 0
        try:
            iterator = dataset.iterate_episodes()
            for item in iterator:
                episode = Episode(item.observations, item.actions, item.rewards, item.terminations,
                                  item.truncations)
                if episode.obs.shape[1] != manifest["obs_dims"][task_id] or \
                        episode.action.shape[1] != manifest["action_dims"][task_id]:
                    raise DatasetError(f"{data_file}: episode {item.id} has obs/action sizes "
                                       f"{episode.obs.shape[1]}/{episode.action.shape[1]}, the manifest records "
                                       f"{manifest['obs_dims'][task_id]}/{manifest['action_dims'][task_id]}")
                count += 1
                steps += len(episode)
                yield task_id, episode
        except DatasetError:
            raise
        except Exception as err:
            raise DatasetError(f"{data_file} is corrupt or truncated ({type(err).__name__}: {err})") from None
        if count != manifest["episodes"][task_id] or steps != manifest["transitions"][task_id]:
            raise DatasetError(f"{data_file} holds {count} episodes / {steps} transitions, the manifest records "
                               f"{manifest['episodes'][task_id]} / {manifest['transitions'][task_id]}")


def read_dataset(path: str | Path, *, verify: bool = True) -> tuple[dict[str, Any], dict[str, list[Episode]]]:
    """The manifest and every episode in memory (task name -> episodes); for small datasets and tests."""
    manifest = read_manifest(path)
    episodes: dict[str, list[Episode]] = {t: [] for t in manifest["tasks"]}
    for task_id, episode in iter_episodes(path, verify=verify, manifest=manifest):
        episodes[manifest["tasks"][task_id]].append(episode)
    return manifest, episodes


def dataset_info(path: str | Path) -> dict[str, Any]:
    """Per task: episodes, transitions, obs/action sizes and mean/min/max episode return, as the manifest records
    them (nothing else is read: ``offline/verify.py`` checks the files)."""
    path = Path(path)
    manifest = read_manifest(path)
    rows = []
    for i, task in enumerate(manifest["tasks"]):
        returns = manifest.get("returns", [None] * len(manifest["tasks"]))[i] or {}
        rows.append({"task_id": i, "task": task, "episodes": manifest["episodes"][i],
                     "transitions": manifest["transitions"][i], "obs_dim": manifest["obs_dims"][i],
                     "action_dim": manifest["action_dims"][i], "return_mean": returns.get("mean"),
                     "return_min": returns.get("min"), "return_max": returns.get("max")})
    return {"path": str(path), "format_version": manifest["format_version"],
            "harness_version": manifest.get("harness_version"), "source": manifest.get("source"),
            "created": manifest.get("created"), "episodes": sum(manifest["episodes"]),
            "transitions": sum(manifest["transitions"]), "runs": len(manifest.get("runs", [])), "tasks": rows}
