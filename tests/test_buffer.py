import numpy as np
import pytest

from algorithms.common.buffer import ReplayBuffer


def fill(buffer: ReplayBuffer, episodes: list[int]) -> None:
    """Episodes whose observation at step k is (episode id, k) and whose reward is 10*id + k."""
    for ep, length in enumerate(episodes):
        buffer.add_first(np.array([ep, 0], dtype=np.float32))
        for k in range(length):
            buffer.add(np.array([k], dtype=np.float32), 10 * ep + k, k == length - 1,
                       np.array([ep, k + 1], dtype=np.float32))


def test_sub_trajectories_are_consecutive_and_never_cross_episodes():
    buffer = ReplayBuffer(1000, (2,), np.float32, 1, seed=0)
    fill(buffer, [5, 3, 7, 2])
    batch = buffer.sample(512, horizon=3)
    assert batch.obs.shape == (512, 4, 2) and batch.action.shape == (512, 3, 1) and batch.reward.shape == (512, 3)
    episode, step = batch.obs[..., 0], batch.obs[..., 1]
    assert np.all(episode == episode[:, :1])  # one episode per sub-trajectory
    assert np.all(np.diff(step, axis=1) == 1)
    assert np.array_equal(batch.reward, 10 * episode[:, :3] + step[:, :3])
    assert set(np.unique(episode)) == {0, 1, 2}  # the 2-step episode holds no 3-step window
    assert len(buffer) == 17 and buffer.num_episodes == 4


def test_wrap_around_overwrites_oldest_and_stays_valid():
    buffer = ReplayBuffer(20, (2,), np.float32, 1, seed=1)
    fill(buffer, [6, 6, 6, 6])  # 28 slots through a 20-slot ring
    batch = buffer.sample(256, horizon=2)
    episode, step = batch.obs[..., 0], batch.obs[..., 1]
    assert np.all(episode == episode[:, :1]) and np.all(np.diff(step, axis=1) == 1)
    assert 0 not in set(np.unique(episode))  # the oldest episode was overwritten


def test_sampling_is_seeded_and_state_round_trips():
    a = ReplayBuffer(100, (2,), np.float32, 1, seed=7)
    fill(a, [10, 10])
    b = ReplayBuffer(100, (2,), np.float32, 1, seed=99)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.sample(32, 2).obs, b.sample(32, 2).obs)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(50, (2,), np.float32, 1, seed=0).load_state_dict(a.state_dict())


def test_pixels_are_stored_as_uint8_and_empty_buffer_says_so():
    buffer = ReplayBuffer(10, (9, 64, 64), np.uint8, 2, seed=0)
    with pytest.raises(RuntimeError, match="no sub-trajectory"):
        buffer.sample(4, 1)
    buffer.add_first(np.full((9, 64, 64), 255, dtype=np.uint8))
    buffer.add(np.zeros(2), 1.0, False, np.zeros((9, 64, 64), dtype=np.uint8))
    batch = buffer.sample(4, 1)
    assert batch.obs.dtype == np.uint8 and batch.obs[0, 0].max() == 255
