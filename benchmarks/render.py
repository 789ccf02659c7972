"""Rendering throughput of a Visual RL task: env steps/s with pixels, and raw ``physics.render`` calls/s.

``env_steps_per_s`` times ``make_env(task, obs="rgb").step``: ``action_repeat`` physics steps, one
``render_size`` x ``render_size`` RGB render, the channels-first transpose and the 3-frame stack, i.e. what
a pixel-based agent pays per agent step (= per frame). ``raw_render_per_s`` times
``physics.render(size, size, camera_id=...)`` alone on the same physics (the adapter's 64x64 offscreen
buffer; shadows on as released, FIDELITY.md D5, or off with ``--no-shadows``). The two are timed in alternating blocks; each figure is the median over blocks.
Resets are not timed. Every line names the OpenGL backend (``MUJOCO_GL`` after the env is created) and,
where it can be read, the GL renderer (e.g. Mesa llvmpipe = software rendering on the CPU).

``--default-physics`` adds ``raw_render_default_per_s``: the same render call on a freshly loaded
dm_control physics with dm_control's default visual settings (640x480 offscreen buffer, shadows on).

    python benchmarks/render.py                                       # cheetah-run-pixels
    python benchmarks/render.py --tasks walker-walk-pixels --steps 400 --repeats 5 --default-physics
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _common import csv_list, emit, log, median, quartiles, torch_threads

BENCHMARK = "render"


def gl_renderer(physics) -> str:
    """The GL_RENDERER string of the physics' context, or 'unknown'."""
    try:
        from OpenGL import GL

        with physics.contexts.gl.make_current() as ctx:
            value = ctx.call(GL.glGetString, GL.GL_RENDERER)
        return value.decode() if isinstance(value, bytes) else str(value)
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unknown ({type(exc).__name__})"


def render_device(renderer: str) -> str:
    """Where frames are rendered: 'cpu' for Mesa's software rasterisers, 'gpu' otherwise."""
    name = renderer.lower()
    if name.startswith("unknown"):
        return "unknown"
    return "cpu" if any(s in name for s in ("llvmpipe", "softpipe", "swrast", "osmesa")) else "gpu"


def time_renders(physics, size: int, camera_id: int, count: int) -> int:
    render = physics.render
    t0 = time.perf_counter_ns()
    for _ in range(count):
        render(size, size, camera_id=camera_id)
    return time.perf_counter_ns() - t0


