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
    (r"^energy\.net\.(?P<rest>.*)$", "_F.{rest}"),  # MBDPO's energy lives beside the world model in ours
    (r"^score_net\.net\.(?P<rest>.*)$", "_score.{rest}"),  # and so does its score network
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


def _to_skipping_meta(self, *args, **kwargs):
    """The released ``WorldModel.to`` (move, then ``init()`` the Q views), leaving meta-device templates alone."""
    device, dtype, *_ = torch._C._nn._parse_to(*args, **kwargs)
    torch.nn.Module._apply(self, lambda t: t if t.is_meta else t.to(device=device, dtype=dtype or t.dtype))
    self.init()
    return self


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


def build_pair(algo: str, task: str, workdir: Path, released_overrides: dict | None = None, device: str = "cpu",
               **our_overrides) -> Pair:
    """Both agents at the 1.7M preset on ``task`` (``TASKS``), ours from its defaults in fp32 on the reference
    compute path (plus ``our_overrides``), theirs from its config (plus ``released_overrides``, set before its
    parser runs); our weights copied into theirs. ``device="cuda"`` runs the released code as released (its
    ``'cuda:0'``, capturable Adam) beside ours on CUDA (tests/differential/cuda_numerics.py)."""
    from algorithms.registry import get_algorithm
    from envs import get_task

    obs_dim, action_dim, episode_length = TASKS[task]
    module = get_algorithm(algo).load()
    cfg = module.Config(**{"model_size": "1.7M", "precision": "fp32", "compute": "reference", **our_overrides})
    torch.manual_seed(0)
    ours = module.Agent(cfg, get_task(task), box(obs_dim), box(action_dim), torch.device(device))
    root = R.cpu_copy(algo, workdir, "cuda:0" if device == "cuda" else device)
    released_cfg = R.released_config(algo, root, task, obs_dim, action_dim, episode_length,
                                     **(released_overrides or {}))
    name, cls = R.AGENT_MODULES[algo]
    modules = R.import_released(root, [name, "common.world_model", "common.math"])
    # README (released-code): with this tensordict, .to() refuses the Q ensemble's meta-device template; move
    # every tensor that has data (nothing on a CPU) and rebuild the Q views as the released .to() does
    modules.world_model.WorldModel.to = _to_skipping_meta
    theirs = getattr(getattr(modules, name), cls)(released_cfg)
    load_into_released(ours.model, theirs.model)
    if algo == "mbdpo":
        energy = {f"_F.{k.removeprefix('net.')}": v for k, v in ours.energy.state_dict().items()
                  if k.startswith("net.")}
        theirs.model.load_state_dict(energy, strict=False)
        with torch.no_grad():
            theirs._contrastive_mean.copy_(ours.energy.mean.reshape(1))
            theirs._contrastive_std.copy_(ours.energy.std.reshape(1))
        if ours.score_net is not None:
            score = {f"_score.{k.removeprefix('net.')}": v for k, v in ours.score_net.state_dict().items()}
            missing = set(score) - set(theirs.model.state_dict())
            assert not missing, f"score network keys the released model lacks: {sorted(missing)}"
            theirs.model.load_state_dict(score, strict=False)
    ours.model.eval()
    theirs.model.eval()
    return Pair(algo, task, ours, theirs, modules, obs_dim, action_dim)


def sample_batch(pair: Pair, batch_size: int, horizon: int = 3, seed: int = 2):
    """A replay-like batch (batch-first numpy, as our buffer gives it) and the same tensors time-major (as the
    released buffer gives them: reward and terminated with a trailing axis)."""
    from algorithms.common.buffer import Batch

    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((batch_size, horizon + 1, pair.obs_dim)).astype(np.float32)
    action = rng.uniform(-1, 1, (batch_size, horizon, pair.action_dim)).astype(np.float32)
    reward = rng.uniform(0, 1, (batch_size, horizon)).astype(np.float32)
    terminated = np.zeros((batch_size, horizon), np.float32)
    ours = Batch(obs, action, reward, terminated)
    theirs = tuple(torch.as_tensor(x).transpose(0, 1) for x in (obs, action, reward, terminated))
    return ours, (theirs[0], theirs[1], theirs[2].unsqueeze(-1), theirs[3].unsqueeze(-1))


