"""``mbdpo-bench collect``: turn training runs into one multi-task offline dataset (offline/dataset.py).

Two sources per run, both from the run's newest usable checkpoint (``CheckpointManager.load_latest``):

* ``buffer``: the replay buffer the checkpoint carries, cut back into episodes. The buffer stores an episode of
  T steps in T+1 consecutive slots (``algorithms.common.buffer``), so the slots are put back in the order they
  were written and grouped by their episode id. Two kinds of episode are left out because they are not whole:
  the episode still in progress at the checkpoint (the buffer's ``open`` flag) and, once the circular buffer
  has wrapped, the oldest episode in it (its first slots may have been overwritten).
* ``policy``: the checkpoint's agent, rebuilt from the run's ``config.yaml``, rolled out for N episodes in the
  real environment; each action is the deterministic (evaluation) action plus Gaussian noise of std
  ``noise_std``, clipped to [-1, 1]. Episode k is reset with ``derived_seed(seed, k)`` and the noise comes from
  ``np.random.default_rng(seed)``, so the same command collects the same data.

Runs of different tasks (different observation and action sizes) go into one dataset; runs of the same task add
to that task. The manifest's ``runs`` list records each run: run_dir, task, algo, seed, checkpoint, env_step,
source, noise_std, episodes and the run's config. Pixel runs are refused (datasets hold state observations).
The collected episodes are held in memory until the dataset is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.dataset import DatasetError, Episode
from offline.writer import DatasetWriter

SOURCES = ("buffer", "policy")


class CollectError(DatasetError):
    """A run that cannot be collected from (missing folder, no usable checkpoint, pixel observations, ...); the
    message names the path and what is wrong."""


@dataclass
class RunData:
    """One run's checkpoint, loaded: its config (as written in config.yaml and as a RunConfig), task spec,
    checkpoint path and state."""

    run_dir: Path
    values: dict[str, Any]
    cfg: Any
    spec: Any
    checkpoint: Path
    state: dict[str, Any]


def load_run(run_dir: str | Path) -> RunData:
    """The run's config and newest usable checkpoint, or CollectError naming the path and why not."""
    from algorithms.common.checkpoint import CheckpointManager
    from algorithms.common.config import ConfigError, apply_values, load_yaml
    from algorithms.common.configure import build_config
    from envs.registry import get_task

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CollectError(f"run folder {run_dir} does not exist")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise CollectError(f"{run_dir} is not a run folder (no config.yaml)")
    try:
        values = load_yaml(config_file)
        cfg = build_config(values.get("algo"), overrides=None)
        # a config written before the render_shadows key existed was rendered without shadows (FIDELITY.md D5)
        apply_values(cfg, {"render_shadows": False, **{k: v for k, v in values.items() if k != "algo"}})
    except ConfigError as err:
        raise CollectError(f"{config_file} cannot be read as a run config: {err}") from None
    spec = get_task(cfg.task, cfg.obs)
    if spec.obs != "state":
        raise CollectError(f"{run_dir} is a pixel run (task {spec.name}, obs {spec.obs}); offline datasets hold "
                           "state observations only: collect from state runs")
    manager = CheckpointManager(run_dir / "checkpoints")
    state, checkpoint, problems = manager.load_latest()
    if state is None:
        detail = f": {'; '.join(problems)}" if problems else ""
        raise CollectError(f"{run_dir / 'checkpoints'} holds no usable checkpoint{detail}")
    return RunData(run_dir, values, cfg, spec, checkpoint, state)


def episodes_from_buffer(buffer_state: dict[str, Any], *, source: str = "buffer") -> list[Episode]:
    """The whole episodes stored in a ``ReplayBuffer.state_dict()``, oldest first (see the module docstring for
    the ones left out). ``source`` names the buffer in error messages."""
    try:
        size, capacity, next_slot = int(buffer_state["size"]), int(buffer_state["capacity"]), int(buffer_state["next"])
        obs, action = np.asarray(buffer_state["obs"]), np.asarray(buffer_state["action"])
        reward, terminated = np.asarray(buffer_state["reward"]), np.asarray(buffer_state["terminated"])
        episode, has_action = np.asarray(buffer_state["episode"]), np.asarray(buffer_state["has_action"])
        is_open = bool(buffer_state.get("open", False))
    except KeyError as err:
        raise CollectError(f"{source}: the replay buffer state lacks {err}; not a ReplayBuffer state") from None
    if obs.ndim != 2:
        raise CollectError(f"{source}: buffer observations have shape {obs.shape[1:]}; offline datasets hold "
                           "state vectors only")
    wrapped = size >= capacity
    order = np.roll(np.arange(size), -next_slot) if wrapped else np.arange(size)
    ids = episode[order]
    if size == 0:
        return []
    cuts = np.flatnonzero(np.diff(ids) != 0) + 1
    groups = np.split(order, cuts)
    if groups and ids[0] < 0:  # slots never written
        groups = [g for g in groups if episode[g[0]] >= 0]
    if wrapped and groups:
        groups = groups[1:]  # the oldest episode may have lost its first slots
    if is_open and groups:
        groups = groups[:-1]  # the episode in progress at the checkpoint
    episodes = []
    for slots in groups:
        if len(slots) < 2:
            continue
        acted = slots[:-1]
        if not has_action[acted].all() or has_action[slots[-1]]:
            raise CollectError(f"{source}: episode {int(episode[slots[0]])} of the replay buffer is not stored as "
                               "T+1 slots with T actions; the buffer state is inconsistent")
        episodes.append(Episode(obs[slots], action[acted], reward[acted], terminated[acted]))
    return episodes


