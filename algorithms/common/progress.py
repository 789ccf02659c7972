"""What a run is doing and what it costs, from its first step (issue 18, "First contact").

A run goes through named phases: ``seeding`` (random actions), ``pretraining`` (TD-MPC2/MBDPO's N updates on the
seed data), ``training``, ``evaluating`` (k/N episodes; offline: task k/n, then its k/N episodes), offline
``updating``. :class:`Progress` reports each one with its rate and ETA: on a terminal as tqdm bars (a second bar for
a phase with its own count, so the step-0 evaluation or the pretraining is never a frozen 0 % bar), and when stderr
is not a terminal (the workflow's job log, a pipe) as one plain line at each phase change and every
``MBDPO_PROGRESS_INTERVAL`` seconds (default 30), because tqdm's carriage-return bar is unreadable in a file; a
phase that ends before a line could show its rate (a short one) gets one more line then. A rate is shown only when
measured (done in the phase, time passed); below one per second as seconds per item (``40.0 s/episode``).

:class:`CostMeter` times the first agent steps of training and, on a CPU, :func:`cost_line` turns them into an
estimate for the whole run and names the lighter CPU settings of ``config/checks/`` when that estimate is large;
an offline run's :class:`OfflineCostMeter` times its first updates and evaluation (:func:`offline_cost_line`).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

INTERVAL_ENV = "MBDPO_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0

COST_SAMPLES = 5
"""Acts and updates timed before the cost estimate (their median: the first call of a network is slower)."""

LARGE_COST_S = 2 * 3600.0
"""An estimate above this names the lighter CPU settings."""

CHECKS_DIR = Path(__file__).resolve().parents[2] / "config" / "checks"


def format_duration(seconds: float) -> str:
    """``45s``, ``3m 20s``, ``2h 05m``, ``63d 14h``: an honest size, never tqdm's ``1526:07:04``."""
    if not math.isfinite(seconds):
        return "unknown"
    s = max(int(round(seconds)), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def format_rate(rate: float, unit: str) -> str:
    """``12.3 update/s``, or below one per second ``40.0 s/episode``: a slow rate keeps its digits."""
    if rate >= 1.0:
        return f"{rate:,.1f} {unit}/s"
    return f"{1.0 / rate:,.1f} s/{unit}"


def _interval_from_env() -> float:
    value = os.environ.get(INTERVAL_ENV)
    if not value:
        return DEFAULT_INTERVAL_S
    try:
        return max(float(value), 0.0)
    except ValueError:
        return DEFAULT_INTERVAL_S


@dataclass
class _Phase:
    name: str
    detail: str
    started: float
    # a main-counter phase (seeding, training, updating) ends at ``end`` of the run's counter; a phase with its
    # own count (pretraining, evaluating) has ``total`` items of ``unit``, in each of ``parts`` parts (offline: an
    # evaluation's tasks); ``done`` counts within the current part ``part``
    start_position: int = 0
    end: int | None = None
    done: int = 0
    total: int | None = None
    unit: str = ""
    part: int = 1
    parts: int = 1
    part_name: str = ""
    start_done: int = 0  # items done (over all parts) when the phase began: its rate counts only what follows
    measured: bool = False  # a line of this phase has shown a measured rate
    bar: Any = None

    @property
    def overall_done(self) -> int:
        return (self.part - 1) * (self.total or 0) + self.done


class Progress:
    """The run's progress: one main counter (env steps, or updates offline) and the phase being run.

    ``phase(name)`` switches a phase that advances the main counter (``advance(n)``); ``count(name, done, total,
    unit)`` reports a phase with its own count while the main counter stands still. Switching to the phase
    already running does nothing, so the trainer may name the phase at every step.
    """

    def __init__(self, total: int, initial: int, unit: str, label: str, enabled: bool = True,
                 stream: TextIO | None = None, interval_s: float | None = None, tty: bool | None = None):
        self.total, self.position, self.unit, self.label = total, initial, unit, label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = _interval_from_env() if interval_s is None else interval_s
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if isatty is not None else False
        self.tty = tty
        self.current: _Phase | None = None
        self.last_line = -math.inf
        self.started = time.perf_counter()
        self.bar: tqdm | None = None
        if enabled and tty:
            self.bar = tqdm(total=total, initial=min(initial, total), unit=unit, desc=label, file=self.stream,
                            dynamic_ncols=True, mininterval=1.0)

    # --- phases ------------------------------------------------------------------------------------------------
    def phase(self, name: str, detail: str = "", end: int | None = None) -> None:
        """Enter a phase that advances the main counter until ``end`` (default the run's total)."""
        if self.current is not None and self.current.name == name and self.current.total is None:
            return
        self._switch(_Phase(name, detail, time.perf_counter(), start_position=self.position,
                            end=self.total if end is None else min(end, self.total)))

    def count(self, name: str, done: int, total: int, unit: str, detail: str = "",
              part: tuple[int, int, str] | None = None) -> None:
        """Report ``done`` of ``total`` items of a phase with its own count (pretraining updates, eval episodes).

        ``part=(k, n, name)``: the count is that of part k of n, each of ``total`` items (offline: the episodes of
        task k of n); the line counts within the part, which ``detail`` names, and the rate and ETA are the whole
        phase's. A count of no items (``total`` 0: a fine-tuning run's zero pretraining updates) is no phase."""
        if total <= 0:
            return
        k, parts, part_name = part if part is not None else (1, 1, "")
        current = self.current
        if (current is None or current.name != name or current.total is None or current.total != total
                or current.parts != parts or (k, done) < (current.part, current.done)):
            current = _Phase(name, detail, time.perf_counter(), done=done, total=total, unit=unit, part=k,
                             parts=parts, part_name=part_name)
            current.start_done = current.overall_done
            self._switch(current)
        elif current.bar is not None:
            if k != current.part:
                current.bar.reset(total=total)
                current.bar.update(done)
            else:
                current.bar.update(done - current.done)
        current.part, current.done = k, done
        if detail and detail != current.detail:  # a new part of the phase (offline: the next task) gets its line
            current.detail = detail
            if current.bar is not None:
                current.bar.set_description(f"  {name} ({detail})")
            elif self.enabled and not self.tty:
                self._line()
                return
        self._maybe_line()

    def advance(self, n: int) -> None:
        self.position += n
        if self.bar is not None:
            self.bar.update(n)
        self._maybe_line()

    def postfix(self, **values: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        self._end_phase()
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and not self.tty:
            self._write(f"[{self.label}] finished: {self.unit} {self.position:,}/{self.total:,} in "
                        f"{format_duration(time.perf_counter() - self.started)}")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- output ------------------------------------------------------------------------------------------------
    def describe(self, ended: bool = False) -> str:
        """One line: the phase, its count, rate and ETA (the non-terminal output and the tests read it);
        ``ended``: the line of a phase that has just ended (its count, rate and duration)."""
        p = self.current
        if p is None:
            return f"[{self.label}] {self.unit} {self.position:,}/{self.total:,}"
        elapsed = time.perf_counter() - p.started
        rate = self._rate(p, elapsed)
        name = f"{p.name} ({p.detail})" if p.detail else p.name
        main = f"{self.unit} {self.position:,}/{self.total:,} ({100 * self.position / max(self.total, 1):.0f}%)"
        if p.total is not None:  # own count: the main counter stands still
            eta = (p.parts * p.total - p.overall_done) / rate if math.isfinite(rate) else math.nan
            where, unit, at = f"{p.unit} {p.done:,}/{p.total:,}", p.unit, f" (at {main})"
            across = f" ({p.parts} {p.part_name}s)" if p.parts > 1 else ""
            tail = f"phase ETA {format_duration(eta)}{across}; at {main}"
        else:
            end = p.end if p.end is not None else self.total
            eta = (end - self.position) / rate if math.isfinite(rate) else math.nan
            where, unit, at = main, self.unit, ""
            if self.position >= self.total:  # an online run ends at the first episode boundary at or past its total
                tail = "finishing the episode in progress"
            elif end >= self.total:
                tail = f"ETA {format_duration(eta)}"
            else:
                tail = f"phase ends at {self.unit} {end:,} in {format_duration(eta)}"
        if ended:  # a phase none of whose lines had a rate: its count, rate and duration
            rated = f", {format_rate(rate, unit)}" if math.isfinite(rate) else ""
            return f"[{self.label}] {name}: {where}{rated}, done in {format_duration(elapsed)}{at}"
        if not math.isfinite(rate):  # nothing done in this phase yet: no rate to extrapolate from
            return f"[{self.label}] {name}: {where}, starting{at}"
        return f"[{self.label}] {name}: {where}, {format_rate(rate, unit)}, {tail}"

    def _moved(self, p: _Phase) -> int:
        """What was done in phase ``p`` since it began (never what was done before it: no rate from that)."""
        return p.overall_done - p.start_done if p.total is not None else self.position - p.start_position

    def _rate(self, p: _Phase, elapsed: float) -> float:
        """Items per second in phase ``p``; NaN until something was done in it and time passed (not measured)."""
        moved = self._moved(p)
        return moved / elapsed if elapsed > 0 and moved > 0 else math.nan

    def _end_phase(self) -> None:
        """Leaving a phase: its count and rate if no line showed them (a short phase's only line was ``starting``)."""
        p = self.current
        if p is not None and self.enabled and self.bar is None and not p.measured and self._moved(p) > 0:
            self.last_line = time.perf_counter()
            self._write(self.describe(ended=True))
        self._close_sub_bar()

    def _switch(self, phase: _Phase) -> None:
        self._end_phase()
        self.current = phase
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description(f"{self.label} {phase.name}")
            if phase.total is not None:  # a second bar for the phase's own count, under the main one
                phase.bar = tqdm(total=phase.total, initial=phase.done, unit=phase.unit, file=self.stream,
                                 desc=f"  {phase.name}" + (f" ({phase.detail})" if phase.detail else ""),
                                 position=1, leave=False, dynamic_ncols=True, mininterval=1.0)
        else:
            self._line()

    def _close_sub_bar(self) -> None:
        if self.current is not None and self.current.bar is not None:
            self.current.bar.close()
            self.current.bar = None

    def _maybe_line(self) -> None:
        if self.enabled and self.bar is None and time.perf_counter() - self.last_line >= self.interval_s:
            self._line()

    def _line(self) -> None:
        self.last_line = time.perf_counter()
        p = self.current
        if p is not None and math.isfinite(self._rate(p, self.last_line - p.started)):
            p.measured = True  # this line shows the phase's count moved, with its rate
        self._write(self.describe())

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


# --- cost ------------------------------------------------------------------------------------------------------
@dataclass
class CostMeter:
    """Durations of the first ``samples`` acts and updates of training (seeding's random actions not timed)."""

    samples: int = COST_SAMPLES
    acts: list[float] = field(default_factory=list)
    updates: list[float] = field(default_factory=list)
    reported: bool = False

    def act(self, seconds: float) -> None:
        if len(self.acts) < self.samples:
            self.acts.append(seconds)

    def update(self, seconds: float) -> None:
        if len(self.updates) < self.samples:
            self.updates.append(seconds)

    @property
    def ready(self) -> bool:
        return not self.reported and len(self.acts) >= self.samples and len(self.updates) >= self.samples

    @property
    def act_s(self) -> float:
        return statistics.median(self.acts)

    @property
    def update_s(self) -> float:
        return statistics.median(self.updates)


@dataclass
class OfflineCostMeter(CostMeter):
    """An offline run's: the first ``samples`` updates (sampling included) and the first evaluation (every task)."""

    evaluations: list[float] = field(default_factory=list)

    def evaluation(self, seconds: float) -> None:
        if not self.evaluations:
            self.evaluations.append(seconds)

    @property
    def ready(self) -> bool:
        return not self.reported and len(self.updates) >= self.samples and bool(self.evaluations)


def lighter_settings(algo: str, agent_cfg: Any, eval_episodes: int,
                     offline_batch_size: int | None = None) -> tuple[list[str], Path | None]:
    """The ``key=value`` settings of the algorithm's CPU learning check (config/checks/{algo}-cartpole-cpu.yaml)
    that differ from this run's: its model preset and planning. Read from the file, so the hint follows it.

    ``offline_batch_size``: the run is offline, where updates sample ``offline.batch_size`` sub-trajectories and
    ``agent.batch_size`` is unused, so the check's batch size is named as ``offline.batch_size``."""
    from algorithms.common.config import load_yaml

    path = CHECKS_DIR / f"{algo}-cartpole-cpu.yaml"
    if not path.exists():
        return [], None
    values = load_yaml(path)
    agent_values = dict(values.get("agent") or {})
    light_batch = agent_values.pop("batch_size", None) if offline_batch_size is not None else None
    out = [f"agent.{key}={value}" for key, value in agent_values.items() if getattr(agent_cfg, key, None) != value]
    if light_batch is not None and light_batch < offline_batch_size:
        out.append(f"offline.batch_size={light_batch}")
    light_episodes = values.get("eval_episodes")
    if light_episodes is not None and light_episodes < eval_episodes:
        out.append(f"eval_episodes={light_episodes}")
    return out, path


def estimate(meter: CostMeter, remaining_agent_steps: int, evaluations: int, eval_agent_steps: int,
             elapsed_s: float) -> dict[str, Any]:
    """The whole run's time: what ran so far, then one act and one update per remaining agent step and one act per
    step of each remaining evaluation (an evaluation plans as training does)."""
    act_s, update_s = meter.act_s, meter.update_s
    remaining = (remaining_agent_steps * (act_s + update_s) + evaluations * eval_agent_steps * act_s)
    return {"act_ms": round(act_s * 1e3, 3), "update_ms": round(update_s * 1e3, 3),
            "timed_acts": len(meter.acts), "timed_updates": len(meter.updates),
            "remaining_acts": remaining_agent_steps, "remaining_updates": remaining_agent_steps,
            "remaining_evaluations": evaluations, "eval_agent_steps": eval_agent_steps,
            "elapsed_s": round(elapsed_s, 1), "estimate_s": round(elapsed_s + remaining, 1)}


def cost_line(algo: str, device: str, cost: dict[str, Any], hint: list[str], hint_file: Path | None,
              steps_option: str) -> str:
    """The one stderr line: measured cost, the estimate and, when it is large, the lighter settings."""
    line = (f"cost on {device}: {cost['act_ms']:.1f} ms per act, {cost['update_ms']:.1f} ms per update (median of "
            f"the first {cost['timed_acts']} acts and {cost['timed_updates']} updates); estimate for the whole run: "
            f"{format_duration(cost['estimate_s'])} ({cost['remaining_acts']:,} acts + "
            f"{cost['remaining_updates']:,} updates to go, {cost['remaining_evaluations']} evaluation(s) of "
            f"{cost['eval_agent_steps']:,} agent steps, {format_duration(cost['elapsed_s'])} so far)")
    return line + _large_hint(algo, cost, hint, hint_file, steps_option)


def _large_hint(algo: str, cost: dict[str, Any], hint: list[str], hint_file: Path | None, steps_option: str) -> str:
    """The cost line's tail when the estimate is large: the lighter settings, or what else shortens the run."""
    if cost["estimate_s"] <= LARGE_COST_S:
        return ""
    if hint:
        where = hint_file.relative_to(CHECKS_DIR.parents[1]) if hint_file is not None else "config/checks"
        return (f"; that is long for a CPU: the lighter CPU settings of {where} are "
                f"{' '.join(hint)}; this run continues with the settings asked for")
    return (f"; that is long for a CPU: {algo} has no lighter CPU preset here, fewer {steps_option} (or a "
            "GPU, device=cuda) shortens it; this run continues with the settings asked for")


def offline_estimate(meter: OfflineCostMeter, remaining_updates: int, evaluations: int, tasks: int,
                     eval_episodes: int, elapsed_s: float) -> dict[str, Any]:
    """An offline run's time: what ran so far, then one update (with its sampling) per remaining update and one
    evaluation like the first (every task, ``eval_episodes`` episodes each) per remaining evaluation."""
    update_s, evaluation_s = meter.update_s, meter.evaluations[0]
    remaining = remaining_updates * update_s + evaluations * evaluation_s
    return {"update_ms": round(update_s * 1e3, 3), "evaluation_ms": round(evaluation_s * 1e3, 3),
            "timed_updates": len(meter.updates), "timed_evaluations": len(meter.evaluations),
            "remaining_updates": remaining_updates, "remaining_evaluations": evaluations,
            "eval_tasks": tasks, "eval_episodes": eval_episodes,
            "elapsed_s": round(elapsed_s, 1), "estimate_s": round(elapsed_s + remaining, 1)}


def offline_cost_line(algo: str, device: str, cost: dict[str, Any], hint: list[str], hint_file: Path | None) -> str:
    """An offline run's one stderr line: ms per update and per evaluation, the estimate and, when it is large,
    the lighter settings."""
    line = (f"cost on {device}: {cost['update_ms']:.1f} ms per update (sampling included; median of the first "
            f"{cost['timed_updates']} updates), {cost['evaluation_ms']:,.0f} ms per evaluation (the first: "
            f"{cost['eval_tasks']} task(s) x {cost['eval_episodes']} episode(s)); estimate for the whole run: "
            f"{format_duration(cost['estimate_s'])} ({cost['remaining_updates']:,} updates and "
            f"{cost['remaining_evaluations']} evaluation(s) to go, {format_duration(cost['elapsed_s'])} so far)")
    return line + _large_hint(algo, cost, hint, hint_file, "--steps")
