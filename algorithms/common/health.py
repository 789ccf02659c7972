"""Health checks of a run: every loss, metric and weight stays finite, or the run stops saying where it went wrong.

Both loops call :func:`check_finite` after each update (weights every ``PARAMETER_CHECK_EVERY`` updates) and
before each checkpoint, so that no checkpoint is written from a non-finite state; a resume refuses a checkpoint
that holds one (:func:`non_finite_in_state`).
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch

from algorithms.common.agent import Agent

PARAMETER_CHECK_EVERY = 100
"""Updates between checks that every weight is finite (also checked before each checkpoint)."""


class NonFiniteLossError(FloatingPointError):
    """A loss, metric or weight became NaN or inf; the message names it (a weight: its module) and the step."""


def non_finite_tensor(agent: Agent) -> str | None:
    """The name of the agent's first weight (parameter or buffer) holding a NaN or inf, or None."""
    for name, tensor in agent.named_tensors():
        if not bool(torch.isfinite(tensor).all()):
            return name
    return None


def floating_tensors(tree: Any) -> Iterator[torch.Tensor]:
    """Every floating-point tensor in a nested state (dicts, lists, tuples), e.g. a checkpoint's agent state."""
    stack: list[Any] = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += list(value.values())
        elif isinstance(value, (list, tuple)):
            stack += list(value)
        elif isinstance(value, torch.Tensor) and value.is_floating_point():
            yield value


def non_finite_in_state(state: dict[str, Any]) -> str | None:
    """Why a loaded checkpoint must not be resumed from (a non-finite agent tensor), or None."""
    if any(not bool(torch.isfinite(t).all()) for t in floating_tensors(state["agent"])):
        return "holds non-finite weights"
    return None


def check_finite(metrics: dict[str, float], step: int, updates: int, agent: Agent | None = None,
                 unit: str = "env step") -> None:
    """Stop the run (NonFiniteLossError) on a NaN or inf metric of the last update or, given ``agent``, weight.

    A weight is named by its module (``<agent attribute>.<first component>``) with the update's loss terms,
    so the message says where it went wrong; raised before a checkpoint is written, it keeps the last one intact.
    """
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite loss {name!r} = {value} at {unit} {step} (update {updates}); "
                                     "the run stops here, its last checkpoint is intact")
    if agent is None:
        return
    name = non_finite_tensor(agent)
    if name is not None:
        module = ".".join(name.split(".")[:2])
        losses = ", ".join(f"{key}={value:.4g}" for key, value in metrics.items()) or "none"
        raise NonFiniteLossError(f"non-finite weights in module {module!r} (parameter {name!r}) at {unit} "
                                 f"{step} (update {updates}); last update's losses: {losses}; "
                                 "the run stops here, its last checkpoint is intact")
