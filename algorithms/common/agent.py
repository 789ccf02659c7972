"""The interface the run loop drives: every algorithm's ``Agent`` implements it. Besides acting and updating, an
agent answers the questions the loop asks about it: its machine-dependent defaults
(:meth:`Agent.resolve_machine_defaults`) and its activation memory (:meth:`Agent.activation_floats_per_step`),
so that the loop knows no algorithm's internals."""

from __future__ import annotations

import abc
import itertools
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from algorithms.common.buffer import ReplayBuffer
from envs.registry import TaskSpec


class Agent(abc.ABC):
    """One algorithm's learner and actor.

    ``horizon`` is the length of the sub-trajectories ``update`` samples from the buffer; the loop makes no update
    before the buffer holds one (with ``replay_open_episode=False``: one in a finished episode). ``update`` returns
    scalar metrics (losses, diagnostics) by name; the loop stops the run if one is NaN or inf.
    """

    horizon: int = 1
    replay_open_episode: bool = True
    """Whether updates may sample the episode in progress (False: it enters the replay when it ends)."""

    def __init__(self, cfg: Any, spec: TaskSpec, observation_space: gym.spaces.Box,
                 action_space: gym.spaces.Box, device: torch.device):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.observation_space, self.action_space = observation_space, action_space

    @abc.abstractmethod
    def act(self, obs: np.ndarray, eval_mode: bool) -> np.ndarray:
        """An action in [-1, 1]; deterministic when ``eval_mode``."""

    @abc.abstractmethod
    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One gradient update from a sampled batch; returns metrics by name."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit: networks, optimisers, running statistics."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def reset(self) -> None:
        """Called at the start of every episode (e.g. to drop a warm-started plan)."""

    def named_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every floating-point parameter and buffer of the agent's networks, and free learnable tensors (e.g.
        SAC's log α), each once, named ``<attribute>.<name in the module>``: what must stay finite."""
        seen: set[int] = set()
        for attribute, value in vars(self).items():
            if isinstance(value, torch.nn.Module):
                items: Any = ((f"{attribute}.{name}", tensor) for name, tensor in
                              itertools.chain(value.named_parameters(), value.named_buffers()))
            elif isinstance(value, torch.Tensor) and value.requires_grad:
                items = [(attribute, value)]
            else:
                continue
            for name, tensor in items:
                if tensor.is_floating_point() and id(tensor) not in seen:  # a ModuleDict may repeat a network
                    seen.add(id(tensor))
                    yield name, tensor

    @classmethod
    def resolve_machine_defaults(cls, cfg: Any, device: torch.device) -> None:
        """Pin config values that depend on the machine (e.g. an ``auto`` precision) to what they mean on
        ``device``, in place, before the run records its config; a resume elsewhere that would resolve them
        differently is then refused as a config change. Most agents have none."""

    def modules_once(self) -> Iterator[torch.nn.Module]:
        """Every submodule of the agent's networks (its ``nn.Module`` attributes), each once."""
        seen: set[int] = set()
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                for module in value.modules():
                    if id(module) not in seen:
                        seen.add(id(module))
                        yield module

    def activation_floats_per_step(self) -> int:
        """Floats one sample keeps per step of a sub-trajectory for the backward pass, before the copies
        autograd makes (``common/memory.py``): Σ of the linear layers' output widths. An agent with other layers
        (e.g. ensembles) adds theirs."""
        return sum(module.out_features for module in self.modules_once() if isinstance(module, torch.nn.Linear))

    def on_seeding_done(self, buffer: ReplayBuffer, seed_steps: int,
                        report: Callable[[int, int], None] | None = None) -> dict[str, float]:
        """Called once when the ``seed_steps`` random agent steps end (e.g. for pre-training updates).

        An agent that runs updates here calls ``report(done, total)`` before the first and after each one, so
        that the run's progress shows this phase (minutes at default settings on a CPU) instead of standing still.
        """
        return {}
