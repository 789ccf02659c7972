"""SAC gradient updates per second on a filled replay buffer, and the cost of one ``act`` call.

The agent is ``algorithms.sac.agent.Agent`` with the default ``Config`` (256x256 MLPs, batch 256, one actor
update per critic update) on state ``cartpole-balance``; ``--pixels`` adds the pixel variant (conv encoder,
9x64x64 frame stacks) on ``cheetah-run`` rgb with fewer updates. The buffer is filled with synthetic
episodes of the task's shapes and length (the update cost does not depend on the values), so no
simulator or renderer runs. Each ``update`` samples its batch from the buffer, so the figures include
sampling. ``updates_per_s`` and ``ms_per_update`` are medians over ``--repeats`` runs of ``--updates``
updates; ``act_ms`` is the median time of one stochastic ``act`` call (batch 1, as in data collection).

    python benchmarks/sac_updates.py                                   # state, cpu unless cuda
    python benchmarks/sac_updates.py --pixels --pixel-updates 10 --threads 2 --omp-wait-policy passive

Threads: the default is 1 thread. torch's default (``--threads 0``: one per core) makes OpenMP threads spin
at every barrier; on a small shared machine whose cores are busy with other work, a spinning thread waits
for a descheduled partner and updates get 10-50x slower and erratic. ``--omp-wait-policy passive`` cures that.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

from _common import emit, log, median, quartiles

BENCHMARK = "sac_updates"


def fill_buffer(buffer, obs_space, action_dim: int, episode_length: int, transitions: int,
                rng: np.random.Generator) -> None:
    """Synthetic episodes: random observations of the space's dtype and shape, random actions, rewards."""

    def observation() -> np.ndarray:
        if obs_space.dtype == np.uint8:
            return rng.integers(0, 256, size=obs_space.shape, dtype=np.uint8)
        return rng.standard_normal(obs_space.shape).astype(obs_space.dtype)

    added = 0
    while added < transitions:
        buffer.add_first(observation())
        for _ in range(min(episode_length, transitions - added)):
            action = rng.uniform(-1, 1, action_dim).astype(np.float32)
            buffer.add(action, float(rng.uniform()), False, observation())
            added += 1


def bench_variant(task: str, obs: str, updates: int, repeats: int, warmup: int, buffer_size: int,
                  act_calls: int, device, overrides: dict, seed: int) -> dict:
    import torch

    from algorithms.common.buffer import ReplayBuffer
    from algorithms.sac.agent import Agent, Config
    from envs import get_task, make_env

    spec = get_task(task, obs)
    env = make_env(task, seed=seed, obs=obs)  # only for its spaces: nothing is stepped or rendered
    obs_space, action_space = env.observation_space, env.action_space
    cfg = dataclasses.replace(Config(), **overrides)
    cfg.validate()
    torch.manual_seed(seed)
    agent = Agent(cfg, spec, obs_space, action_space, device)
    buffer = ReplayBuffer(buffer_size + buffer_size // spec.episode_length + 2, obs_space.shape, obs_space.dtype,
                          action_space.shape[0], seed)
    rng = np.random.default_rng(seed)
    log(f"[sac_updates] {spec.name}: filling the buffer with {buffer_size} synthetic transitions")
    fill_buffer(buffer, obs_space, action_space.shape[0], spec.episode_length, buffer_size, rng)
    env.close()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        agent.update(buffer)
    sync()
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(updates):
            metrics = agent.update(buffer)
        sync()
        elapsed = (time.perf_counter_ns() - t0) / 1e9
        rates.append(updates / elapsed)
        log(f"[sac_updates] {spec.name} repeat {r + 1}/{repeats}: {rates[-1]:.2f} updates/s")
    if not all(np.isfinite(v) for v in metrics.values()):
        raise AssertionError(f"non-finite SAC metrics: {metrics}")

    observation = buffer.obs[0]
    agent.act(observation, eval_mode=False)
    act_ms = []
    for _ in range(act_calls):
        t0 = time.perf_counter_ns()
        action = agent.act(observation, eval_mode=False)
        act_ms.append((time.perf_counter_ns() - t0) / 1e6)
    if action.shape != action_space.shape:
        raise AssertionError(f"act returned shape {action.shape}")
    return {"spec": spec, "cfg": cfg, "rates": rates, "act_ms": act_ms}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="cartpole-balance", help="state task")
    parser.add_argument("--updates", "--steps", dest="updates", type=int, default=150,
                        help="timed updates per repeat (state)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="untimed updates first")
    parser.add_argument("--buffer", type=int, default=10_000, help="transitions in the buffer (state)")
    parser.add_argument("--act-calls", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=None, help="override Config.batch_size")
    parser.add_argument("--hidden-dim", type=int, default=None, help="override Config.hidden_dim")
    parser.add_argument("--pixels", action="store_true", help="also measure the pixel encoder variant")
    parser.add_argument("--pixel-task", default="cheetah-run")
    parser.add_argument("--pixel-updates", type=int, default=4, help="timed updates per repeat (pixels)")
    parser.add_argument("--pixel-buffer", type=int, default=2_000, help="transitions in the buffer (pixels)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1); 0 keeps torch's default (one per core)")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active"), default=None,
                        help="set OMP_WAIT_POLICY before torch starts (passive: idle OpenMP threads sleep "
                             "instead of spinning, which matters on a loaded machine)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.updates, args.repeats, args.buffer, args.act_calls, args.pixel_updates, args.pixel_buffer) <= 0:
        parser.error("sizes must be positive")

    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # read once, when OpenMP starts
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("hidden_dim", args.hidden_dim))
                 if v is not None}

    variants = [(args.task, "state", args.updates, args.buffer)]
    if args.pixels:
        variants.append((args.pixel_task, "rgb", args.pixel_updates, args.pixel_buffer))
    for task, obs, updates, buffer_size in variants:
        warmup = args.warmup if obs == "state" else min(args.warmup, 2)
        act_calls = args.act_calls if obs == "state" else max(1, args.act_calls // 4)
        res = bench_variant(task, obs, updates, args.repeats, warmup, buffer_size, act_calls, device, overrides,
                            args.seed)
        cfg = res["cfg"]
        context = {"task": res["spec"].name, "obs": obs, "steps": updates, "repeats": args.repeats,
                   "device": str(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                   "batch_size": cfg.batch_size, "hidden_dim": cfg.hidden_dim, "num_layers": cfg.num_layers,
                   "buffer_transitions": buffer_size, "statistic": "median over repeats"}
        rates = res["rates"]
        q1, q3 = quartiles(rates)
        emit(BENCHMARK, "updates_per_s", round(median(rates), 3), "updates/s", p25=round(q1, 3),
             p75=round(q3, 3), **context)
        emit(BENCHMARK, "ms_per_update", round(1e3 / median(rates), 3), "ms/update", **context)
        q1, q3 = quartiles(res["act_ms"])
        emit(BENCHMARK, "act_ms", round(median(res["act_ms"]), 4), "ms/act", p25=round(q1, 4), p75=round(q3, 4),
             **{**context, "steps": len(res["act_ms"]), "statistic": "median over act calls (batch 1)"})


if __name__ == "__main__":
    main()
