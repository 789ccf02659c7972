"""``mbdpo-bench check-algorithm NAME``: the agent contract (algorithms/README.md) checked item by item.

Each item passes or fails with one line saying why; an item whose prerequisite failed is not run (and counts as
failed). The items, cheapest first:

* ``builds``: the config (defaults < overrides) validates and the Agent is built for the task;
* ``act shape and range``: ``act`` returns a finite float array of the action space's shape in [-1, 1], in both
  modes;
* ``eval-mode determinism``: the same observation, agent state and RNG state give the same eval-mode action;
* ``state_dict round trip``: an agent given another's ``state_dict`` (through ``torch.save``, as a checkpoint is)
  returns the same state, the same next actions, the same next update and the same weights after it;
* ``finite metrics``: ``update`` returns finite numbers by name and leaves every weight finite (also in the run);
* ``resume bit for bit``: a short run through the real life cycle (``train``), copied, cut back to a middle
  checkpoint as a kill leaves it and resumed, ends with the same logs (wall time aside) and final checkpoint
  (agent, counters, replay buffer, RNG states) as the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from algorithms.common.buffer import ReplayBuffer
from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import ConfigError
from algorithms.common.configure import build_config, pin_machine_defaults
from algorithms.common.device import resolve_device
from algorithms.common.runfolder import run_dir_for
from algorithms.common.seeding import rng_state, seed_everything, set_rng_state
from algorithms.registry import get_algorithm
from envs import make_env
from envs.registry import get_task

ITEMS = ("builds", "act shape and range", "eval-mode determinism", "state_dict round trip", "finite metrics",
         "resume bit for bit")
UPDATES = 3
"""Updates before the round trip: enough for an optimiser to hold moments a fresh one lacks."""
WALL_TIME_COLUMNS = {"wall_time_s", "env_steps_per_s", "update_ms", "act_ms", "updates_per_s", "sample_ms"}
"""Log columns that measure time: the only ones a resumed run may change."""


@dataclass
class Item:
    name: str
    passed: bool | None  # None: not run, an item it needs failed
    detail: str

    def line(self) -> str:
        label = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        return f"{label}  {self.name:<22}  {self.detail}"


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two nested states (dicts, lists, tensors, arrays, numbers) differ, as a dotted path, or None."""
    where = path or "<top>"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where} (keys {sorted(map(str, set(a) ^ set(b)))} in one only)"
        for key in a:
            found = first_difference(a[key], b[key], f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu())
        return None if same else where
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return None if a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f") else where
    if type(a) is not type(b):
        return f"{where} ({type(a).__name__} vs {type(b).__name__})"
    try:
        return None if a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)) else where
    except Exception:  # noqa: BLE001 — an object without a usable ==: compared by its text
        return None if repr(a) == repr(b) else where


def random_buffer(env, agent, seed: int) -> ReplayBuffer:
    """One finished episode of uniform random actions (enough for an update of any horizon shorter than it)."""
    space = env.observation_space
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    episode_length = getattr(agent.spec, "episode_length", 1000)
    buffer = ReplayBuffer(episode_length + 2, space.shape, space.dtype, env.action_space.shape[0], seed=seed,
                          include_open_episode=agent.replay_open_episode)
    buffer.add_first(obs)
    done = False
    while not done:
        action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(action, float(reward), bool(terminated), obs)
        done = terminated or truncated
    buffer.end_episode()
    return buffer


def copy_buffer(buffer: ReplayBuffer) -> ReplayBuffer:
    """A buffer with the same data and sampler state (what two agents compared must be fed)."""
    clone = ReplayBuffer(buffer.capacity, buffer.obs.shape[1:], buffer.obs.dtype, buffer.action.shape[1], seed=0,
                         include_open_episode=buffer.include_open_episode)
    clone.load_state_dict(buffer.state_dict())
    return clone


