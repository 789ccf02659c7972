"""Writing an offline dataset (the layout of ``dataset.py``): episode by episode into a temporary folder beside the
target, published by one rename once the manifest is written, so that a crash never leaves a half-written dataset.

Every writer of datasets (``collect``, ``dataset import-tdmpc2``, random datasets) goes through
:class:`DatasetWriter`, which

* resolves the target path once (a relative ``--out`` is taken from the working directory of the command, never
  from Minari's own root),
* checks the free space before each batch of episodes reaches h5py, and turns a storage error while writing
  (disk full, quota, read-only) into one :class:`DatasetError` naming the file and the free space, after
  removing its temporary folder,
* records its process in the temporary folder, so that a temporary folder left by a crashed writer is removed
  (and one a live writer is using is named) when the next writer of that path starts,
* gives every Minari dataset an environment spec whose entry point is this package's ``envs:make_env``, so that
  ``minari.load_dataset(...).recover_environment()`` works wherever mbdpo-bench is installed.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from fileio import file_sha256, free_space
from offline.dataset import (FORMAT, FORMAT_VERSION, MANIFEST, MINARI_DIR, DatasetError, Episode, harness_version,
                             minari_id, minari_root, read_manifest)

OWNER_FILE = ".writer"
"""In a temporary dataset folder: ``PID host`` of the process writing it."""
HEADROOM = 1.25
"""Free space asked for before a batch of episodes is written, as a multiple of its arrays' bytes (hdf5 overhead)."""
EPISODE_OVERHEAD = 32 << 10
"""HDF5 bytes per Minari episode beyond its arrays (groups, chunk headers): about 21 KiB measured for cartpole."""
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}
ENV_ENTRY_POINT = "envs:make_env"
"""What ``recover_environment()`` calls (``gym.make`` of the stored spec): the task registry of this package."""


def env_spec_json(task: str) -> str:
    """The gymnasium environment spec stored in a task's Minari metadata: ``envs:make_env(task=..., obs="state")``.
    Nothing is created here (a task imported with ``--dims`` need not be available on the writing machine)."""
    import gymnasium as gym

    spec = gym.envs.registration.EnvSpec(id=f"mbdpo_bench/{task}-v0", entry_point=ENV_ENTRY_POINT,
                                         kwargs={"task": task, "obs": "state"}, disable_env_checker=True)
    return spec.to_json()


def _owner_alive(owner: str) -> bool | None:
    """Whether the process named by an owner file (``PID host``) still runs; None if it runs on another host."""
    try:
        pid, host = owner.split()[:2]
        pid_number = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp_folders(path: Path) -> None:
    """Remove the temporary folders that crashed writers of ``path`` left beside it (saying so on stderr); a
    DatasetError names one whose writer still runs (or runs on another host), which is never touched."""
    for folder in sorted(path.parent.glob(f".{path.name}.tmp-*")):
        if not folder.is_dir():
            continue
        try:
            owner = (folder / OWNER_FILE).read_text().strip()
        except OSError:
            owner = ""
        alive = _owner_alive(owner) if owner else False
        if alive is False:
            shutil.rmtree(folder, ignore_errors=True)
            print(f"warning: removed {folder}, the temporary folder of an earlier writer of {path} that did not "
                  "finish (crashed, killed or out of space)", file=sys.stderr)
        else:
            raise DatasetError(f"{folder} is being written by {owner} (another `collect` or `dataset import` of "
                               f"{path}); wait for it to end, or delete that folder if no such process runs")


def _storage_error(file: Path, err: OSError) -> DatasetError:
    return DatasetError(f"cannot write {file}: {err.strerror or err} ({free_space(file.parent)} free there); "
                        "nothing was kept: free some space or choose another --out")


def _summary(returns: list[float]) -> dict[str, float] | None:
    if not returns:
        return None
    values = np.asarray(returns, dtype=np.float64)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


