"""A dataset of uniform-random-action episodes: the pretraining data of the small O2O variant
(config/o2o-smoke.yaml), written by the workflow's ``random_dataset`` rule so that a clean checkout runs end to end
without a trained policy to collect from. Random data is what TD-MPC2's released mt30/mt80 datasets start with
(their first episodes are the seed phase's random actions); it is far weaker than those, and only sizes the smoke
run, not the paper's result."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offline.dataset import Episode
from offline.writer import write_dataset


def random_episodes(task: str, episodes: int, seed: int) -> list[Episode]:
    """``episodes`` episodes of ``task`` with actions uniform in [-1, 1], each reset with its own derived seed."""
    from envs import make_env

    env = make_env(task, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed * 1000 + k)
        observations, actions, rewards, terminated = [obs], [], [], []
        done = False
        while not done:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, term, trunc, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminated.append(term)
            done = term or trunc
        out.append(Episode(np.array(observations), np.array(actions), np.array(rewards), np.array(terminated)))
    return out


def write_random_dataset(path: str | Path, tasks: list[str], episodes: int, seed: int = 0) -> Path:
    """Write ``episodes`` random episodes of every task in ``tasks`` as an offline dataset at ``path``."""
    from envs import make_env

    envs = [make_env(task, seed=seed) for task in tasks]
    data = {task: random_episodes(task, episodes, seed + i) for i, task in enumerate(tasks)}
    path = Path(path).resolve()  # Minari resolves a relative root against its own folder
    write_dataset(path, list(tasks), [e.observation_space.shape[0] for e in envs],
                  [e.action_space.shape[0] for e in envs], data, source="random")
    return path
