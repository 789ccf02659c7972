"""Online agent steps per second: the fast default against the fp32 reference compute path, side by side (issue 17).

For each algorithm (``--algorithms``, default ``tdmpc2,mbdpo``) and preset (``--sizes``, default ``1.7M,6M``) two
agents are built from the same seed on the same synthetic replay buffer: ``reference`` (``agent.precision=fp32
agent.compute=reference``: the compute path of the released code and of the harness before issue 17) and ``fast``
(the defaults, plus ``--fast-overrides``). They are timed in alternating repeats in one process (the order flips
every repeat), so machine noise hits both alike. One online agent step is one ``act`` plus one ``update`` (TD-MPC2's
and MBDPO's update-to-data ratio of 1).

Figures (one JSON line each) per (algorithm, preset): ``act_ms`` and ``update_ms`` per path (medians over repeats),
``steps_per_s`` per path, and ``speedup`` = reference step time / fast step time (median of the per-repeat ratios,
with their quartiles), with ``"goal": 2`` and ``meets_goal``; ``act_speedup`` and ``update_speedup`` split it.

    PYTHONPATH=. python benchmarks/speed.py
    PYTHONPATH=. python benchmarks/speed.py --sizes 6M --algorithms mbdpo --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from _common import csv_list, emit, log, median, quartiles, torch_task_setup, torch_threads
from sac_updates import fill_buffer

BENCHMARK = "speed"
REFERENCE = {"precision": "fp32", "compute": "reference"}
GOAL = 2.0


def parse_overrides(text: str) -> dict[str, object]:
    """``key=value,key=value`` with YAML values (``num_samples=128`` is an int)."""
    import yaml

    out = {}
    for item in csv_list(text):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"overrides: {item!r} is not key=value")
        out[key.strip()] = yaml.safe_load(value.strip())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="tdmpc2,mbdpo")
    parser.add_argument("--sizes", default="1.7M,6M")
    parser.add_argument("--task", default="cartpole-balance")
    parser.add_argument("--acts", type=int, default=3, help="timed act calls per repeat and path")
    parser.add_argument("--updates", type=int, default=3, help="timed update calls per repeat and path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--fast-overrides", default="", help="agent keys for the fast side, e.g. precision=fp32")
    parser.add_argument("--agent-overrides", default="",
                        help="agent keys for both sides, e.g. num_samples=128 (keys an algorithm lacks are skipped)")
    args = parser.parse_args()

    torch, device, spec, env = torch_task_setup(args.threads, args.device, args.task)
    from algorithms.common.buffer import ReplayBuffer
    from algorithms.common.config import apply_values
    from algorithms.registry import get_algorithm

    obs = env.reset(seed=0)[0]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    both, fast_only = parse_overrides(args.agent_overrides), parse_overrides(args.fast_overrides)
    buffer = ReplayBuffer(20_000, env.observation_space.shape, env.observation_space.dtype, env.action_space.shape[0],
                          seed=0)
    fill_buffer(buffer, env.observation_space, env.action_space.shape[0], spec.episode_length, 3000,
                np.random.default_rng(0))

    def build(algo: str, size: str, overrides: dict[str, str]):
        torch.manual_seed(0)
        module = get_algorithm(algo).load()
        cfg = module.Config(model_size=size)
        known = {f.name for f in dataclasses.fields(cfg)}  # --agent-overrides may name another algorithm's keys
        apply_values(cfg, {k: v for k, v in {**both, **overrides}.items() if k in known})
        agent = module.Agent(cfg, spec, env.observation_space, env.action_space, device)
        agent.update(buffer)  # warm-up: first-call allocations and oneDNN kernel selection
        agent.act(obs, eval_mode=False)
        return agent

    def timed(fn, n: int) -> float:
        sync()
        tic = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        return (time.perf_counter() - tic) / n * 1e3

    for algo in csv_list(args.algorithms):
        for size in csv_list(args.sizes):
            agents = {"reference": build(algo, size, REFERENCE), "fast": build(algo, size, fast_only)}
            precision = {path: agent.precision for path, agent in agents.items()}
            act = {path: [] for path in agents}
            update = {path: [] for path in agents}
            for r in range(args.repeats):
                for path in (("reference", "fast") if r % 2 == 0 else ("fast", "reference")):
                    agent = agents[path]
                    update[path].append(timed(lambda: agent.update(buffer), args.updates))
                    act[path].append(timed(lambda: agent.act(obs, eval_mode=False), args.acts))
                    log(f"{algo} {size} {path} repeat {r}: {act[path][-1]:.1f} ms/act, "
                        f"{update[path][-1]:.1f} ms/update")
            context = dict(task=args.task, algo=algo, model_size=size, repeats=args.repeats, device=str(device),
                           torch_threads=torch_threads())
            for path in agents:
                path_context = dict(path=path, precision=precision[path], **context)
                emit(BENCHMARK, "act_ms", median(act[path]), "ms", steps=args.acts, **path_context)
                emit(BENCHMARK, "update_ms", median(update[path]), "ms", steps=args.updates, **path_context)
                emit(BENCHMARK, "steps_per_s", 1e3 / (median(act[path]) + median(update[path])), "agent steps/s",
                     steps=args.acts, **path_context)
            per_repeat = [(a_ref + u_ref) / (a_fast + u_fast) for a_ref, u_ref, a_fast, u_fast
                          in zip(act["reference"], update["reference"], act["fast"], update["fast"])]
            p25, p75 = quartiles(per_repeat)
            speedup = median(per_repeat)
            emit(BENCHMARK, "speedup", speedup, "reference/fast", steps=args.acts, p25=p25, p75=p75, goal=GOAL,
                 meets_goal=speedup >= GOAL, fast_overrides=fast_only, **context)
            emit(BENCHMARK, "act_speedup", median([a / b for a, b in zip(act["reference"], act["fast"])]),
                 "reference/fast", steps=args.acts, **context)
            emit(BENCHMARK, "update_speedup", median([a / b for a, b in zip(update["reference"], update["fast"])]),
                 "reference/fast", steps=args.updates, **context)


if __name__ == "__main__":
    main()