def rollout(agent: Any, env: Any, episodes: int, noise_std: float, seed: int) -> list[Episode]:
    """``episodes`` episodes of the agent's evaluation action plus N(0, noise_std²) noise, clipped to [-1, 1]."""
    from algorithms.common.seeding import derived_seed

    rng = np.random.default_rng(seed)
    collected = []
    for k in range(episodes):
        obs, _ = env.reset(seed=derived_seed(seed, k))
        agent.reset()
        observations, actions, rewards, terms = [np.asarray(obs, dtype=np.float32)], [], [], []
        done = False
        while not done:
            action = np.asarray(agent.act(obs, eval_mode=True), dtype=np.float32)
            if noise_std > 0:
                action = action + rng.normal(0.0, noise_std, size=action.shape).astype(np.float32)
            action = np.clip(action, -1.0, 1.0)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(np.asarray(obs, dtype=np.float32))
            actions.append(action)
            rewards.append(float(reward))
            terms.append(bool(terminated))
            done = terminated or truncated
        collected.append(Episode(np.stack(observations), np.stack(actions), np.asarray(rewards, np.float32),
                                 np.asarray(terms)))
    return collected


def _policy_episodes(run: RunData, episodes: int, noise_std: float, seed: int, device: str) -> list[Episode]:
    from algorithms.common.device import resolve_device
    from algorithms.common.seeding import seed_everything
    from algorithms.registry import get_algorithm
    from envs import make_env

    seed_everything(seed)
    env = make_env(run.spec.name, seed=seed)
    agent = get_algorithm(run.cfg.algo).load().Agent(run.cfg.agent, run.spec, env.observation_space,
                                                     env.action_space, resolve_device(device))
    agent.load_state_dict(run.state["agent"])
    try:
        return rollout(agent, env, episodes, noise_std, seed)
    finally:
        env.close()


def collect(run_dirs: list[str | Path], out: str | Path, *, source: str = "buffer", episodes: int | None = None,
            noise_std: float = 0.0, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """Collect a multi-task dataset at ``out`` from the runs' newest checkpoints; returns its manifest.

    ``episodes``: with ``source="policy"`` the rollouts per run (default 10); with ``"buffer"`` at most this
    many of the newest whole episodes per run (default all). Every run is checked before anything is written,
    so a bad run folder fails fast and leaves no dataset behind."""
    if source not in SOURCES:
        raise CollectError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if not run_dirs:
        raise CollectError("no run folder given")
    if episodes is not None and episodes <= 0:
        raise CollectError(f"--episodes must be positive, got {episodes}")
    if not np.isfinite(noise_std) or noise_std < 0:
        raise CollectError(f"--noise must be a finite std >= 0, got {noise_std}")
    if noise_std and source == "buffer":
        raise CollectError("--noise applies to --from policy only (a buffer holds the actions already taken)")
    out = Path(out)
    if out.exists():
        raise CollectError(f"{out} exists already; choose another --out")
    resolved = [Path(r) for r in run_dirs]
    duplicates = sorted({str(r) for r in resolved if sum(x.resolve() == r.resolve() for x in resolved) > 1})
    if duplicates:
        raise CollectError(f"run folder given twice: {', '.join(duplicates)}")

    per_run: list[tuple[RunData, list[Episode], dict[str, Any]]] = []
    for run_dir in resolved:
        if not run_dir.is_dir():
            raise CollectError(f"run folder {run_dir} does not exist")
    for index, run_dir in enumerate(resolved):
        run = load_run(run_dir)
        if source == "buffer":
            if "buffer" not in run.state:
                raise CollectError(f"checkpoint {run.checkpoint} holds no replay buffer (algo {run.cfg.algo}); "
                                   "use --from policy")
            eps = episodes_from_buffer(run.state["buffer"], source=str(run.checkpoint))
            if episodes is not None:
                eps = eps[-episodes:]
            if not eps:
                raise CollectError(f"checkpoint {run.checkpoint} holds no whole episode in its replay buffer")
        else:
            eps = _policy_episodes(run, episodes or 10, noise_std, seed + index, device)
        record = {"run_dir": str(run_dir), "task": run.spec.name, "algo": run.cfg.algo, "seed": run.cfg.seed,
                  "checkpoint": str(run.checkpoint), "env_step": int(run.state["counters"]["env_step"]),
                  "source": source, "noise_std": float(noise_std) if source == "policy" else None,
                  "rollout_seed": seed + index if source == "policy" else None,
                  "episodes": len(eps), "transitions": int(sum(len(e) for e in eps)), "config": run.values}
        run.state = {}  # the checkpoint's memory is not needed any more
        per_run.append((run, eps, record))

    tasks: list[str] = []
    dims: dict[str, tuple[int, int]] = {}
    for run, eps, _ in per_run:
        shape = (eps[0].obs.shape[1], eps[0].action.shape[1])
        if run.spec.name in dims and dims[run.spec.name] != shape:
            raise CollectError(f"{run.run_dir}: task {run.spec.name} with obs/action sizes {shape}, another run "
                               f"of the same task has {dims[run.spec.name]}")
        if run.spec.name not in dims:
            tasks.append(run.spec.name)
            dims[run.spec.name] = shape
    with DatasetWriter(out, tasks, [dims[t][0] for t in tasks], [dims[t][1] for t in tasks],
                       source=f"runs:{source}", runs=[record for _, _, record in per_run]) as writer:
        for run, eps, _ in per_run:
            writer.add(run.spec.name, eps)
    from offline.dataset import read_manifest

    return read_manifest(out)
