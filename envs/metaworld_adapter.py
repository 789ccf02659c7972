"""MetaWorld (metaworld 3.0.0, v3 tasks) behind the registry: the goal-observable single-task environments.

Conventions of the published curves (TD-MPC2's MetaWorld wrapper, shared/paper/TASKS.md): goal and object
positions re-randomised at every reset, one zero-action step right after reset, action repeat 2, 100 agent steps
(200 of MetaWorld's 500), and success at the last step. Reproducibility: ``reset(seed=s)`` reseeds the task's own
random generator (``seeded_rand_vec``), so an evaluation episode's goal depends on its seed alone and two
evaluation episodes with different seeds differ; without a seed the env's generator continues.

The registry's names are MetaWorld's v2-era names (``mw-assembly``); metaworld 3.0.0 ships them as ``*-v3``
(same tasks, MuJoCo-3 ports; v2 ids are gone), see the README's version table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.adapter import RepeatedActionEnv
from envs.registry import TaskSpec


def env_class(spec: TaskSpec):
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    key = f"{spec.source}-goal-observable"
    if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
        raise KeyError(f"metaworld has no {key!r}; its v3 tasks: {sorted(ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE)[:5]}…")
    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key]


class MetaWorldEnv(RepeatedActionEnv):
    def __init__(self, spec: TaskSpec, seed: int | None = None):
        self._env = env_class(spec)(seed=seed)
        self._env._freeze_rand_vec = False  # new goal at every reset (the published runs' setting)
        self._env.seeded_rand_vec = True  # …drawn from the env's own seeded generator, not numpy's global one
        if seed is not None:
            self._env.seed(seed)
        super().__init__(spec, self._env.observation_space.shape[0], self._env.action_space.shape[0])

    @property
    def raw_env(self):
        return self._env

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self._env.seed(seed)
        self._env.reset()
        obs, _, _ = self._sim_step(np.zeros(self.action_space.shape))  # TD-MPC2's zero-action step after reset
        return obs

    def _sim_step(self, action: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
        obs, reward, _, _, info = self._env.step(action)
        return obs, reward, info


def make(spec: TaskSpec, seed: int | None = None) -> MetaWorldEnv:
    return MetaWorldEnv(spec, seed)
