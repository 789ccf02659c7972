"""Cost of our env adapters per agent step against the raw simulator step doing the same work, one task per suite.

For each task, two copies of the environment are created with the same seed. DMControl: ``make_env(task)`` (our
``DMControlEnv``: action rescaling, action repeat, reward sum, episode limit, flat float32 observation) against the
raw ``dm_env`` of a second copy, stepped ``action_repeat`` times per agent step with the same (pre-rescaled)
actions; their physics state is checked equal after every block. MetaWorld, MyoSuite (and ManiSkill2 where a
Vulkan GPU exists): our adapter's ``step`` against the suite env's own ``step`` called ``action_repeat`` times on a
second copy reset through the adapter with the same seed; their observations are checked equal after every block.
Tasks that cannot run on the machine are skipped with the reason on stderr (no figure).

The two are timed side by side in alternating blocks of ``--block`` agent steps (the order flips from one
block to the next), so that machine noise hits both alike; the headline is the median over all blocks of
the per-block ratio wrapper/raw. Resets are never timed: both copies are reset together, between blocks,
before a block would cross the episode limit.

    python benchmarks/env_step.py                       # cartpole-balance, mw-assembly, myo-reach, lift-cube
    python benchmarks/env_step.py --tasks walker-walk,cheetah-run --steps 4000 --repeats 5
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from _common import csv_list, emit, log, median, quartiles, torch_threads

BENCHMARK = "env_step"
GOAL_RATIO = 1.05


def seeded_reset(dm_env, seed: int) -> None:
    """What ``DMControlEnv.reset(seed=...)`` does to its dm_env, applied to the raw copy."""
    dm_env.task._random = np.random.RandomState(seed)
    dm_env.reset()


def time_side_by_side(task: str, run_wrapper, run_raw, actions: np.ndarray, raw_actions: np.ndarray,
                      reset_both, same_work, episode: int, block: int, blocks_per_repeat: int, repeats: int,
                      warmup: int, seed: int) -> dict:
    """Time ``run_wrapper`` and ``run_raw`` (each runs one block of actions, returns ns) in alternating order,
    resetting both copies with ``reset_both(seed)`` before a block would cross the episode limit, and checking
    ``same_work()`` after every block. Returns the per-block medians and ratios."""
    episode_seed, in_episode = seed, 0
    reset_both(episode_seed)

    def maybe_reset() -> None:
        nonlocal in_episode, episode_seed
        if in_episode + block > episode:
            episode_seed += 1
            reset_both(episode_seed)
            in_episode = 0

    # Warm-up (untimed): caches, lazily built simulator objects, CPU frequency.
    for _ in range(max(1, warmup // block)):
        maybe_reset()
        run_wrapper(actions[-1])
        run_raw(raw_actions[-1])
        in_episode += block

    wrapper_us, raw_us, ratios, repeat_ratios = [], [], [], []
    for r in range(repeats):
        w_total = r_total = 0
        for b in range(blocks_per_repeat):
            i = r * blocks_per_repeat + b
            maybe_reset()
            if i % 2 == 0:
                tw, tr = run_wrapper(actions[i]), run_raw(raw_actions[i])
            else:
                tr, tw = run_raw(raw_actions[i]), run_wrapper(actions[i])
            in_episode += block
            if not same_work():
                raise AssertionError(f"{task}: wrapper and raw copies diverged: not the same simulator work")
            wrapper_us.append(tw / 1e3 / block)
            raw_us.append(tr / 1e3 / block)
            ratios.append(tw / tr)
            w_total += tw
            r_total += tr
        repeat_ratios.append(w_total / r_total)
        log(f"[env_step] {task} repeat {r + 1}/{repeats}: wrapper {w_total / 1e3 / (blocks_per_repeat * block):.1f} "
            f"us/step, raw {r_total / 1e3 / (blocks_per_repeat * block):.1f} us/step, ratio {w_total / r_total:.3f}")
    return {
        "wrapper_us": median(wrapper_us), "raw_us": median(raw_us), "ratio": median(ratios),
        "ratio_iqr": quartiles(ratios), "repeat_ratios": [round(x, 4) for x in repeat_ratios],
        "block": block, "blocks": blocks_per_repeat * repeats, "timed_steps": blocks_per_repeat * block,
    }


def bench_task(task: str, steps: int, repeats: int, block: int, seed: int, warmup: int) -> dict:
    from envs import make_env

    env = make_env(task, seed=seed)
    wrapper = env.unwrapped
    spec = wrapper.spec_
    raw = make_env(task, seed=seed).unwrapped.dm_env
    repeat = spec.action_repeat

    # Agent steps per episode: the registry's limit, or dm_control's own time limit if that comes first.
    step_limit = getattr(raw, "_step_limit", math.inf)
    episode = spec.episode_length if math.isinf(step_limit) else min(spec.episode_length,
                                                                      int(step_limit) // repeat)
    block = min(block, episode)
    blocks_per_repeat = max(1, steps // block)
    total_blocks = blocks_per_repeat * repeats

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(total_blocks + 1, block, *env.action_space.shape)).astype(np.float32)
    # The same rescaling DMControlEnv.step does, done ahead of time for the raw side.
    dm_actions = wrapper._action_low + (actions.astype(np.float64) + 1.0) * wrapper._action_scale

    def run_wrapper(acts) -> int:
        step = env.step
        t0 = time.perf_counter_ns()
        for a in acts:
            step(a)
        return time.perf_counter_ns() - t0

    def run_raw(acts) -> int:
        step = raw.step
        t0 = time.perf_counter_ns()
        for a in acts:
            for _ in range(repeat):
                step(a)
        return time.perf_counter_ns() - t0

    def reset_both(episode_seed: int) -> None:
        env.reset(seed=episode_seed)
        seeded_reset(raw, episode_seed)

    result = time_side_by_side(
        task, run_wrapper, run_raw, actions, dm_actions, reset_both,
        lambda: np.array_equal(wrapper.physics.data.qpos, raw.physics.data.qpos),
        episode, block, blocks_per_repeat, repeats, warmup, seed)
    env.close()
    raw.close()
    return {**result, "action_repeat": repeat}


def bench_adapter_task(task: str, steps: int, repeats: int, block: int, seed: int, warmup: int) -> dict:
    """MetaWorld / MyoSuite / ManiSkill2: our adapter's ``step`` against the suite env's own ``step`` called
    ``action_repeat`` times, on two copies kept in lockstep (both reset through the adapter with the same seed)."""
    from envs import make_env

    env, other = make_env(task, seed=seed), make_env(task, seed=seed)
    spec = env.unwrapped.spec_
    raw = other.unwrapped.raw_env
    repeat, episode = spec.action_repeat, spec.episode_length
    block = min(block, episode)
    blocks_per_repeat = max(1, steps // block)
    total_blocks = blocks_per_repeat * repeats
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(total_blocks + 1, block, *env.action_space.shape)).astype(np.float32)
    raw_actions = actions.astype(np.float64)  # the adapter clips (a no-op here) and passes float64 on
    last = {}

    def run_wrapper(acts) -> int:
        step = env.step
        t0 = time.perf_counter_ns()
        for a in acts:
            out = step(a)
        t = time.perf_counter_ns() - t0
        last["wrapper"] = out[0]
        return t

    def run_raw(acts) -> int:
        step = raw.step
        t0 = time.perf_counter_ns()
        for a in acts:
            for _ in range(repeat):
                out = step(a)
        t = time.perf_counter_ns() - t0
        last["raw"] = np.asarray(out[0], dtype=np.float32)
        return t

    def reset_both(episode_seed: int) -> None:
        env.reset(seed=episode_seed)
        other.reset(seed=episode_seed)

    result = time_side_by_side(task, run_wrapper, run_raw, actions, raw_actions, reset_both,
                               lambda: np.array_equal(last["wrapper"], last["raw"]),
                               episode, block, blocks_per_repeat, repeats, warmup, seed)
    return {**result, "action_repeat": repeat}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="cartpole-balance,mw-assembly,myo-reach,lift-cube",
                        help="comma-separated state tasks (one per suite by default; ManiSkill2 only with a Vulkan GPU)")
    parser.add_argument("--steps", type=int, default=3000, help="timed agent steps per side per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=int, default=100, help="agent steps per timed block")
    parser.add_argument("--warmup", type=int, default=200, help="untimed agent steps per side first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.repeats <= 0 or args.block <= 0:
        parser.error("--steps, --repeats and --block must be positive")

    from envs import availability, get_task

    threads = torch_threads()
    for task in csv_list(args.tasks):
        spec = get_task(task)
        ok, reason = availability(spec)
        if not ok:  # e.g. ManiSkill2 without a Vulkan GPU: no figure rather than a wrong one
            log(f"[env_step] {task}: skipped, cannot run here: {reason}")
            continue
        log(f"[env_step] {task}: {args.repeats} x {args.steps} agent steps per side, blocks of {args.block}")
        bench = bench_task if spec.suite == "dmcontrol" else bench_adapter_task
        res = bench(task, args.steps, args.repeats, args.block, args.seed, args.warmup)
        context = {"task": task, "suite": spec.suite, "steps": res["timed_steps"], "repeats": args.repeats, "block": res["block"],
                   "blocks": res["blocks"], "action_repeat": res["action_repeat"], "device": "cpu",
                   "torch_threads": threads, "statistic": "median of per-block figures"}
        emit(BENCHMARK, "wrapper_us_per_step", round(res["wrapper_us"], 2), "us/agent_step", **context)
        emit(BENCHMARK, "raw_us_per_step", round(res["raw_us"], 2), "us/agent_step", **context)
        q1, q3 = res["ratio_iqr"]
        emit(BENCHMARK, "ratio", round(res["ratio"], 4), "wrapper/raw", goal=GOAL_RATIO,
             meets_goal=bool(res["ratio"] <= GOAL_RATIO), overhead_us=round(res["wrapper_us"] - res["raw_us"], 2),
             ratio_p25=round(q1, 4), ratio_p75=round(q3, 4), repeat_ratios=res["repeat_ratios"], **context)


if __name__ == "__main__":
    main()
