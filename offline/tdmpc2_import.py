"""Import TD-MPC2's released mt30/mt80 offline data (a local folder of ``chunk_*.pt`` files) into the native
format (offline/dataset.py). The harness never downloads them; the README says where users get them.

The released layout (TD-MPC2's ``common/buffer.py`` and ``trainer/offline_trainer.py``): each chunk is a
torch-saved TensorDict of batch size (episodes, T+1), T = 500 (mt30) or 100 (mt80), with

    obs     (E, T+1, obs_max)     float32, every task's observation zero-padded to the largest task's size
    action  (E, T+1, action_max)  row 0 is a dummy (NaN in TD-MPC2's online trainer, which wrote the episodes);
                                  row t >= 1 is the action taken at observation t-1, zero-padded
    reward  (E, T+1)              row 0 a dummy likewise; row t >= 1 the reward of that action
    task    (E, T+1) or (E,)      the episode's task id, an index into TD-MPC2's TASK_SET[mt30|mt80]

(TD-MPC2's sampler takes ``action[1:]`` and ``reward[1:]``.) A chunk may be a TensorDict or a plain dict of
tensors; reading a TensorDict needs the ``tensordict`` package, which the harness does not require: without it,
the error says so. Each episode is unpadded to its task's real sizes, taken from ``dims`` (task -> (obs, action))
or else from the task's environment (``make_env``), and the padded entries are checked to be zero (non-zero
padding means the sizes are wrong). TD-MPC2's task ids are kept: the dataset's task list is the whole task set,
in TD-MPC2's order, and tasks without episodes in the files keep their place without data (sizes 0 unless
``dims`` gives them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from offline.dataset import DatasetError, Episode, read_manifest
from offline.writer import DatasetWriter

CHUNK_GLOB = "chunk_*.pt"
KEYS = ("obs", "action", "reward", "task")


def chunk_files(src_dir: str | Path) -> list[Path]:
    """The folder's ``chunk_*.pt`` files in numeric order (chunk_2 before chunk_10)."""
    src = Path(src_dir)
    if not src.is_dir():
        raise DatasetError(f"TD-MPC2 data folder {src} does not exist")
    files = list(src.glob(CHUNK_GLOB))
    if not files:
        raise DatasetError(f"{src} holds no {CHUNK_GLOB} file (TD-MPC2's released mt30/mt80 chunks)")

    def key(path: Path) -> tuple:
        return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))

    return sorted(files, key=key)


def load_chunk(path: Path) -> dict[str, np.ndarray]:
    """A chunk's obs/action/reward/task as numpy arrays (from a TensorDict or a plain dict of tensors)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as err:
        raise DatasetError(f"{path} needs the Python package {err.name!r} to be read (TD-MPC2 saved TensorDicts): "
                           "`pip install tensordict`") from None
    except Exception as err:  # truncated or not a torch file: torch raises many kinds
        raise DatasetError(f"{path} cannot be read as a torch-saved chunk ({type(err).__name__}: {err})") from None
    if not hasattr(data, "keys") or not hasattr(data, "__getitem__"):
        raise DatasetError(f"{path} holds a {type(data).__name__}, not a TensorDict or dict of tensors")
    keys = set(data.keys())
    missing = [k for k in KEYS if k not in keys]
    if missing:
        raise DatasetError(f"{path} lacks key(s) {', '.join(missing)} (has {', '.join(sorted(map(str, keys)))}); "
                           f"expected TD-MPC2's {', '.join(KEYS)}")
    arrays = {}
    for key in KEYS:
        value = data[key]
        arrays[key] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    obs, action, reward, task = (arrays[k] for k in KEYS)
    if obs.ndim != 3 or action.ndim != 3 or reward.ndim not in (2, 3) or obs.shape[:2] != action.shape[:2] \
            or reward.shape[:2] != obs.shape[:2] or task.shape[0] != obs.shape[0] or obs.shape[1] < 2:
        raise DatasetError(f"{path}: shapes obs {obs.shape}, action {action.shape}, reward {reward.shape}, task "
                           f"{task.shape} are not TD-MPC2's (episodes, T+1, ...) layout")
    arrays["reward"] = reward.reshape(reward.shape[0], reward.shape[1])
    return arrays


def task_dims(task: str, dims: Mapping[str, tuple[int, int]] | None) -> tuple[int, int] | None:
    """A task's real (obs, action) sizes: from ``dims``, else from its environment, else None (unknown)."""
    from envs import availability, make_env
    from envs.registry import get_task

    if dims and task in dims:
        return int(dims[task][0]), int(dims[task][1])
    ok, _ = availability(get_task(task))
    if not ok:
        return None
    env = make_env(task)
    try:
        return int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()


