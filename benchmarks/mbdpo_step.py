"""MBDPO against TD-MPC2 at the same preset, side by side, and MBDPO's act time as T and N grow.

Figures (one JSON line each):
- ``ms_per_update`` / ``act_ms`` for ``mbdpo`` and ``tdmpc2`` and their ``update_ratio`` / ``act_ratio``
  (mbdpo / tdmpc2), timed in alternating repeats in one process (the paper claims comparable training time);
- ``act_ms_vs_T``: one line per diffusion-step count T (the paper: linear in T), with the fitted slope;
- ``act_ms_vs_N``: one line per Monte Carlo sample count N (the paper: nearly flat on GPU; on CPU the
  rollouts are compute-bound, so expect growth).
Both agents use their default configs unless flags say otherwise; buffers hold synthetic episodes.

    python benchmarks/mbdpo_step.py                         # 1.7M preset on CPU
    python benchmarks/mbdpo_step.py --size 6M --device cuda --t-values 5,10,20 --n-values 64,128,256,512
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import csv_list, emit, log, median, torch_task_setup, torch_threads
from sac_updates import fill_buffer

BENCHMARK = "mbdpo_step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1.7M")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--acts", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--t-values", default="5,10,20")
    parser.add_argument("--n-values", default="64,128,256,512")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    torch, device, spec, env = torch_task_setup(args.threads, args.device, args.task)

    from algorithms.common.buffer import ReplayBuffer
    from algorithms.registry import get_algorithm

    obs = env.reset(seed=0)[0]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def build(algo: str, **overrides):
        torch.manual_seed(0)
        module = get_algorithm(algo).load()
        agent = module.Agent(module.Config(model_size=args.size, **overrides), spec, env.observation_space,
                             env.action_space, device)
        buffer = ReplayBuffer(20_000, env.observation_space.shape, env.observation_space.dtype,
                              env.action_space.shape[0], seed=0)
        fill_buffer(buffer, env.observation_space, env.action_space.shape[0], spec.episode_length, 3000,
                    np.random.default_rng(0))
        agent.update(buffer)
        agent.act(obs, eval_mode=False)
        return agent, buffer

    def time_acts(agent, n: int) -> float:
        sync()
        tic = time.perf_counter()
        for _ in range(n):
            agent.act(obs, eval_mode=False)
        sync()
        return (time.perf_counter() - tic) / n * 1e3

    def time_updates(agent, buffer, n: int) -> float:
        sync()
        tic = time.perf_counter()
        for _ in range(n):
            agent.update(buffer)
        sync()
        return (time.perf_counter() - tic) / n * 1e3

    context = dict(task=args.task, model_size=args.size, repeats=args.repeats, device=str(device),
                   torch_threads=torch_threads())
    agents = {algo: build(algo) for algo in ("tdmpc2", "mbdpo")}
    update_ms = {algo: [] for algo in agents}
    act_ms = {algo: [] for algo in agents}
    for r in range(args.repeats):
        for algo in (("tdmpc2", "mbdpo") if r % 2 == 0 else ("mbdpo", "tdmpc2")):
            agent, buffer = agents[algo]
            update_ms[algo].append(time_updates(agent, buffer, args.updates))
            act_ms[algo].append(time_acts(agent, args.acts))
            log(f"{algo} repeat {r}: {update_ms[algo][-1]:.1f} ms/update, {act_ms[algo][-1]:.1f} ms/act")
    for algo in agents:
        emit(BENCHMARK, "ms_per_update", median(update_ms[algo]), "ms", algo=algo, steps=args.updates, **context)
        emit(BENCHMARK, "act_ms", median(act_ms[algo]), "ms", algo=algo, steps=args.acts, **context)
    emit(BENCHMARK, "update_ratio", median(update_ms["mbdpo"]) / median(update_ms["tdmpc2"]), "mbdpo/tdmpc2",
         steps=args.updates, **context)
    emit(BENCHMARK, "act_ratio", median(act_ms["mbdpo"]) / median(act_ms["tdmpc2"]), "mbdpo/tdmpc2",
         steps=args.acts, **context)

    t_values = [int(v) for v in csv_list(args.t_values)]
    t_ms = []
    for t in t_values:
        agent, _ = build("mbdpo", diffusion_steps=t)
        t_ms.append(median([time_acts(agent, args.acts) for _ in range(args.repeats)]))
        emit(BENCHMARK, "act_ms_vs_T", t_ms[-1], "ms", diffusion_steps=t, steps=args.acts, **context)
    if len(t_values) > 1:
        slope, intercept = np.polyfit(t_values, t_ms, 1)
        emit(BENCHMARK, "act_ms_per_diffusion_step", max(float(slope), 1e-9), "ms/T", intercept_ms=float(intercept),
             steps=args.acts, **context)
    for n in [int(v) for v in csv_list(args.n_values)]:
        agent, _ = build("mbdpo", num_samples=n, num_elites=min(64, n // 2), num_pi_trajs=min(24, n // 4))
        emit(BENCHMARK, "act_ms_vs_N", median([time_acts(agent, args.acts) for _ in range(args.repeats)]), "ms",
             num_samples=n, steps=args.acts, **context)


if __name__ == "__main__":
    main()
