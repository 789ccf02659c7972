"""The shared step loop of the non-DMControl suites: action repeat, the episode limit and success, in one place.

A suite adapter subclasses :class:`RepeatedActionEnv` and implements ``_reset(seed)`` and ``_sim_step(action)``;
this class turns them into the registry's contract: float32 observations, actions in [-1, 1], ``step`` repeats the
action ``spec.action_repeat`` times and sums the rewards, the episode is truncated after ``spec.episode_length``
agent steps (the suites' own terminations are ignored, as in the published runs), and ``info["success"]`` is the
suite's success flag at the last simulator step (the published curves' convention: an episode's success is its
success at its last step).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.registry import TaskSpec


class RepeatedActionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, spec: TaskSpec, obs_dim: int, action_dim: int):
        self.spec_ = spec
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(action_dim,), dtype=np.float32)
        self._agent_steps = 0

    # ----------------------------------------------------------------------------------------- for subclasses
    def _reset(self, seed: int | None) -> np.ndarray:
        raise NotImplementedError

    def _sim_step(self, action: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
        """One simulator step: (observation, reward, info with a boolean-like ``success``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- gymnasium
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._agent_steps = 0
        obs = self._reset(seed)
        return np.asarray(obs, dtype=np.float32), {"success": 0.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        total = 0.0
        info: dict[str, Any] = {}
        for _ in range(self.spec_.action_repeat):
            obs, reward, info = self._sim_step(action)
            total += float(reward)
        self._agent_steps += 1
        truncated = self._agent_steps >= self.spec_.episode_length
        out = {"success": float(bool(info.get("success", 0.0)))}
        return np.asarray(obs, dtype=np.float32), total, False, truncated, out