def parse_dims(text: str | None) -> dict[str, tuple[int, int]] | None:
    """``"cartpole-balance=5:1,cheetah-run=17:6"`` or a JSON file ``{task: [obs, action]}`` as a dict."""
    if not text:
        return None
    import json

    if text.endswith(".json"):
        try:
            raw = json.loads(Path(text).read_text())
            return {str(k): (int(v[0]), int(v[1])) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, KeyError, IndexError) as err:
            raise DatasetError(f"--dims file {text} is not a JSON object task -> [obs, action] ({err})") from None
    out = {}
    for item in text.split(","):
        task, sep, sizes = item.strip().partition("=")
        obs_dim, colon, action_dim = sizes.partition(":")
        if not sep or not colon or not obs_dim.strip().isdigit() or not action_dim.strip().isdigit():
            raise DatasetError(f"--dims item {item!r} is not TASK=OBS:ACTION (e.g. cheetah-run=17:6)")
        out[task.strip()] = (int(obs_dim), int(action_dim))
    return out


def chunk_episodes(arrays: dict[str, np.ndarray], dims: list[tuple[int, int]], path: Path) -> dict[int, list[Episode]]:
    """Task id -> the chunk's episodes of that task, unpadded (checks ids, padding and NaNs; errors name ``path``)."""
    obs, action, reward, task = (arrays[k] for k in KEYS)
    out: dict[int, list[Episode]] = {}
    for i in range(obs.shape[0]):
        ids = np.asarray(task[i]).reshape(-1)
        task_id = int(ids[0])
        if not (ids == ids[0]).all() or not 0 <= task_id < len(dims):
            raise DatasetError(f"{path}: episode {i} has task id(s) {np.unique(ids)[:5].tolist()}; expected one id "
                               f"in 0..{len(dims) - 1}")
        obs_dim, action_dim = dims[task_id]
        if obs_dim > obs.shape[2] or action_dim > action.shape[2] or obs_dim <= 0 or action_dim <= 0:
            raise DatasetError(f"{path}: task id {task_id} has sizes obs {obs_dim} / action {action_dim}, the file "
                               f"pads to {obs.shape[2]} / {action.shape[2]}")
        ep_obs, ep_action, ep_reward = obs[i], action[i, 1:], reward[i, 1:]
        if np.any(ep_obs[:, obs_dim:] != 0) or np.any(np.nan_to_num(ep_action[:, action_dim:], nan=1.0) != 0):
            raise DatasetError(f"{path}: episode {i} (task id {task_id}) has non-zero values beyond obs size "
                               f"{obs_dim} / action size {action_dim}: the sizes given for that task are wrong")
        ep_obs, ep_action = ep_obs[:, :obs_dim], ep_action[:, :action_dim]
        if not (np.isfinite(ep_obs).all() and np.isfinite(ep_action).all() and np.isfinite(ep_reward).all()):
            raise DatasetError(f"{path}: episode {i} (task id {task_id}) holds NaN or inf after its first row")
        steps = len(ep_reward)
        out.setdefault(task_id, []).append(Episode(ep_obs, ep_action, ep_reward, np.zeros(steps, dtype=bool)))
    return out


def import_tdmpc2(src_dir: str | Path, out: str | Path, task_set: str, *,
                  dims: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Import every chunk of ``src_dir`` as a dataset at ``out`` whose task list is ``task_set`` (mt30 or mt80, in
    TD-MPC2's order, so task ids are kept); returns the manifest. Chunks are read one at a time."""
    from offline.tasksets import TASK_SETS

    if task_set not in ("mt30", "mt80"):
        raise DatasetError(f"unknown TD-MPC2 task set {task_set!r}; valid: mt30, mt80")
    out = Path(out)
    if out.exists():
        raise DatasetError(f"{out} exists already; choose another --out")
    files = chunk_files(src_dir)
    tasks = list(TASK_SETS[task_set])
    unknown = sorted(set(dims or {}) - set(tasks))
    if unknown:
        raise DatasetError(f"--dims names task(s) not in {task_set}: {', '.join(unknown)}")
    # sizes of the tasks with data are resolved when a chunk first holds one of their episodes (creating every
    # environment of mt80 up front would take minutes); a task without data keeps the sizes --dims gives, else 0
    sizes = [(int(dims[t][0]), int(dims[t][1])) if dims and t in dims else (0, 0) for t in tasks]
    resolved: set[int] = set()
    record = {"source": f"tdmpc2:{task_set}", "src_dir": str(Path(src_dir)), "files": [f.name for f in files]}
    with DatasetWriter(out, tasks, [d[0] for d in sizes], [d[1] for d in sizes], source=f"tdmpc2:{task_set}",
                       runs=[record]) as writer:
        for path in files:
            arrays = load_chunk(path)
            ids = sorted({int(t) for t in np.unique(np.asarray(arrays["task"]))})
            missing = []
            for task_id in ids:
                if task_id in resolved or not 0 <= task_id < len(tasks):
                    continue  # out-of-range ids: chunk_episodes names them
                found = task_dims(tasks[task_id], dims)
                if found is None:
                    missing.append(tasks[task_id])
                    continue
                sizes[task_id] = found
                writer.set_task_dims(task_id, *found)
                resolved.add(task_id)
            if missing:
                raise DatasetError(f"{path}: the observation/action sizes of task(s) {', '.join(missing)} are "
                                   "unknown (their environment is not available here): give them with --dims "
                                   "TASK=OBS:ACTION")
            for task_id, episodes in sorted(chunk_episodes(arrays, sizes, path).items()):
                writer.add(task_id, episodes)
            del arrays
    return read_manifest(out)
