"""Suite-independent gymnasium wrappers: frame stacking for pixels, action repeat for suites without their own."""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np


class FrameStack(gym.Wrapper):
    """Concatenate the last ``k`` channels-first uint8 frames along the channel axis ((3k, H, W)).

    At reset the first frame fills the whole stack, so a stack never mixes two episodes.
    """

    def __init__(self, env: gym.Env, k: int):
        super().__init__(env)
        self._k = k
        self._frames: deque[np.ndarray] = deque(maxlen=k)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            low=0, high=255, shape=(space.shape[0] * k, *space.shape[1:]), dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(self._k):
            self._frames.append(obs)
        return np.concatenate(self._frames, axis=0), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs)
        return np.concatenate(self._frames, axis=0), reward, terminated, truncated, info


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``repeat`` times, summing rewards; success is that of the last inner step."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self._repeat = repeat

    def step(self, action: np.ndarray):
        total = 0.0
        info: dict[str, Any] = {}
        for _ in range(self._repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info