class DatasetWriter:
    """Write a multi-task dataset episode by episode (streaming), then publish it atomically on ``close()``.

    Everything is written into a temporary folder next to ``path`` and renamed into place once the manifest
    is written, so a crash never leaves a half-written dataset at ``path``.
    """

    def __init__(self, path: str | Path, tasks: list[str], obs_dims: list[int], action_dims: list[int], *,
                 source: str = "runs", runs: list[dict[str, Any]] | None = None, overwrite: bool = False):
        import minari  # noqa: F401  (fail early if the dependency is missing)

        self.path = Path(path).absolute()  # once, where the command reads its argument (Minari changes roots)
        if len(set(tasks)) != len(tasks):
            raise DatasetError(f"task list has duplicates: {tasks}")
        if not (len(tasks) == len(obs_dims) == len(action_dims)):
            raise DatasetError("tasks, obs_dims and action_dims must have one entry per task")
        if self.path.exists() and not overwrite:
            raise DatasetError(f"{self.path} exists already (choose another --out, or overwrite it)")
        self.overwrite = overwrite
        self.tasks, self.obs_dims, self.action_dims = list(tasks), [int(d) for d in obs_dims], \
            [int(d) for d in action_dims]
        self.source, self.runs = source, list(runs or [])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temp_folders(self.path)
            # on the target's file system, so that publishing is one rename
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
            (self._tmp / OWNER_FILE).write_text(f"{os.getpid()} {socket.gethostname()}\n")
        except OSError as err:
            if err.errno in STORAGE_ERRNOS or isinstance(err, PermissionError):
                raise _storage_error(Path(err.filename or self.path.parent), err) from None
            raise
        self._written: set[int] = set()  # task ids whose Minari dataset exists in the temporary folder
        self._returns: list[list[float]] = [[] for _ in tasks]
        self._transitions = [0] * len(tasks)
        self._closed = False

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def add(self, task: str | int, episodes: Iterable[Episode]) -> None:
        """Append episodes of one task (state observations of the task's sizes)."""
        from minari.data_collector import EpisodeBuffer

        task_id = task if isinstance(task, int) else self.tasks.index(task) if task in self.tasks else -1
        if not 0 <= task_id < len(self.tasks):
            raise DatasetError(f"task {task!r} is not in the dataset's task list {self.tasks}")
        name = self.tasks[task_id]
        buffers = []
        for episode in episodes:
            if episode.obs.shape[1] != self.obs_dims[task_id] or episode.action.shape[1] != self.action_dims[task_id]:
                raise DatasetError(f"task {name}: episode of obs size {episode.obs.shape[1]} and action size "
                                   f"{episode.action.shape[1]}, the dataset records {self.obs_dims[task_id]} and "
                                   f"{self.action_dims[task_id]}")
            if len(episode) == 0:
                continue
            buffers.append(EpisodeBuffer(
                observations=episode.obs, actions=episode.action, rewards=episode.reward,
                terminations=episode.terminated, truncations=episode.truncated,
                infos={"task_id": np.full(len(episode) + 1, task_id, dtype=np.int64)}))
            self._returns[task_id].append(episode.episode_return)
            self._transitions[task_id] += len(episode)
        if not buffers:
            return
        self._check_free_space(buffers, name)
        self._write_isolated(task_id, name, buffers)
        self._written.add(task_id)

    def _write_isolated(self, task_id: int, name: str, buffers: list) -> None:
        """:meth:`_write` in a forked child: a full disk makes h5py raise inside its deallocators and then crash
        the interpreter (measured on a 300 KiB tmpfs: 22 tracebacks, then a segmentation fault). The child may
        crash; this process reports one DatasetError naming the file and the free space, and removes the
        temporary folder. Where ``fork`` does not exist the write runs here."""
        file = self._tmp / MINARI_DIR / minari_id(name) / "data" / "main_data.hdf5"
        if not hasattr(os, "fork"):
            try:
                self._write(task_id, name, buffers)
            except OSError as err:
                self.abort()
                if err.errno in STORAGE_ERRNOS or "No space left" in str(err):
                    raise _storage_error(file, err) from None
                raise
            return
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: write, report what went wrong through the pipe, never return
            code = 0
            try:
                os.close(read_end)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)  # h5py's tracebacks from its deallocators: the parent says what happened
                self._write(task_id, name, buffers)
            except BaseException as err:  # noqa: BLE001  (reported through the pipe, the parent raises)
                number = err.errno if isinstance(err, OSError) and err.errno else 0
                os.write(write_end, f"{number}\n{type(err).__name__}: {err}".encode(errors="replace")[:8000])
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and not report:
            return
        number_text, _, message = report.partition("\n")
        number = int(number_text) if number_text.isdigit() else 0
        free = free_space(self.path.parent)
        self.abort()
        if number in STORAGE_ERRNOS or "No space left" in message or "errno = 28" in message:
            raise _storage_error(file, OSError(errno.ENOSPC if not number else number,
                                               os.strerror(number or errno.ENOSPC))) from None
        if os.WIFSIGNALED(status):
            raise DatasetError(f"writing {file} crashed the HDF5 library (signal {os.WTERMSIG(status)}; {free} free "
                               "there, a full disk is the usual cause); nothing was kept: free some space or choose "
                               "another --out") from None
        raise DatasetError(f"cannot write {file}: {message or 'the writer process failed'}; nothing was kept") \
            from None

    def _check_free_space(self, buffers: list, task: str) -> None:
        """DatasetError before h5py starts a write the disk cannot hold (h5py handles a full disk badly)."""
        needed = HEADROOM * sum(sum(np.asarray(v).nbytes for v in (b.observations, b.actions, b.rewards,
                                                                    b.terminations, b.truncations))
                                for b in buffers) + EPISODE_OVERHEAD * len(buffers)
        free = shutil.disk_usage(self._tmp).free
        if free < needed:
            self.abort()
            raise DatasetError(f"not enough space to write task {task}'s episodes under {self.path.parent}: about "
                               f"{needed / 2**20:.1f} MiB needed, {free / 2**20:.1f} MiB free; nothing was kept: free "
                               "some space or choose another --out")

    def _write(self, task_id: int, name: str, buffers: list) -> None:
        import gymnasium as gym
        import minari

        with minari_root(self._tmp / MINARI_DIR), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari's advice on author/e-mail/env spec fields
            if task_id in self._written:  # an earlier add() (another process) created it
                minari.load_dataset(minari_id(name)).update_dataset_from_buffer(buffers)
            else:
                obs_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dims[task_id],), np.float32)
                action_space = gym.spaces.Box(-1.0, 1.0, (self.action_dims[task_id],), np.float32)
                dataset = minari.create_dataset_from_buffers(
                    minari_id(name), buffers, observation_space=obs_space, action_space=action_space,
                    algorithm_name=self.source, description=f"mbdpo-bench offline data, task {name} "
                    f"(id {task_id} of {len(self.tasks)}), format_version {FORMAT_VERSION}",
                    data_format="hdf5", jpeg_encoding=False)
                dataset.storage.update_metadata({
                    # another lab's `recover_environment()`: this package's task registry, at this version
                    "env_spec": env_spec_json(name), "requirements": [f"mbdpo-bench=={harness_version()}"],
                    "mbdpo_format": FORMAT, "mbdpo_format_version": FORMAT_VERSION,
                    "mbdpo_harness_version": harness_version(), "mbdpo_task": name, "mbdpo_task_id": task_id,
                    "mbdpo_tasks": self.tasks})

    def set_task_dims(self, task: str | int, obs_dim: int, action_dim: int) -> None:
        """Record a task's sizes once they are known (an importer learns them from the first episode of a task);
        only while the task has no episode yet, since its Minari spaces are fixed by the first ones."""
        task_id = task if isinstance(task, int) else self.tasks.index(task)
        if task_id in self._written:
            raise DatasetError(f"task {self.tasks[task_id]} has episodes already; its sizes are fixed")
        self.obs_dims[task_id], self.action_dims[task_id] = int(obs_dim), int(action_dim)

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def close(self) -> dict[str, Any]:
        """Write the manifest and move the dataset into place; returns the manifest."""
        import minari

        if self._closed:
            raise DatasetError("dataset writer already closed")
        self._closed = True
        try:
            files = {}
            for file in sorted(p for p in (self._tmp / MINARI_DIR).rglob("*") if p.is_file()):
                rel = file.relative_to(self._tmp).as_posix()
                files[rel] = {"bytes": file.stat().st_size, "sha256": file_sha256(file)}
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "harness_version": harness_version(),
                "minari_version": minari.__version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "source": self.source, "tasks": self.tasks, "obs_dims": self.obs_dims,
                "action_dims": self.action_dims,
                "episodes": [len(r) for r in self._returns], "transitions": self._transitions,
                "returns": [_summary(r) for r in self._returns],
                "minari_ids": [minari_id(t) if i in self._written else None for i, t in enumerate(self.tasks)],
                "files": files, "runs": self.runs,
            }
            (self._tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
            (self._tmp / OWNER_FILE).unlink()
            if self.path.exists():
                shutil.rmtree(self.path)
            os.replace(self._tmp, self.path)
        except OSError as err:
            self.abort()
            if err.errno in STORAGE_ERRNOS:
                raise _storage_error(Path(err.filename or self._tmp / MANIFEST), err) from None
            raise
        except BaseException:
            self.abort()
            raise
        return manifest


def write_dataset(path: str | Path, tasks: list[str], obs_dims: list[int], action_dims: list[int],
                  episodes: dict[str, list[Episode]], *, source: str = "runs", runs: list[dict] | None = None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write ``episodes`` (task name -> episodes) as a dataset at ``path``; returns the manifest."""
    with DatasetWriter(path, tasks, obs_dims, action_dims, source=source, runs=runs, overwrite=overwrite) as w:
        for task in tasks:
            w.add(task, episodes.get(task, []))
    return read_manifest(path)
