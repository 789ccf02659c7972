"""DreamerV3's per-update and per-act wall time for size presets (default size12m, the DMC default, and size1m).

``algorithms.dreamerv3.Agent`` with its config (batch 16 × 64, imagination 15 from every replayed state) on state
``cartpole-balance``, the buffer filled with synthetic episodes. ``ms_per_update`` is one full update (world model,
imagination, actor, critic, replay value loss) — ``train_step``, not the per-agent-step ``update`` that spreads
updates by the train ratio; ``updates_per_s`` its inverse; ``act_ms`` one recurrent filter step + policy sample.
``ms_per_agent_step_at_ratio`` = act + ms_per_update × ratio / (B·T), what training costs per agent step.

    python benchmarks/dreamerv3_step.py
    python benchmarks/dreamerv3_step.py --sizes size1m --updates 2 --acts 20
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import csv_list, emit, median, time_update_and_act, torch_task_setup, torch_threads
from sac_updates import fill_buffer

BENCHMARK = "dreamerv3_step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="size12m,size1m")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--updates", type=int, default=3, help="timed updates per repeat")
    parser.add_argument("--acts", type=int, default=20, help="timed act calls per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--batch-length", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    torch, device, spec, env = torch_task_setup(args.threads, args.device, args.task)

    from algorithms.common.buffer import ReplayBuffer
    from algorithms.dreamerv3 import Agent, Config

    for size in csv_list(args.sizes):
        torch.manual_seed(0)
        overrides = {k: v for k, v in (("batch_size", args.batch_size), ("batch_length", args.batch_length)) if v}
        agent = Agent(Config(size=size, **overrides), spec, env.observation_space, env.action_space, device)
        buffer = ReplayBuffer(20_000, env.observation_space.shape, env.observation_space.dtype,
                              env.action_space.shape[0], seed=0)
        fill_buffer(buffer, env.observation_space, env.action_space.shape[0], spec.episode_length, 4000,
                    np.random.default_rng(0))
        obs = env.reset(seed=0)[0]
        agent.train_step(buffer)  # warm-up
        agent.act(obs, eval_mode=False)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        update_ms, act_ms = time_update_and_act(lambda: agent.train_step(buffer),
                                                lambda: agent.act(obs, eval_mode=False),
                                                args.updates, args.acts, args.repeats, sync, size)
        params = sum(p.numel() for p in agent.modules_.parameters())
        per_step = median(act_ms) + median(update_ms) * agent.train_ratio / (agent.cfg.batch_size
                                                                               * agent.cfg.batch_length)
        context = dict(task=args.task, size=size, parameters=params, steps=args.updates, repeats=args.repeats,
                       device=str(device), torch_threads=torch_threads(), batch_size=agent.cfg.batch_size,
                       batch_length=agent.cfg.batch_length, train_ratio=agent.train_ratio)
        emit(BENCHMARK, "ms_per_update", median(update_ms), "ms", **context)
        emit(BENCHMARK, "updates_per_s", 1e3 / median(update_ms), "updates/s", **context)
        emit(BENCHMARK, "act_ms", median(act_ms), "ms", **context)
        emit(BENCHMARK, "ms_per_agent_step_at_ratio", per_step, "ms", **context)


if __name__ == "__main__":
    main()
