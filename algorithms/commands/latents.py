"""Latent exports of a multi-task checkpoint (issue 16 item 4; the paper's t-SNE and latent-trajectory figures):
per-step encoder outputs z = h(s, e) of evaluation rollouts (or of a dataset's episodes) with their task and step
ids, and the task-embedding table, in one ``.npz`` that the analysis reads without building a model
(``analysis/embedding.py``: ``load_latents``, ``latent_trajectories_figure``; ``mbdpo-bench analyze --latents``).

The agent is rebuilt the way the harness built it, not by a copy of that code: an offline run (``offline.dataset``)
in the multi-task shape its checkpoint records (tasks, observation and action sizes: the same
:func:`algorithms.common.finetune.load_pretrained` that a fine-tuning run reads), a fine-tuned run with
:func:`algorithms.common.finetune.build_agent` (the pretrained shape plus the new task's row), then the checkpoint's
own weights. Rollouts act with the deterministic evaluation policy (``agent.act(obs, eval_mode=True)``), one
environment and episode seed per (task, episode) derived from ``seed``; z is taken with ``agent.model.encode`` on
the observation the agent sees (zero-padded by ``agent.obs_tensor`` to the pretrained size), every observation of
the episode from the first to the last (T + 1 per episode of T steps).

File layout (:data:`NPZ_KEYS`): ``z`` (rows × latent_dim, float32), ``task_id``, ``episode`` (per task, from 0),
``step`` (from 0 within the episode), ``reward`` (the reward after that step's action; NaN on the last
observation); ``tasks`` (names, index = task id = embedding row), ``task_embedding`` (num_tasks × task_dim; 0 × 0
for a single-task model), ``episode_return`` (task_id, episode, return rows), and ``meta`` (a JSON string: run
folder, checkpoint, SHA-256, algo, source ``rollout`` or ``dataset``, seed, which tasks were exported).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import ConfigError, apply_values, load_yaml

NPZ_KEYS = ("z", "task_id", "episode", "step", "reward", "tasks", "task_embedding", "episode_return", "meta")
LATENTS = 0x1A7E  # stream id of the rollout seeds (seeding.derived_seed)


class LatentExportError(RuntimeError):
    """A run, checkpoint or dataset the export cannot use; the message names it and says why."""


def _run_config(run_dir: Path):
    from algorithms.common.configure import build_config

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise LatentExportError(f"{run_dir} is not a run folder (no config.yaml)")
    values = load_yaml(config_file)
    cfg = build_config(values.get("algo"), overrides=None)
    apply_values(cfg, {"render_shadows": False, **{k: v for k, v in values.items() if k != "algo"}})
    return cfg


def load_agent(run_dir: str | Path, checkpoint: str | Path | None = None,
               device: str = "cpu") -> tuple[Any, list[str], dict[str, Any]]:
    """(agent with the checkpoint's weights, task names in task-id order, metadata) of an offline multi-task run or
    a fine-tuned run; LatentExportError for an online single-task run (no task table to export)."""
    from algorithms.common import finetune
    from algorithms.common.device import resolve_device
    from algorithms.registry import get_algorithm
    from envs import make_env
    from envs.registry import get_task

    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    torch_device = resolve_device(device)
    manager = CheckpointManager(run_dir / "checkpoints")
    if checkpoint is None:
        state, checkpoint, problems = manager.load_latest()
        if state is None:
            raise LatentExportError(f"{run_dir / 'checkpoints'} holds no usable checkpoint"
                                    + (f": {'; '.join(problems)}" if problems else ""))
    else:
        state = manager.load(Path(checkpoint))
    if cfg.is_finetune:  # the pretrained shape (+ the new task's row); the weights are this run's own
        spec = get_task(cfg.task, cfg.obs)
        env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs)
        try:
            agent, pretrained, task = finetune.build_agent(cfg, spec, env, torch_device)
        finally:
            env.close()
        tasks = [*pretrained.tasks, *([spec.name] if task.new else [])]
    elif cfg.is_offline:
        try:  # the shape the checkpoint records (or, for an older one, its dataset's manifest)
            shape = finetune.load_pretrained(str(checkpoint))
        except ConfigError as err:
            raise LatentExportError(str(err).replace("config key 'init.checkpoint': ", "")) from None
        tasks = list(shape.tasks)
        specs = [get_task(t, "state") for t in tasks]
        multi = len(tasks) > 1
        agent = get_algorithm(cfg.algo).load().Agent(
            cfg.agent, specs[0], gym.spaces.Box(-np.inf, np.inf, (shape.obs_dim,), np.float32),
            gym.spaces.Box(-1.0, 1.0, (shape.action_dim,), np.float32), torch_device,
            **({"num_tasks": len(tasks), "task_id": 0, "action_dims": shape.action_dims,
                "discounts": [s.discount for s in specs]} if multi else {}))
    else:
        raise LatentExportError(f"{run_dir} is an online single-task run: export latents from an offline multi-task "
                                "run (`train --offline`) or a run fine-tuned from one (init.checkpoint)")
    agent.load_state_dict(state["agent"])
    meta = {"run_dir": str(run_dir), "checkpoint": str(checkpoint), "algo": cfg.algo,
            "checkpoint_sha256": finetune.file_sha256(Path(checkpoint)), "counters": state.get("counters", {})}
    return agent, tasks, meta


def task_embedding(agent: Any) -> np.ndarray:
    """The agent's task-embedding table (num_tasks × task_dim) as float32; 0 × 0 for a single-task model."""
    model = agent.model
    if not getattr(model, "multitask", False):
        return np.zeros((0, 0), dtype=np.float32)
    return model.task_emb.weight.detach().cpu().numpy().astype(np.float32)


@torch.no_grad()
def encode(agent: Any, observations: np.ndarray, task_id: int) -> np.ndarray:
    """z of a batch of observations (T × obs_dim, the task's own size) for task ``task_id``: zero-padded to the
    agent's observation size as ``agent.obs_tensor`` pads one, then ``agent.model.encode``."""
    agent.model.eval()
    x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=agent.device)
    size = agent.observation_space.shape[0]
    if x.shape[-1] < size:
        x = torch.nn.functional.pad(x, (0, size - x.shape[-1]))
    task = torch.full((len(x),), task_id, device=agent.device) if agent.model.multitask else None
    return agent.model.encode(x, task).cpu().numpy().astype(np.float32)


