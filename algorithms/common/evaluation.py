"""Evaluation of a policy: the deterministic policy's return (and success) over seeded episodes.

The online loop, the offline loop (once per task) and ``mbdpo-bench evaluate`` all call :func:`evaluate_policy`,
each with its own seed stream (``seeding``), so that an evaluation is the same wherever it runs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from algorithms.common.agent import Agent


def evaluate_policy(agent: Agent, env, episodes: int, seed_of,
                    on_episode: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Mean return (and success at the last step, where the suite defines it) of the deterministic policy.

    ``on_episode(k)`` is called after the k-th episode: an evaluation at default planning on a CPU takes minutes,
    and the progress says how far it is."""
    returns, lengths, successes, start_values, discounted = [], [], [], [], []
    estimates_value = hasattr(agent, "value_estimate")
    for k in range(episodes):
        obs, _ = env.reset(seed=seed_of(k))
        agent.reset()
        if estimates_value:
            start_values.append(agent.value_estimate(obs))
        total, discounted_total, weight, length, done, info = 0.0, 0.0, 1.0, 0, False, {}
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, eval_mode=True))
            total += float(reward)
            discounted_total += weight * float(reward)
            weight *= getattr(agent, "discount", 1.0)
            length += 1
            done = terminated or truncated
        returns.append(total)
        discounted.append(discounted_total)
        lengths.append(length)
        if "success" in info:
            successes.append(float(info["success"]))
        if on_episode is not None:
            on_episode(k + 1)
    values = np.asarray(returns, dtype=np.float64)
    return {
        "episode_return": float(values.mean()), "episode_return_std": float(values.std()),
        "episode_return_min": float(values.min()), "episode_return_max": float(values.max()),
        "success": float(np.mean(successes)) if successes else None,
        "episode_length": float(np.mean(lengths)), "episodes": episodes,
        "returns": returns,
        # value over-estimation (METHOD.md): the learned value of the start states beside what was collected
        **({"value_estimate": float(np.mean(start_values)), "discounted_return": float(np.mean(discounted))}
           if estimates_value else {}),
    }