def bench_task(task: str, steps: int, repeats: int, block: int, seed: int, warmup: int,
               default_physics: bool, shadows: bool = True) -> dict:
    from envs import make_env

    env = make_env(task, seed=seed, obs="rgb", shadows=shadows)
    backend = os.environ.get("MUJOCO_GL", "")
    inner = env.unwrapped
    spec = inner.spec_
    physics = inner.physics
    size, camera = spec.render_size, spec.camera_id
    block = min(block, spec.episode_length)
    blocks_per_repeat = max(1, steps // block)

    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(block, *env.action_space.shape)).astype(np.float32)
    episode_seed = seed
    obs, _ = env.reset(seed=episode_seed)
    in_episode = 0

    def run_env() -> int:
        nonlocal in_episode, episode_seed, obs
        if in_episode + block > spec.episode_length:
            episode_seed += 1
            env.reset(seed=episode_seed)  # untimed
            in_episode = 0
        step = env.step
        t0 = time.perf_counter_ns()
        for a in actions:
            obs = step(a)[0]
        elapsed = time.perf_counter_ns() - t0
        in_episode += block
        return elapsed

    # Warm-up: GL context creation, shader compilation, first frames.
    for _ in range(max(1, warmup // block)):
        run_env()
        time_renders(physics, size, camera, block)

    env_rates, render_rates = [], []
    for r in range(repeats):
        for b in range(blocks_per_repeat):
            if b % 2 == 0:
                te = run_env()
                tr = time_renders(physics, size, camera, block)
            else:
                tr = time_renders(physics, size, camera, block)
                te = run_env()
            env_rates.append(block / (te / 1e9))
            render_rates.append(block / (tr / 1e9))
        log(f"[render] {task} repeat {r + 1}/{repeats}: env {median(env_rates[-blocks_per_repeat:]):.1f} steps/s, "
            f"raw render {median(render_rates[-blocks_per_repeat:]):.1f} renders/s")
    if obs.shape != env.observation_space.shape or obs.dtype != np.uint8:
        raise AssertionError(f"unexpected observation {obs.shape} {obs.dtype}")

    result = {
        "env_rate": median(env_rates), "env_iqr": quartiles(env_rates),
        "render_rate": median(render_rates), "render_iqr": quartiles(render_rates),
        "backend": backend, "renderer": gl_renderer(physics), "spec": spec, "block": block,
        "timed_steps": blocks_per_repeat * block, "obs_shape": list(obs.shape),
    }
    if default_physics:
        from envs.dmcontrol import load_dm_env

        fresh = load_dm_env(spec, seed).physics
        count = max(1, min(block, 50))
        time_renders(fresh, size, camera, count)
        rates = [count / (time_renders(fresh, size, camera, count) / 1e9) for _ in range(repeats)]
        result["default_rate"] = median(rates)
        result["default_iqr"] = quartiles(rates)
    env.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="cheetah-run-pixels",
                        help="comma-separated tasks, rendered with obs='rgb' (cheetah-run = cheetah-run-pixels)")
    parser.add_argument("--steps", type=int, default=200, help="timed env steps (and raw renders) per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block", type=int, default=50, help="env steps / renders per timed block")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-shadows", dest="shadows", action="store_false",
                        help="render without shadows (make_env's shadows=False; not as released)")
    parser.add_argument("--default-physics", action="store_true",
                        help="also time renders with dm_control's default visual settings")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.repeats <= 0 or args.block <= 0:
        parser.error("--steps, --repeats and --block must be positive")

    threads = torch_threads()
    for task in csv_list(args.tasks):
        log(f"[render] {task}: {args.repeats} x {args.steps} env steps and raw renders, blocks of {args.block}")
        res = bench_task(task, args.steps, args.repeats, args.block, args.seed, args.warmup, args.default_physics,
                         args.shadows)
        spec = res["spec"]
        context = {"task": spec.name, "steps": res["timed_steps"], "repeats": args.repeats, "block": res["block"],
                   "device": render_device(res["renderer"]),
                   "torch_threads": threads, "mujoco_gl": res["backend"], "gl_renderer": res["renderer"],
                   "render_size": spec.render_size, "camera_id": spec.camera_id, "frame_stack": spec.frame_stack,
                   "action_repeat": spec.action_repeat, "obs_shape": res["obs_shape"], "shadows": args.shadows,
                   "statistic": "median of per-block figures"}
        q1, q3 = res["env_iqr"]
        emit(BENCHMARK, "env_steps_per_s", round(res["env_rate"], 2), "agent_steps/s", p25=round(q1, 2),
             p75=round(q3, 2), includes="action_repeat physics steps + render + transpose + frame stack",
             **context)
        q1, q3 = res["render_iqr"]
        emit(BENCHMARK, "raw_render_per_s", round(res["render_rate"], 2), "renders/s", p25=round(q1, 2),
             p75=round(q3, 2), includes=("physics.render on the adapter's physics (64x64 buffer, shadows "
                       f"{'on' if args.shadows else 'off'})"),
             **context)
        if "default_rate" in res:
            q1, q3 = res["default_iqr"]
            emit(BENCHMARK, "raw_render_default_per_s", round(res["default_rate"], 2), "renders/s",
                 p25=round(q1, 2), p75=round(q3, 2),
                 includes="physics.render on a fresh dm_control physics (default buffer and shadows)", **context)


if __name__ == "__main__":
    main()
