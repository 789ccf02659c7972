"""Offline multi-task updates per second at batch 1024 (the released offline batch), per preset and algorithm.

A synthetic dataset of three tasks with DMControl's sizes (observations 5/6/24, actions 1/2/6: cartpole, reacher,
walker) is written in the offline format (``offline.dataset.write_dataset``, random values: the cost does not
depend on them) and opened through its memory-mapped cache; each update samples ``--batch-size``
sub-trajectories from the cache (``sample_ms``) and runs the agent's multi-task update on them (``ms_per_update``
includes the sampling), as ``algorithms.common.offline_loop`` does. TD-MPC2 and MBDPO (released defaults:
energy and score network inside the joint loss) are timed in alternating repeats at each preset, so their
ratio is the comparable figure on a noisy machine. Prints ``updates_per_s``, ``ms_per_update`` and
``sample_ms`` per (algorithm, preset), medians over ``--repeats``.

    python benchmarks/offline_updates.py
    python benchmarks/offline_updates.py --sizes 1.7M --batch-size 64 --updates 1 --repeats 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import csv_list, emit, log, median, torch_threads

BENCHMARK = "offline_updates"
TASKS = ("cartpole-balance", "reacher-easy", "walker-walk")
OBS_DIMS, ACTION_DIMS = (5, 6, 24), (1, 2, 6)


def synthetic_dataset(path: Path, episodes: int, length: int, seed: int = 0) -> Path:
    from offline.dataset import Episode
    from offline.writer import write_dataset

    rng = np.random.default_rng(seed)
    data = {task: [Episode(rng.standard_normal((length + 1, o)), rng.uniform(-1, 1, (length, a)),
                           rng.uniform(0, 1, length), np.zeros(length, bool)) for _ in range(episodes)]
            for task, o, a in zip(TASKS, OBS_DIMS, ACTION_DIMS)}
    write_dataset(path, list(TASKS), list(OBS_DIMS), list(ACTION_DIMS), data, source="synthetic")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1.7M,6M")
    parser.add_argument("--algorithms", default="tdmpc2,mbdpo")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--updates", type=int, default=3, help="timed updates per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=4, help="synthetic episodes per task")
    parser.add_argument("--length", type=int, default=500, help="steps per synthetic episode")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    import algorithms  # noqa: F401  (OpenMP wait policy before torch)
    import gymnasium as gym
    import torch

    from algorithms.common.device import resolve_device
    from algorithms.registry import get_algorithm
    from envs import get_task
    from offline import open_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        log("writing the synthetic dataset ...")
        cache = open_dataset(synthetic_dataset(Path(tmp) / "synthetic", args.episodes, args.length), seed=0)
        specs = [get_task(t) for t in cache.tasks]
        obs_space = gym.spaces.Box(-np.inf, np.inf, (cache.obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (cache.action_dim,), np.float32)
        for size in csv_list(args.sizes):
            agents = {}
            for algo in csv_list(args.algorithms):
                module = get_algorithm(algo).load()
                torch.manual_seed(0)
                agents[algo] = module.Agent(module.Config(model_size=size, diag_every=0), specs[0], obs_space,
                                            action_space, device, num_tasks=len(specs), action_dims=cache.action_dims,
                                            discounts=[s.discount for s in specs])
                agents[algo].update(cache.sample(args.batch_size, agents[algo].horizon))  # warm-up
            update_ms = {algo: [] for algo in agents}
            sample_ms = {algo: [] for algo in agents}
            for r in range(args.repeats):
                for algo, agent in (agents.items() if r % 2 == 0 else reversed(agents.items())):
                    sampling = 0.0
                    sync()
                    tic = time.perf_counter()
                    for _ in range(args.updates):
                        t0 = time.perf_counter()
                        batch = cache.sample(args.batch_size, agent.horizon)
                        sampling += time.perf_counter() - t0
                        agent.update(batch)
                    sync()
                    update_ms[algo].append((time.perf_counter() - tic) / args.updates * 1e3)
                    sample_ms[algo].append(sampling / args.updates * 1e3)
                    log(f"{size} {algo} repeat {r + 1}/{args.repeats}: {update_ms[algo][-1]:.1f} ms/update")
            for algo, agent in agents.items():
                params = sum(p.numel() for _, p in agent.named_tensors() if p.requires_grad)
                context = dict(task="+".join(TASKS), algorithm=algo, model_size=size, parameters=params,
                               batch_size=args.batch_size, steps=args.updates, repeats=args.repeats,
                               device=str(device), torch_threads=torch_threads(), num_tasks=len(specs))
                ms = median(update_ms[algo])
                emit(BENCHMARK, "updates_per_s", 1e3 / ms, "updates/s", **context)
                emit(BENCHMARK, "ms_per_update", ms, "ms", **context)
                emit(BENCHMARK, "sample_ms", median(sample_ms[algo]), "ms", **context)


if __name__ == "__main__":
    main()
