"""TD-MPC2's per-update and per-act wall time for size presets (default 1.7M and 6M) on one device.

The agent is ``algorithms.tdmpc2.Agent`` with its default config (batch 256, horizon 3, MPPI 512 samples x 6
iterations) on state ``cartpole-balance``, the buffer filled with synthetic episodes (costs do not depend
on the values). ``ms_per_update`` includes batch sampling and the policy update; ``act_ms`` is one MPPI
plan for one state (as in data collection). Medians over ``--repeats``. The presets are timed one after
the other in the same process, so their ratio is the comparable figure on a noisy machine.

    python benchmarks/tdmpc2_step.py
    python benchmarks/tdmpc2_step.py --sizes 1.7M --updates 5 --acts 5 --num-samples 256
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import csv_list, emit, median, time_update_and_act, torch_task_setup, torch_threads
from sac_updates import fill_buffer

BENCHMARK = "tdmpc2_step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1.7M,6M")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--updates", type=int, default=10, help="timed updates per repeat")
    parser.add_argument("--acts", type=int, default=10, help="timed act calls per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=None, help="MPPI samples (default the config's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    torch, device, spec, env = torch_task_setup(args.threads, args.device, args.task)

    from algorithms.common.buffer import ReplayBuffer
    from algorithms.tdmpc2 import Agent, Config

    for size in csv_list(args.sizes):
        torch.manual_seed(0)
        overrides = {}
        if args.num_samples:  # keep elites and policy trajectories the same share of the samples
            overrides = dict(num_samples=args.num_samples, num_elites=max(1, args.num_samples // 8),
                             num_pi_trajs=max(0, args.num_samples * 3 // 64))
        agent = Agent(Config(model_size=size, **overrides), spec, env.observation_space, env.action_space, device)
        buffer = ReplayBuffer(20_000, env.observation_space.shape, env.observation_space.dtype,
                              env.action_space.shape[0], seed=0)
        fill_buffer(buffer, env.observation_space, env.action_space.shape[0], spec.episode_length, 4000,
                    np.random.default_rng(0))
        obs = env.reset(seed=0)[0]
        agent.update(buffer)
        agent.act(obs, eval_mode=False)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        update_ms, act_ms = time_update_and_act(lambda: agent.update(buffer), lambda: agent.act(obs, eval_mode=False),
                                                args.updates, args.acts, args.repeats, sync, size)
        context = dict(task=args.task, model_size=size, parameters=agent.model.num_parameters(),
                       steps=args.updates, repeats=args.repeats, device=str(device), torch_threads=torch_threads(),
                       batch_size=agent.cfg.batch_size, num_samples=agent.cfg.num_samples,
                       iterations=agent.cfg.iterations)
        emit(BENCHMARK, "ms_per_update", median(update_ms), "ms", **context)
        emit(BENCHMARK, "updates_per_s", 1e3 / median(update_ms), "updates/s", **context)
        emit(BENCHMARK, "act_ms", median(act_ms), "ms", **context)


if __name__ == "__main__":
    main()