class GradientRecorder:
    """Wraps an optimiser's ``step`` to keep a copy of every gradient it is about to apply, by parameter name."""

    def __init__(self, optimiser: torch.optim.Optimizer, names: dict[int, str]):
        self.grads: dict[str, torch.Tensor] = {}
        step = optimiser.step

        def recording_step(*args, **kwargs):
            for group in optimiser.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self.grads[names.get(id(p), f"?{id(p)}")] = p.grad.detach().clone()
            return step(*args, **kwargs)

        optimiser.step = recording_step


def parameter_names(module: torch.nn.Module, prefix: str = "") -> dict[int, str]:
    return {id(p): prefix + name for name, p in module.named_parameters()}


class RandomReplay:
    """Record every random draw one side makes, then serve the same draws to the other side.

    The two codes draw the same random numbers in different orders and through different calls (ours draws the
    policy-prior candidates before the MC candidates, the released code after; ours samples the Gumbel noise of the
    final MPPI choice as −log(−log U), the released code as −log E with E ~ Exp(1)). While recording
    (``with replay.recording():``) ``torch.randn``, ``randn_like``, ``rand``, ``rand_like``, ``randperm``,
    ``randint`` and ``Tensor.exponential_`` run as usual and their results are kept in first-in-first-out queues by (kind, number of
    elements); while replaying, each such call takes the next draw of its kind and size, reshaped — an exponential
    draw is served from a uniform one as −log U, the same Gumbel variate either way. A call with no recorded draw
    of its kind and size fails naming it: the two sides made different draws."""

    KINDS = {"randn": "randn", "randn_like": "randn", "rand": "rand", "rand_like": "rand", "randperm": "randperm",
             "randint": "randint"}

    def __init__(self):
        self.queues: dict[tuple[str, int], list[torch.Tensor]] = {}
        self.served = 0

    @staticmethod
    def _shape(args) -> tuple[int, ...]:
        if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)):
            return tuple(args[0])
        return tuple(int(a) for a in args)

    def _patch(self, make):
        from contextlib import ExitStack
        from unittest import mock

        stack = ExitStack()
        for name in self.KINDS:
            stack.enter_context(mock.patch.object(torch, name, make(name, getattr(torch, name))))
        original_exp = torch.Tensor.exponential_
        stack.enter_context(mock.patch.object(torch.Tensor, "exponential_", make("exponential_", original_exp)))
        return stack

    def recording(self):
        def make(name, original):
            def record(*args, **kwargs):
                out = original(*args, **kwargs)
                kind = self.KINDS.get(name, name)
                if kind == "exponential_":  # record as the uniform it is −log of
                    kind, value = "rand", torch.exp(-out)
                else:
                    value = out
                self.queues.setdefault((kind, out.numel()), []).append(value.detach().clone())
                return out
            return record
        return self._patch(make)

    def replaying(self):
        def take(kind: str, numel: int, what: str) -> torch.Tensor:
            queue = self.queues.get((kind, numel))
            assert queue, f"random replay: {what} asks for a {kind} draw of {numel} numbers the other side never made"
            self.served += 1
            return queue.pop(0)

        def make(name, original):
            def serve(*args, **kwargs):
                kind = self.KINDS.get(name, name)
                if name == "exponential_":
                    tensor = args[0]
                    u = take("rand", tensor.numel(), "Tensor.exponential_")
                    return tensor.copy_((-torch.log(u)).reshape(tensor.shape))
                if name.endswith("_like"):
                    like = args[0]
                    shape, dtype, device = like.shape, kwargs.get("dtype", like.dtype), like.device
                elif name == "randperm":
                    shape, dtype, device = (int(args[0]),), torch.int64, kwargs.get("device", "cpu")
                elif name == "randint":
                    size = kwargs.get("size", args[-1] if args and isinstance(args[-1], (tuple, list)) else None)
                    shape, dtype, device = tuple(size), torch.int64, kwargs.get("device", "cpu")
                else:
                    shape = self._shape(args)
                    dtype, device = kwargs.get("dtype") or torch.get_default_dtype(), kwargs.get("device", "cpu")
                numel = int(np.prod(shape)) if shape else 1
                return take(kind, numel, f"torch.{name}{tuple(shape)}").reshape(shape).to(device=device, dtype=dtype)
            return serve
        return self._patch(make)

    def leftover(self) -> dict[tuple[str, int], int]:
        """Draws recorded and never served (the replaying side made fewer draws)."""
        return {key: len(q) for key, q in self.queues.items() if q}
