"""Ours and the released agents side by side with identical weights: builders and the state-dict name map.

:func:`build_pair` builds our agent from our defaults (fp32, reference compute path: the path the fast default is
tested against in tests/test_compute.py) and the released one from its own config and parser, then copies our
weights into it through :data:`NAME_MAP`, so that every comparison starts from the same parameters.

The name map (ours → released), one rule per row; a key of ours that no rule places, or a shape the rule does not
turn into the released one, is a failure naming it:

| ours | released | shape |
|---|---|---|
| ``_encoder.<i>.*`` | ``_encoder.state.<i>.*`` | same |
| ``_dynamics|_reward|_pi|_termination.*`` | same name | same |
| ``_Qs.hidden.<i>.weight`` (K, in, out) | ``_Qs.params.<i>.weight`` (K, out, in) | transposed |
| ``_Qs.hidden.<i>.bias`` / ``ln_weight`` / ``ln_bias`` (K, 1, out) | ``_Qs.params.<i>.bias`` / ``ln.weight`` / ``ln.bias`` (K, out) | middle axis dropped |
| ``_Qs.out.weight`` / ``bias`` | ``_Qs.params.<L>.weight`` / ``bias`` (L = hidden layers) | as above |
| ``_target_Qs.*`` | ``_target_Qs_params.*`` | as ``_Qs`` |
| MBDPO ``energy.net.*`` | ``_F.*`` | same |
| MBDPO ``energy.mean`` / ``energy.std`` | agent buffers ``_contrastive_mean`` / ``_contrastive_std`` (shape (1,)) | scalar → (1,) |

Released keys no rule fills are listed in :data:`UNFILLED` (the Q ensemble's meta-device templates and the detached
view, which shares the online Qs' storage; the log-std buffers, constants of the config; the score network when it
is off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from tests.differential import released as R

TASKS = {"cartpole-balance": (5, 1, 500), "cheetah-run": (17, 6, 500)}
"""Two tasks of 1-D and 6-D actions: task → (observation dim, action dim, episode length)."""

_Q = r"(?P<which>_Qs|_target_Qs)\.(?:hidden\.(?P<i>\d+)|(?P<out>out))\.(?P<name>weight|bias|ln_weight|ln_bias)"
NAME_MAP: list[tuple[str, str]] = [
    (r"^_encoder\.(?P<rest>\d+\..*)$", "_encoder.state.{rest}"),
    (r"^(?P<rest>_(?:dynamics|reward|pi|termination)\..*)$", "{rest}"),
    (rf"^{_Q}$", "{target}.{layer}.{name}"),
]
UNFILLED = re.compile(r"^(log_std_min|log_std_dif|_detach_Qs_params\..*|_detach_Qs\.module\..*|_target_Qs\.module\..*"
                      r"|_Qs\.module\..*|_score\..*|_F\..*)$")


def released_name(key: str, hidden_layers: int) -> str | None:
    """The released model's key of our world-model key ``key`` (None: no rule places it)."""
    for pattern, template in NAME_MAP:
        m = re.match(pattern, key)
        if m is None:
            continue
        groups = m.groupdict()
        if "which" not in groups:
            return template.format(**groups)
        layer = str(hidden_layers) if groups["out"] else groups["i"]
        name = {"ln_weight": "ln.weight", "ln_bias": "ln.bias"}.get(groups["name"], groups["name"])
        target = "_Qs.params" if groups["which"] == "_Qs" else "_target_Qs_params"
        return template.format(target=target, layer=layer, name=name)
    return None


def to_released(value: torch.Tensor, key: str) -> torch.Tensor:
    """Our tensor in the released layout (Q ensemble: weights transposed, the broadcast axis dropped)."""
    if key.startswith(("_Qs.", "_target_Qs.")):
        return value.transpose(1, 2) if key.endswith(".weight") else value.squeeze(1)
    return value


def mapped_state(model: torch.nn.Module, released_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our world model's state in the released model's names and shapes; AssertionError naming any key or shape
    the map cannot place, and any released key left unfilled that :data:`UNFILLED` does not excuse."""
    theirs = released_model.state_dict()
    hidden_layers = len(model._Qs.hidden)
    out, problems = {}, []
    for key, value in model.state_dict().items():
        name = released_name(key, hidden_layers)
        if name is None:
            problems.append(f"no rule places our key {key!r} {tuple(value.shape)}")
            continue
        if name not in theirs:
            problems.append(f"our key {key!r} maps to {name!r}, which the released model lacks")
            continue
        converted = to_released(value, key)
        if tuple(converted.shape) != tuple(theirs[name].shape):
            problems.append(f"{key!r} {tuple(value.shape)} → {name!r}: shape {tuple(converted.shape)} "
                            f"≠ released {tuple(theirs[name].shape)}")
            continue
        out[name] = converted.detach().clone()
    unfilled = sorted(k for k in theirs if k not in out and not UNFILLED.match(k))
    problems += [f"released key {k!r} {tuple(theirs[k].shape)} is filled by no key of ours" for k in unfilled]
    assert not problems, "state-dict name map:\n  " + "\n  ".join(problems)
    return out


def load_into_released(model: torch.nn.Module, released_model: torch.nn.Module) -> None:
    """Copy our world model's weights into the released one in place (the detached Q view shares the online Qs'
    storage, so it follows)."""
    state = mapped_state(model, released_model)
    current = released_model.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            current[name].copy_(value)


@dataclass
class Pair:
    """Our agent and the released one on one task, with identical weights."""

    algo: str
    task: str
    ours: object
    theirs: object
    modules: object
    obs_dim: int
    action_dim: int


def box(dim: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)


def build_pair(algo: str, task: str, workdir: Path, **our_overrides) -> Pair:
    """Both agents at the 1.7M preset on ``task`` (``TASKS``), ours from its defaults in fp32 on the reference
    compute path (plus ``our_overrides``), theirs from its config; our weights copied into theirs."""
    from algorithms.registry import get_algorithm
    from envs import get_task

    obs_dim, action_dim, episode_length = TASKS[task]
    module = get_algorithm(algo).load()
    cfg = module.Config(model_size="1.7M", precision="fp32", compute="reference", **our_overrides)
    torch.manual_seed(0)
    ours = module.Agent(cfg, get_task(task), box(obs_dim), box(action_dim), torch.device("cpu"))
    root = R.cpu_copy(algo, workdir)
    released_cfg = R.released_config(algo, root, task, obs_dim, action_dim, episode_length)
    name, cls = R.AGENT_MODULES[algo]
    modules = R.import_released(root, [name, "common.world_model", "common.math"])
    # README (released-code): the meta-device template refuses .to() on a CPU-only torch; nothing needs moving.
    modules.world_model.WorldModel.to = lambda self, *args, **kwargs: self
    theirs = getattr(getattr(modules, name), cls)(released_cfg)
    load_into_released(ours.model, theirs.model)
    if algo == "mbdpo":
        energy = {f"_F.{k.removeprefix('net.')}": v for k, v in ours.energy.state_dict().items()
                  if k.startswith("net.")}
        theirs.model.load_state_dict(energy, strict=False)
        with torch.no_grad():
            theirs._contrastive_mean.copy_(ours.energy.mean.reshape(1))
            theirs._contrastive_std.copy_(ours.energy.std.reshape(1))
    ours.model.eval()
    theirs.model.eval()
    return Pair(algo, task, ours, theirs, modules, obs_dim, action_dim)
