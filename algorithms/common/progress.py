"""What a run is doing and what it costs, from its first step (issue 18, "First contact").

A run goes through named phases: ``seeding`` (random actions), ``pretraining`` (TD-MPC2/MBDPO's N updates on the
seed data), ``training``, ``evaluating`` (k/N episodes), offline ``updating``. :class:`Progress` reports each one
with its rate and ETA: on a terminal as tqdm bars (a second bar for a phase with its own count, so the step-0
evaluation or the pretraining is never a frozen 0 % bar), and when stderr is not a terminal (the workflow's job
log, a pipe) as one plain line at each phase change and every ``MBDPO_PROGRESS_INTERVAL`` seconds (default 30),
because tqdm's carriage-return bar is unreadable in a file.

:class:`CostMeter` times the first agent steps of training and, on a CPU, :func:`cost_line` turns them into an
estimate for the whole run and names the lighter CPU settings of ``config/checks/`` when that estimate is large.
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
    # own count (pretraining, evaluating) has ``total`` items of ``unit``
    start_position: int = 0
    end: int | None = None
    done: int = 0
    total: int | None = None
    unit: str = ""
    bar: Any = None


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

    def count(self, name: str, done: int, total: int, unit: str, detail: str = "") -> None:
        """Report ``done`` of ``total`` items of a phase with its own count (pretraining updates, eval episodes)."""
        current = self.current
        if current is None or current.name != name or current.total is None or current.total != total:
            current = _Phase(name, detail, time.perf_counter(), done=done, total=total, unit=unit)
            self._switch(current)
        if current.bar is not None:
            current.bar.update(done - current.done)
        current.done = done
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
        self._close_sub_bar()
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
    def describe(self) -> str:
        """One line: the phase, its count, rate and ETA (the non-terminal output and the tests read it)."""
        p = self.current
        if p is None:
            return f"[{self.label}] {self.unit} {self.position:,}/{self.total:,}"
        elapsed = time.perf_counter() - p.started
        name = f"{p.name} ({p.detail})" if p.detail else p.name
        main = f"{self.unit} {self.position:,}/{self.total:,} ({100 * self.position / max(self.total, 1):.0f}%)"
        if p.total is not None:  # own count: the main counter stands still
            rate = p.done / elapsed if elapsed > 0 and p.done else math.nan
            eta = (p.total - p.done) / rate if rate and math.isfinite(rate) else math.nan
            where = f"{p.unit} {p.done:,}/{p.total:,}"
            unit, tail = p.unit, f"phase ETA {format_duration(eta)}; at {main}"
        else:
            moved = self.position - p.start_position
            rate = moved / elapsed if elapsed > 0 and moved else math.nan
            end = p.end if p.end is not None else self.total
            eta = (end - self.position) / rate if rate and math.isfinite(rate) else math.nan
            where = main
            unit = self.unit
            if self.position >= self.total:  # an online run ends at the first episode boundary at or past its total
                tail = "finishing the episode in progress"
            elif end >= self.total:
                tail = f"ETA {format_duration(eta)}"
            else:
                tail = f"phase ends at {self.unit} {end:,} in {format_duration(eta)}"
        if not math.isfinite(rate):  # nothing done in this phase yet: no rate to extrapolate from
            return f"[{self.label}] {name}: {where}, starting" + (f" (at {main})" if p.total is not None else "")
        return f"[{self.label}] {name}: {where}, {rate:,.1f} {unit}/s, {tail}"

    def _switch(self, phase: _Phase) -> None:
        self._close_sub_bar()
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


def lighter_settings(algo: str, agent_cfg: Any, eval_episodes: int) -> tuple[list[str], Path | None]:
    """The ``key=value`` settings of the algorithm's CPU learning check (config/checks/{algo}-cartpole-cpu.yaml)
    that differ from this run's: its model preset and planning. Read from the file, so the hint follows it."""
    from algorithms.common.config import load_yaml

    path = CHECKS_DIR / f"{algo}-cartpole-cpu.yaml"
    if not path.exists():
        return [], None
    values = load_yaml(path)
    out = [f"agent.{key}={value}" for key, value in (values.get("agent") or {}).items()
           if getattr(agent_cfg, key, None) != value]
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
    if cost["estimate_s"] > LARGE_COST_S:
        if hint:
            where = hint_file.relative_to(CHECKS_DIR.parents[1]) if hint_file is not None else "config/checks"
            line += (f"; that is long for a CPU: the lighter CPU settings of {where} are "
                     f"{' '.join(hint)}; this run continues with the settings asked for")
        else:
            line += (f"; that is long for a CPU: {algo} has no lighter CPU preset here, fewer {steps_option} (or a "
                     "GPU, device=cuda) shortens it; this run continues with the settings asked for")
    return line
