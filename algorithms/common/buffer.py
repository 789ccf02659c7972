"""Replay buffer of episodes, sampled as sub-trajectories (SAC: length 1; TD-MPC2/MBDPO: horizon H).

Storage is circular over slots. An episode of T steps takes T+1 consecutive slots: slot k holds the k-th
observation and, for k < T, the action taken there, its reward and whether it terminated. A sub-trajectory
of horizon H starting at slot i is valid when slots i..i+H belong to one episode and slots i..i+H-1 carry an
action. With ``include_open_episode=False`` (the released TD-MPC2/MBDPO code, FIDELITY.md D8: an episode enters
its buffer only when it ends) no sub-trajectory of the episode in progress is sampled until ``end_episode``.
Pixel observations are kept in their own dtype (uint8). Arrays are allocated at full capacity but
zero-filled lazily by the OS, so an unused capacity costs no memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from offline.batch import Batch  # noqa: F401  (re-exported: agents import the batch type from here)


class ReplayBuffer:
    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, action_dim: int,
                 seed: int, include_open_episode: bool = True):
        if capacity < 2:
            raise ValueError(f"buffer capacity must be at least 2 slots, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.episode = np.full(capacity, -1, dtype=np.int64)
        self.has_action = np.zeros(capacity, dtype=bool)
        self._next = 0
        self._size = 0
        self._episodes = 0
        self.include_open_episode = include_open_episode
        self._open = False  # the newest episode has not ended yet
        self._sampleable: set[int] = set()  # horizons known to have a valid start (stays true as data grows)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Stored transitions (slots that carry an action)."""
        return int(self.has_action[: self._size].sum()) if self._size < self.capacity else int(self.has_action.sum())

    @property
    def num_episodes(self) -> int:
        return self._episodes

    def _write_obs(self, obs: np.ndarray, episode: int) -> None:
        slot = self._next
        self.obs[slot] = obs
        self.episode[slot] = episode
        self.has_action[slot] = False
        self._next = (slot + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def add_first(self, obs: np.ndarray) -> None:
        """Start a new episode with its first observation."""
        self._write_obs(obs, self._episodes)
        self._episodes += 1
        self._open = True

    def end_episode(self) -> None:
        """Close the episode in progress: from now on its sub-trajectories can be sampled."""
        self._open = False

    def add(self, action: np.ndarray, reward: float, terminated: bool, next_obs: np.ndarray) -> None:
        """Append one step of the current episode: the action taken, its reward, the next observation."""
        if self._episodes == 0:
            raise RuntimeError("ReplayBuffer.add before add_first: start an episode first")
        slot = (self._next - 1) % self.capacity
        self.action[slot] = action
        self.reward[slot] = reward
        self.terminated[slot] = terminated
        self.has_action[slot] = True
        self._write_obs(next_obs, self._episodes - 1)

    def _valid(self, starts: np.ndarray, horizon: int) -> np.ndarray:
        slots = (starts[:, None] + np.arange(horizon + 1)) % self.capacity
        same_episode = (self.episode[slots] == self.episode[slots[:, :1]]).all(axis=1)
        valid = same_episode & self.has_action[slots[:, :horizon]].all(axis=1) & (self.episode[starts] >= 0)
        if self._open and not self.include_open_episode:
            valid &= self.episode[starts] != self._episodes - 1
        return valid

    def can_sample(self, horizon: int) -> bool:
        if horizon not in self._sampleable:
            if self._size <= horizon or not self._valid(np.arange(self._size), horizon).any():
                return False
            self._sampleable.add(horizon)
        return True

    def sample(self, batch_size: int, horizon: int = 1) -> Batch:
        """``batch_size`` sub-trajectories of ``horizon`` steps, uniformly over valid start slots."""
        if not self.can_sample(horizon):
            raise RuntimeError(f"the buffer holds no sub-trajectory of {horizon} steps yet")
        chosen: list[np.ndarray] = []
        needed = batch_size
        while needed > 0:
            starts = self.rng.integers(0, self._size, size=2 * needed + 8)
            starts = starts[self._valid(starts, horizon)][:needed]
            chosen.append(starts)
            needed -= len(starts)
        starts = np.concatenate(chosen)
        slots = (starts[:, None] + np.arange(horizon + 1)) % self.capacity
        acted = slots[:, :horizon]
        return Batch(obs=self.obs[slots], action=self.action[acted], reward=self.reward[acted],
                     terminated=self.terminated[acted])

    def state_dict(self) -> dict[str, Any]:
        n = self._size
        return {
            "capacity": self.capacity, "next": self._next, "size": n, "episodes": self._episodes,
            "obs": self.obs[:n].copy(), "action": self.action[:n].copy(), "reward": self.reward[:n].copy(),
            "terminated": self.terminated[:n].copy(), "episode": self.episode[:n].copy(),
            "has_action": self.has_action[:n].copy(), "rng": self.rng.bit_generator.state, "open": self._open,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint buffer capacity {state['capacity']} != configured {self.capacity}")
        n = state["size"]
        for name in ("obs", "action", "reward", "terminated", "episode", "has_action"):
            getattr(self, name)[:n] = state[name]
        self._next, self._size, self._episodes = state["next"], n, state["episodes"]
        self._open = state["open"]
        self._sampleable.clear()
        self.rng.bit_generator.state = state["rng"]