def action_problem(action: Any, shape: tuple[int, ...]) -> str | None:
    if not isinstance(action, np.ndarray):
        return f"returned {type(action).__name__}, not a numpy array"
    if action.shape != shape:
        return f"returned shape {action.shape}, the action space's is {shape}"
    if action.dtype.kind != "f":
        return f"returned dtype {action.dtype}, not floating point"
    if not np.isfinite(action).all():
        return "returned a non-finite action"
    if action.min() < -1.0 or action.max() > 1.0:
        return f"returned an action outside [-1, 1] (min {action.min():.4g}, max {action.max():.4g})"
    return None


def metric_problem(metrics: Any) -> str | None:
    if not isinstance(metrics, dict):
        return f"update returned {type(metrics).__name__}, not a dict of metrics by name"
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"metric {name!r} is {type(value).__name__}, not a number"
        if not math.isfinite(number):
            return f"metric {name!r} = {number}"
    return None


def non_finite_weight(agent) -> str | None:
    return next((name for name, t in agent.named_tensors() if not bool(torch.isfinite(t).all())), None)


def saved_and_loaded(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` through torch.save and torch.load, as a checkpoint takes it."""
    data = io.BytesIO()
    torch.save(state, data)
    data.seek(0)
    return torch.load(data, map_location="cpu", weights_only=False)


class Checker:
    """The unit items on one agent built for the task, with the run's config; then the resume item."""

    def __init__(self, name: str, task: str, overrides: dict[str, str], device: str, seed: int):
        self.name, self.seed = name, seed
        self.overrides = {"task": task, "device": device, "seed": str(seed), "progress": "false", **overrides}
        self.module = get_algorithm(name).load()  # a broken plug-in: ConfigError naming its package (exit 2)

    def build(self) -> str:
        self.cfg = build_config(self.name, None, dict(self.overrides))
        pin_machine_defaults(self.cfg)
        self.spec = get_task(self.cfg.task, self.cfg.obs)
        self.env = make_env(self.cfg.task, seed=self.seed, obs=self.cfg.obs, shadows=self.cfg.render_shadows)
        self.device = resolve_device(self.cfg.device)
        self.agent = self.new_agent(11)
        self.buffer = random_buffer(self.env, self.agent, self.seed)
        self.observations = [self.buffer.obs[i] for i in range(0, min(len(self.buffer), 50), 10)]
        return f"{type(self.agent).__module__}.Agent on {self.spec.name} ({self.device})"

    def new_agent(self, torch_seed: int):
        seed_everything(torch_seed)  # two agents built under different seeds start from different weights
        return self.module.Agent(self.cfg.agent, self.spec, self.env.observation_space, self.env.action_space,
                                 self.device)

    def act_shape_and_range(self) -> str:
        for eval_mode in (True, False):
            self.agent.reset()
            for obs in self.observations:
                problem = action_problem(self.agent.act(obs, eval_mode=eval_mode), self.env.action_space.shape)
                if problem:
                    raise AssertionError(f"act(eval_mode={eval_mode}) {problem}")
        return f"shape {self.env.action_space.shape}, in [-1, 1], both modes"

    def determinism(self) -> str:
        obs, state = self.observations[-1], rng_state()
        actions = []
        for reseed in (False, False, True):
            if reseed:
                seed_everything(12345)
            else:
                set_rng_state(state)
            self.agent.reset()
            actions.append(self.agent.act(obs, eval_mode=True))
        if not np.array_equal(actions[0], actions[1]):
            raise AssertionError("act(obs, eval_mode=True) differs between two calls from the same agent and RNG "
                                 "state (after reset())")
        if np.array_equal(actions[0], actions[2]):
            return "same action from the same state; independent of the global RNG"
        return ("same action from the same state and RNG state (it draws on the global RNG in eval mode, which "
                "checkpoints carry)")

    def round_trip(self) -> str:
        first, buffer_a = self.agent, copy_buffer(self.buffer)
        self.update_metrics = [first.update(buffer_a) for _ in range(UPDATES)]
        for metrics in self.update_metrics:
            problem = metric_problem(metrics)
            if problem:
                raise AssertionError(f"cannot compare updates: {problem}")
        second, buffer_b = self.new_agent(12), copy_buffer(buffer_a)
        second.load_state_dict(saved_and_loaded(first.state_dict()))
        where = first_difference(first.state_dict(), second.state_dict())
        if where:
            raise AssertionError(f"load_state_dict(state_dict()) gives another state_dict, at {where}")
        obs, state, outcomes = self.observations[-1], rng_state(), []
        for agent, buffer in ((first, buffer_a), (second, buffer_b)):
            set_rng_state(state)
            agent.reset()
            outcome = {"the eval-mode actions": agent.act(obs, eval_mode=True),
                       "the training-mode actions": agent.act(obs, eval_mode=False),
                       "the next update's metrics": agent.update(buffer)}
            outcome["the actions after that update"] = agent.act(obs, eval_mode=True)
            outcome["the weights after that update"] = {n: t.detach().clone() for n, t in agent.named_tensors()}
            outcome["the state_dicts after that update"] = saved_and_loaded(agent.state_dict())
            outcomes.append(outcome)
        for key in outcomes[0]:
            where = first_difference(outcomes[0][key], outcomes[1][key])
            if where:
                at = "" if where == "<top>" else f" (at {where})"
                raise AssertionError(f"after load_state_dict(state_dict()), {key} differ{at}: the state_dict "
                                     "misses something the agent uses (e.g. optimiser moments, a counter, an RNG)")
        return f"same state, actions, update and weights after {UPDATES} updates and a load"

    def finite(self) -> str:
        for metrics in self.update_metrics:
            problem = metric_problem(metrics)
            if problem:
                raise AssertionError(problem)
        name = non_finite_weight(self.agent)
        if name:
            raise AssertionError(f"weight {name!r} is not finite after {UPDATES + 1} updates")
        keys = sorted(self.update_metrics[-1])
        return f"{len(keys)} metric(s) ({', '.join(keys[:6])}{', …' if len(keys) > 6 else ''}) and all weights"


def run_overrides(spec, steps: int | None, user: dict[str, str]) -> tuple[dict[str, str], int]:
    """The short run: two episodes by default, an evaluation (1 episode) and a checkpoint after each, updates from
    a fifth of the first episode on, so that the resumed half trains."""
    episode = spec.episode_length * spec.action_repeat
    total = steps or 2 * episode
    defaults = {"steps": str(total), "eval_every": str(episode), "checkpoint_every": str(episode),
                "keep_checkpoints": "1000", "eval_episodes": "1", "seed_steps": str(max(1, spec.episode_length // 5)),
                "log_every": str(max(episode // 2, 1)), "buffer_size": str(total // spec.action_repeat + 2 * episode)}
    return {**defaults, **user}, total


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in WALL_TIME_COLUMNS} for row in csv.DictReader(handle)]


def compare_runs(reference: Path, resumed: Path) -> str | None:
    """What differs between two run folders (logs, wall time aside; the final checkpoints' state), or None."""
    for log in ("eval.csv", "episodes.csv", "train.csv"):
        a, b = read_rows(reference / log), read_rows(resumed / log)
        if a != b:
            row = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return f"{log} differs from row {row + 1}"
    ours, theirs = (CheckpointManager(run / "checkpoints").checkpoints()[0] for run in (reference, resumed))
    if ours.name != theirs.name:
        return f"the final checkpoints differ: {ours.name} vs {theirs.name}"
    a, b = CheckpointManager.load(ours), CheckpointManager.load(theirs)
    keys = [k for k in a if k not in ("logs", "timing", "wall_time_s", "config")]  # wall time and paths differ
    where = first_difference({k: a[k] for k in keys}, {k: b.get(k) for k in keys})
    return f"the final checkpoint differs at {where}" if where else None


def resume_check(checker: Checker, steps: int | None, user: dict[str, str], work: Path, log: Path) -> str:
    overrides, total = run_overrides(checker.spec, steps, {**checker.overrides, **user})
    from algorithms.common.run import train

    with open(log, "a") as stream, contextlib.redirect_stderr(stream):
        reference_cfg = build_config(checker.name, None, {**overrides, "results_dir": str(work / "reference")})
        reference = train(reference_cfg)
        checkpoints = CheckpointManager(reference / "checkpoints").checkpoints()  # newest first
        if len(checkpoints) < 2:
            raise AssertionError(f"the {total}-step run wrote {len(checkpoints)} checkpoint(s); a resume needs one "
                                 "before the end (raise --steps or lower checkpoint_every)")
        middle = checkpoints[len(checkpoints) // 2]
        resumed_cfg = build_config(checker.name, None, {**overrides, "results_dir": str(work / "resumed")})
        resumed = run_dir_for(resumed_cfg)
        shutil.copytree(reference, resumed)
        for path in (resumed / "checkpoints").glob("step_*"):  # as a kill after the middle checkpoint leaves it
            if path.stem > middle.stem:
                path.unlink()
        info = json.loads((resumed / "run.json").read_text())
        (resumed / "run.json").write_text(json.dumps({**info, "status": "running"}))
        stream.flush()
        before = log.stat().st_size
        train(resumed_cfg)
    said = log.read_text()[before:]
    if "resuming from" not in said:
        raise AssertionError(f"the cut run did not resume from {middle.name} (see {log})")
    difference = compare_runs(reference, resumed)
    if difference:
        raise AssertionError(f"resumed from {middle.name}: {difference}")
    return f"{total}-step run resumed from {middle.name}: same logs and final checkpoint"


def check_algorithm(name: str, task: str = "cartpole-balance", overrides: dict[str, str] | None = None,
                    steps: int | None = None, device: str = "cpu", seed: int = 1, workdir: str | Path | None = None,
                    report: Callable[[Item], None] | None = None) -> list[Item]:
    """Run every item of :data:`ITEMS` on algorithm ``name`` (``overrides``: ``key=value`` config overrides for the
    agent and the run); ``report(item)`` is called as each finishes. ConfigError if ``name`` is unknown or a
    plug-in that cannot be loaded. The short run's files are left in ``workdir`` (a temporary folder otherwise,
    removed when every item passed)."""
    overrides = dict(overrides or {})
    checker = Checker(name, task, overrides, device, seed)
    temporary = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix=f"check-{name}-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "stderr.log"
    log.touch()
    steps_of = [("builds", checker.build), ("act shape and range", checker.act_shape_and_range),
                ("eval-mode determinism", checker.determinism), ("state_dict round trip", checker.round_trip),
                ("finite metrics", checker.finite),
                ("resume bit for bit", lambda: resume_check(checker, steps, overrides, work, log))]
    needs = {"act shape and range": "builds", "eval-mode determinism": "builds", "state_dict round trip": "builds",
             "finite metrics": "state_dict round trip", "resume bit for bit": "builds"}
    items: dict[str, Item] = {}
    for item_name, run in steps_of:
        need = needs.get(item_name)
        if need is not None and not items[need].passed and not (item_name == "finite metrics"
                                                                and hasattr(checker, "update_metrics")):
            item = Item(item_name, None, f"not run: {need!r} failed")
        else:
            try:
                item = Item(item_name, True, run())
            except AssertionError as err:
                item = Item(item_name, False, str(err))
            except Exception as err:  # noqa: BLE001 — the agent's own failure is this item's result
                text = " ".join(str(err).split())
                item = Item(item_name, False, f"{type(err).__name__}: {text}" if not isinstance(err, ConfigError)
                            else text)
        items[item_name] = item
        if report is not None:
            report(item)
    if temporary and all(i.passed for i in items.values()):
        shutil.rmtree(work, ignore_errors=True)
    return list(items.values())
