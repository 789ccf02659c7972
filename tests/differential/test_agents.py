"""Differential tests of the agents (issue 24 item 1): ours and the authors' released MBDPO and TD-MPC2 with identical
weights give the same numbers.

For each algorithm on a task with 1-D actions (cartpole-balance) and one with 6-D actions (cheetah-run), at the 1.7M
preset, in fp32 on our reference compute path (tests/test_compute.py pins the fast default to it): the state-dict
name map places every key (tests/differential/agents.py), and every forward function agrees within ``ATOL``:
encoder, dynamics, reward logits, every Q member's logits (online and target), the policy prior (mean, action,
log-std, entropies from the same noise), the symlog/two-hot helpers and, for MBDPO, the energy F. The numbers are
those of the released code with its own config (omegaconf + its parser), so a changed layer, init constant, or
helper shows here as a difference. The released code must be present (tests/differential/released.py).
"""

from __future__ import annotations

import pytest
import torch

from algorithms.world_model import math as wm_math
from tests.differential import agents as A
from tests.differential import released as R

ATOL, RTOL = 1e-5, 1e-6
"""fp32 on both sides with the same weights: differences are summation order and rounding (~1e-7 relative), far
below ``ATOL + RTOL·|released|``."""
BATCH = 64
MAX_DIFFERENCES: dict[str, float] = {}
"""What each comparison measured (max |ours − released| over the grid), for the fidelity table."""
PAIRS = [(algo, task) for algo in ("mbdpo", "tdmpc2") for task in A.TASKS]


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{a}-{t}" for a, t in PAIRS])
def pair(request, tmp_path_factory) -> A.Pair:
    R.require_released()
    algo, task = request.param
    return A.build_pair(algo, task, tmp_path_factory.mktemp(f"released-{algo}"))


def inputs(pair: A.Pair, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(BATCH, pair.obs_dim, generator=g)
    action = torch.rand(BATCH, pair.action_dim, generator=g) * 2 - 1
    z = pair.ours.model.encode(obs)
    return obs, action, z


def close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs released {tuple(theirs.shape)}"
    excess = ((ours.float() - theirs.float()).abs() - RTOL * theirs.float().abs()).max().item()
    diff = (ours.float() - theirs.float()).abs().max().item()
    assert excess <= ATOL, f"{what}: max |ours − released| = {diff:.3g} beyond {ATOL} + {RTOL}·|released|"
    MAX_DIFFERENCES[what] = max(MAX_DIFFERENCES.get(what, 0.0), diff)


@torch.no_grad()
def test_world_model_forward_functions_agree(pair):
    ours, theirs = pair.ours.model, pair.theirs.model
    obs, action, z = inputs(pair)
    close(z, theirs.encode(obs, None), "encode")
    close(ours.next(z, action), theirs.next(z, action, None), "dynamics")
    close(ours.reward(z, action), theirs.reward(z, action, None), "reward logits")
    close(ours.Q(z, action, return_type="all"), theirs.Q(z, action, None, return_type="all"), "Q logits, all members")
    close(ours.Q(z, action, return_type="all", target=True),
          theirs.Q(z, action, None, return_type="all", target=True), "target Q logits")


@torch.no_grad()
def test_policy_prior_agrees_from_the_same_noise(pair):
    ours, theirs = pair.ours.model, pair.theirs.model
    _, _, z = inputs(pair)
    torch.manual_seed(7)
    mine = ours.pi(z)
    torch.manual_seed(7)  # both draw eps = randn_like(mean) once
    action, info = theirs.pi(z, None)
    close(mine.action, action, "policy action")
    close(mine.mean, info["mean"], "policy mean")
    close(mine.log_std, info["log_std"], "policy log-std")
    close(mine.entropy, info["entropy"], "policy entropy")
    close(mine.scaled_entropy, info["scaled_entropy"], "policy scaled entropy")


@torch.no_grad()
def test_math_helpers_agree(pair):
    cfg = pair.theirs.cfg
    released = pair.modules.math
    x = torch.linspace(-300, 300, 1001).unsqueeze(-1)
    close(wm_math.symlog(x), released.symlog(x), "symlog")
    close(wm_math.symexp(wm_math.symlog(x)), released.symexp(released.symlog(x)), "symexp")
    bins = (cfg.num_bins, cfg.vmin, cfg.vmax)
    close(wm_math.two_hot(x, *bins), released.two_hot(x, cfg), "two-hot")
    logits = torch.randn(1001, cfg.num_bins, generator=torch.Generator().manual_seed(3))
    close(wm_math.two_hot_inv(logits, *bins), released.two_hot_inv(logits, cfg), "two-hot inverse")
    target = torch.randn(1001, 1, generator=torch.Generator().manual_seed(4)) * 5
    close(wm_math.soft_ce(logits, target, *bins), released.soft_ce(logits, target, cfg), "soft cross-entropy")


@torch.no_grad()
def test_energy_agrees(pair):
    if pair.algo != "mbdpo":  # TD-MPC2 has no energy on either side
        assert not hasattr(pair.ours, "energy") and not hasattr(pair.theirs.model, "_F")
        return
    _, action, z = inputs(pair)
    close(pair.ours.energy(z, action), pair.theirs.model.F(z, action, None), "energy F")
