"""How much memory a run will need, estimated before anything is allocated, and the check against the device.

The scaling sweep's presets reach 340M parameters: at batch 1024 such a run needs several GiB for its weights and
Adam's state alone. A run that does not fit should stop at once with the numbers, not hours later in an
out-of-memory kill. The agent is built on PyTorch's ``meta`` device (shapes only, no storage, well under a second
even at 340M), so the parameter counts are exact; the activation term is an estimate:

- weights: every floating-point tensor of the agent (online and target networks, buffers), float32;
- gradients: the trainable parameters (those an optimiser holds), float32;
- optimiser state: Adam's two moments per trainable parameter;
- activations: for each sample of a batch, every linear layer's output kept for the backward pass (output,
  normalisation and activation: ×3), once per step of the H+1-step sub-trajectory (TD-MPC2's and MBDPO's joint
  loss unrolls the world model over the horizon), float32;
- replay buffer (online runs): capacity × (2 observations + action + reward + flags), float32; an offline dataset's
  memory-mapped cache is read through the page cache and is reported, not counted;
- a fixed allowance for the framework (CUDA context, allocator slack, Python).

Measured on this project's CPU (peak RSS of two multi-task updates, 80 tasks, 39/6 padded sizes, batch 1024,
2026-12-01), the estimate without the framework allowance was 9% above TD-MPC2 1.7M (297 MiB measured), 12% above
MBDPO 1.7M (324 MiB) and 5% above MBDPO 6M (849 MiB); at batch 512 within ±5% of TD-MPC2 1.7M's (tests/
test_memory.py checks [0.8x, 2x]); the framework allowance covers library workspaces and allocator slack. The estimate is meant to be on the safe side for the presets; ``memory_limit`` (a run key) sets the memory the
check compares with (``auto``: the device's; ``none``: no check).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from algorithms.common.config import ConfigError

FRAMEWORK_BYTES = 768 * 2**20
"""CUDA context / allocator slack / interpreter: what a run needs besides its tensors."""
ACTIVATION_COPIES = 3
"""Per linear layer and sample, the tensors autograd keeps: its output, the normalised output, the activation."""
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_memory_limit(value: Any) -> int | None | str:
    """``memory_limit``'s value: ``"auto"`` (the device's memory), ``None`` (``none``: no check) or bytes
    (``"24GiB"``, ``"512MB"``, ``"2e9"``); a ConfigError names anything else."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text in ("none", "off", "false"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)", text)
    if not match or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"memory_limit={value!r}: give auto (the device's memory), none (no check) or a size "
                          "such as 24GiB, 512MB or 2e9 (bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class MemoryEstimate:
    """The parts of a run's memory, in bytes (see the module docstring)."""

    parameters: int
    trainable: int
    weights: int
    gradients: int
    optimiser: int
    activations: int
    replay: int
    dataset_mapped: int
    framework: int = FRAMEWORK_BYTES

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimiser + self.activations + self.replay + self.framework

    def describe(self) -> str:
        parts = [f"weights {human_bytes(self.weights)} ({self.parameters / 1e6:.1f}M parameters, "
                 f"{self.trainable / 1e6:.1f}M trainable)", f"gradients {human_bytes(self.gradients)}",
                 f"Adam {human_bytes(self.optimiser)}", f"activations {human_bytes(self.activations)}"]
        if self.replay:
            parts.append(f"replay buffer {human_bytes(self.replay)}")
        parts.append(f"framework {human_bytes(self.framework)}")
        text = f"about {human_bytes(self.total)}: " + ", ".join(parts)
        if self.dataset_mapped:
            text += f"; the dataset's cache ({human_bytes(self.dataset_mapped)}) is memory-mapped, not counted"
        return text

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "weights": self.weights, "gradients": self.gradients,
                "optimiser": self.optimiser, "activations": self.activations, "replay": self.replay,
                "dataset_mapped": self.dataset_mapped, "parameters": self.parameters, "trainable": self.trainable}


def _trainable(agent: Any) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for value in vars(agent).values():
        if isinstance(value, torch.optim.Optimizer):
            for group in value.param_groups:
                for p in group["params"]:
                    seen[id(p)] = p
    return list(seen.values())


def estimate_memory(build_agent: Callable[[torch.device], Any], batch_size: int, horizon: int,
                    replay_bytes: int = 0, dataset_mapped: int = 0) -> MemoryEstimate:
    """The estimate for the agent ``build_agent(device)`` builds (called once on the meta device), trained on
    batches of ``batch_size`` sub-trajectories of ``horizon`` + 1 steps."""
    meta = torch.device("meta")
    with meta:
        agent = build_agent(meta)
    tensors = [t for _, t in agent.named_tensors()]
    trainable = _trainable(agent)
    n_params, n_trainable = sum(t.numel() for t in tensors), sum(t.numel() for t in trainable)
    activations = batch_size * (horizon + 1) * agent.activation_floats_per_step() * ACTIVATION_COPIES * 4
    return MemoryEstimate(parameters=n_params, trainable=n_trainable, weights=4 * n_params,
                          gradients=4 * n_trainable, optimiser=8 * n_trainable, activations=activations,
                          replay=replay_bytes, dataset_mapped=dataset_mapped)


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(path).read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def available_memory(device: torch.device) -> tuple[int, str]:
    """The memory a run on ``device`` may use and where that number comes from."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return free, f"free memory of {torch.cuda.get_device_name(device)} ({human_bytes(total)} in all)"
    available = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return 2**62, "unknown (no check)"
    limit = _cgroup_limit()
    if limit is not None and limit < available:
        return limit, "this process's cgroup memory limit"
    return available, "available RAM"


def check_memory(estimate: MemoryEstimate, device: torch.device, memory_limit: Any, what: str) -> None:
    """ConfigError when ``estimate`` exceeds the memory available (``memory_limit``: see parse_memory_limit)."""
    limit = parse_memory_limit(memory_limit)
    if limit is None:
        return
    if limit == "auto":
        limit, source = available_memory(device)
    else:
        source = "memory_limit"
    if estimate.total > limit:
        raise ConfigError(
            f"{what} needs {estimate.describe()}; {source} is {human_bytes(limit)} on {device}. Use a smaller "
            "agent.model_size or batch size, or a device with more memory (memory_limit=none skips this check)")