def _set_task(agent: Any, task_id: int) -> None:
    if agent.model.multitask:
        agent.set_task(task_id)


def rollout_episodes(agent: Any, task: str, task_id: int, episodes: int,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``episodes`` evaluation episodes of ``task`` (deterministic policy): [(observations T+1 × obs_dim, rewards
    T)], each from its own derived seed."""
    from algorithms.common.seeding import derived_seed
    from envs import make_env

    _set_task(agent, task_id)
    env = make_env(task, seed=derived_seed(seed, LATENTS, task_id))
    out = []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=derived_seed(seed, LATENTS, task_id, k))
            agent.reset()
            observations, rewards, done = [np.asarray(obs, dtype=np.float32)], [], False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent.act(obs, eval_mode=True))
                observations.append(np.asarray(obs, dtype=np.float32))
                rewards.append(float(reward))
                done = terminated or truncated
            out.append((np.stack(observations), np.asarray(rewards, dtype=np.float32)))
    finally:
        env.close()
    return out


def dataset_episodes(dataset: str | Path, tasks: list[str], episodes: int) -> dict[str, list[tuple[np.ndarray,
                                                                                                  np.ndarray]]]:
    """Up to ``episodes`` episodes per task of ``dataset`` that the agent knows ({task: [(obs, rewards)]}); a
    dataset task outside the agent's table is skipped (said on stderr), none in common is an error."""
    from offline.dataset import DatasetError, iter_episodes, read_manifest

    try:
        manifest = read_manifest(dataset)
    except DatasetError as err:
        raise LatentExportError(str(err)) from None
    known = [t for t in manifest["tasks"] if t in tasks]
    unknown = [t for t in manifest["tasks"] if t not in tasks]
    if not known:
        raise LatentExportError(f"dataset {dataset} holds tasks {manifest['tasks']}, none of the checkpoint's "
                                f"({', '.join(tasks)})")
    if unknown:
        print(f"note: {dataset}: tasks {', '.join(unknown)} are not in the checkpoint's task table; not exported",
              file=sys.stderr)
    out: dict[str, list] = {t: [] for t in known}
    ids = [manifest["tasks"].index(t) for t in known]
    for task_index, episode in iter_episodes(dataset, ids, manifest=manifest):
        bucket = out[manifest["tasks"][task_index]]
        if len(bucket) < episodes:
            bucket.append((episode.obs, episode.reward))
    return out


def export_latents(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None, episodes: int = 2,
                   dataset: str | Path | None = None, tasks: list[str] | None = None, seed: int = 0,
                   device: str = "cpu") -> Path:
    """Write ``out`` (.npz, :data:`NPZ_KEYS`; see the module docstring) for the run's checkpoint (the newest
    usable one unless ``checkpoint``): ``episodes`` evaluation rollouts per task — of every task in the agent's
    table, or of ``tasks`` — or, with ``dataset``, up to ``episodes`` of its episodes per task. Returns ``out``."""
    from algorithms.common.runfiles import atomic_write
    from algorithms.common.seeding import seed_everything

    if episodes < 1:
        raise LatentExportError(f"--episodes must be at least 1, got {episodes}")
    seed_everything(seed)
    agent, table, meta = load_agent(run_dir, checkpoint, device)
    chosen = table if tasks is None else list(tasks)
    absent = [t for t in chosen if t not in table]
    if absent:
        raise LatentExportError(f"task(s) {', '.join(absent)} not in the checkpoint's task table ({', '.join(table)})")
    if dataset is not None:
        per_task = dataset_episodes(dataset, chosen, episodes)
    else:
        per_task = {t: rollout_episodes(agent, t, table.index(t), episodes, seed) for t in chosen}
    z, task_ids, episode_ids, steps, rewards, returns = [], [], [], [], [], []
    for task, eps in per_task.items():
        task_id = table.index(task)
        for k, (observations, reward) in enumerate(eps):
            n = len(observations)
            z.append(encode(agent, observations, task_id))
            task_ids.append(np.full(n, task_id))
            episode_ids.append(np.full(n, k))
            steps.append(np.arange(n))
            rewards.append(np.append(np.asarray(reward, dtype=np.float32), np.float32(np.nan)))
            returns.append((task_id, k, float(np.sum(reward, dtype=np.float64))))
    meta.update({"source": "dataset" if dataset is not None else "rollout", "seed": seed, "episodes": episodes,
                 "dataset": None if dataset is None else str(dataset), "exported_tasks": list(per_task)})
    arrays = {"z": np.concatenate(z), "task_id": np.concatenate(task_ids).astype(np.int32),
              "episode": np.concatenate(episode_ids).astype(np.int32), "step": np.concatenate(steps).astype(np.int32),
              "reward": np.concatenate(rewards).astype(np.float32), "tasks": np.asarray(table, dtype=str),
              "task_embedding": task_embedding(agent),
              "episode_return": np.asarray(returns, dtype=np.float64).reshape(-1, 3),
              "meta": np.asarray(json.dumps(meta, default=str))}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: np.savez_compressed(f, **arrays), mode="wb")
    return out
