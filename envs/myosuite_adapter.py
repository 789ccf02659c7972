"""MyoSuite (myosuite 3.0.0) behind the registry: the hand tasks' Fixed variants and, for ``-hard``, Random.

No action repeat, 100 steps, success = the suite's ``solved`` flag at the last step (TD-MPC2's MyoSuite wrapper);
the suite's own early terminations are ignored. MyoSuite's actions already lie in [-1, 1]: they pass through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.adapter import RepeatedActionEnv
from envs.registry import TaskSpec


class MyoSuiteEnv(RepeatedActionEnv):
    def __init__(self, spec: TaskSpec, seed: int | None = None):
        import gymnasium as gym
        import myosuite  # noqa: F401 - registers the myo* ids with gymnasium

        self._env = gym.make(spec.source).unwrapped  # our loop replaces the TimeLimit and checker wrappers
        self._seed = seed
        low, high = self._env.action_space.low, self._env.action_space.high
        if not (np.all(low == -1.0) and np.all(high == 1.0)):
            raise ValueError(f"{spec.source}: expected actions in [-1, 1], got [{low.min()}, {high.max()}]")
        super().__init__(spec, self._env.observation_space.shape[0], self._env.action_space.shape[0])

    @property
    def raw_env(self):
        return self._env

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None  # the constructor's seed applies to the first episode
        obs, _ = self._env.reset(seed=seed)
        return obs

    def _sim_step(self, action: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
        obs, reward, _, _, info = self._env.step(action)
        return obs, reward, {"success": info.get("solved", False)}


def make(spec: TaskSpec, seed: int | None = None) -> MyoSuiteEnv:
    return MyoSuiteEnv(spec, seed)
