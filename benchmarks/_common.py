"""Shared helpers of the benchmark scripts: one JSON line per figure on stdout, progress on stderr.

Every line carries ``benchmark``, ``metric``, ``value``, ``unit`` and the context needed to compare two
runs: ``task``, ``steps`` (timed items per repeat), ``repeats``, ``device``, ``torch_threads``, the
machine's ``cpu_count`` and its 1-minute load average when the script started (``load_1m``; on a shared
machine a high load means noisy numbers).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from typing import Any, Callable, Sequence

REQUIRED_KEYS = ("benchmark", "metric", "value", "unit", "task", "steps", "repeats", "device", "torch_threads")

_START_LOAD = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def log(message: str) -> None:
    """Progress for humans: stderr only, so that stdout stays one JSON object per line."""
    print(message, file=sys.stderr, flush=True)


def machine_context() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "load_1m": round(_START_LOAD, 2),
        "python": platform.python_version(),
        "host": platform.node(),
    }


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def emit(benchmark: str, metric: str, value: float, unit: str, **context: Any) -> dict[str, Any]:
    """Print one figure as a JSON line on stdout and return it."""
    if not math.isfinite(value):
        raise ValueError(f"{benchmark}/{metric}: non-finite value {value!r}")
    record: dict[str, Any] = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit}
    record.update(context)
    record.update({k: v for k, v in machine_context().items() if k not in record})
    print(json.dumps(record), flush=True)
    return record


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """(25th, 75th) percentiles of the per-block figures: how noisy the median is."""
    if len(values) < 2:
        return float(values[0]), float(values[0])
    q1, _, q3 = statistics.quantiles(values, n=4)
    return float(q1), float(q3)


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def time_update_and_act(update: Callable[[], Any], act: Callable[[], Any], updates: int, acts: int, repeats: int,
                        sync: Callable[[], Any], label: str) -> tuple[list[float], list[float]]:
    """Per repeat: ms per ``update()`` over ``updates`` calls, then ms per ``act()`` over ``acts`` calls
    (``sync`` waits for the device before each clock read). Returns (update_ms, act_ms), one entry per repeat."""
    import time

    update_ms, act_ms = [], []
    for r in range(repeats):
        tic = time.perf_counter()
        for _ in range(updates):
            update()
        sync()
        update_ms.append((time.perf_counter() - tic) / updates * 1e3)
        tic = time.perf_counter()
        for _ in range(acts):
            act()
        sync()
        act_ms.append((time.perf_counter() - tic) / acts * 1e3)
        log(f"{label} repeat {r}: {update_ms[-1]:.1f} ms/update, {act_ms[-1]:.2f} ms/act")
    return update_ms, act_ms


def torch_task_setup(threads: int, device_name: str, task: str) -> tuple[Any, Any, Any, Any]:
    """The agent benchmarks' shared start: OpenMP policy and torch threads, the device, the task's spec and one
    environment. Returns (torch, device, spec, env)."""
    import algorithms  # noqa: F401  (OpenMP wait policy before torch)
    import torch

    from algorithms.common.device import resolve_device
    from envs import get_task, make_env

    if threads:
        torch.set_num_threads(threads)
    return torch, resolve_device(device_name), get_task(task), make_env(task, seed=0)
