"""DreamerV3's actor-critic losses on a toy model with a known best action: the actor must find it."""

from __future__ import annotations

import torch

from algorithms.dreamerv3 import math as dm
from algorithms.dreamerv3.behaviour import BehaviourLosses, actor_critic_losses
from algorithms.dreamerv3.networks import Actor, TwoHotHead
from algorithms.dreamerv3.optim import LaProp

HORIZON, STARTS, FEAT = 3, 256, 6
GAMMA = 1.0 - 1.0 / 333.0


def _toy_step(actor: Actor, critic: TwoHotHead, slow: TwoHotHead, retnorm: dm.ReturnNormalizer,
              feats: torch.Tensor, target: torch.Tensor, terminal_after_first: bool = False) -> BehaviourLosses:
    """The toy model: the state never changes and r(s, a) = 1 − (a − target(s))², so every step's best action
    is target(s); imagination is the policy sampled at each step, as ``imagine`` does."""
    states = feats.expand(HORIZON + 1, *feats.shape)
    with torch.no_grad():
        actions = actor(states[:-1]).sample()
    rewards = 1.0 - (actions - target).pow(2).sum(-1)
    continues = torch.full((HORIZON + 1, feats.shape[0]), GAMMA)
    if terminal_after_first:  # every episode ends after one step: R₀ = r₁ exactly
        continues[0], continues[1:] = 1.0, 0.0
    return actor_critic_losses(actor, critic, slow, retnorm, states, actions, rewards, continues, lam=0.95,
                               entropy_scale=3e-4)


def test_actor_finds_the_known_best_action():
    torch.manual_seed(0)
    feats = torch.randn(STARTS, FEAT)
    target = 0.6 * torch.sign(feats[:, :1])  # state-dependent best action: +0.6 or −0.6
    bins = dm.twohot_bins()
    actor, critic = Actor(FEAT, 1, 32), TwoHotHead(FEAT, 32, 2, bins)
    slow = TwoHotHead(FEAT, 32, 2, bins).requires_grad_(False)
    slow.load_state_dict(critic.state_dict())
    optim = LaProp([*actor.parameters(), *critic.parameters()], lr=3e-3, warmup=10)
    retnorm = dm.ReturnNormalizer()
    before = actor(feats).mean.detach()
    assert (before - target).abs().mean() > 0.55  # the untrained mean action is ~0
    for _ in range(300):
        losses = _toy_step(actor, critic, slow, retnorm, feats, target)
        optim.zero_grad()
        (losses.policy + losses.value).backward()
        optim.step()
        with torch.no_grad():
            for s, f in zip(slow.parameters(), critic.parameters()):
                s.lerp_(f, 0.02)
    after = actor(feats).mean.detach()
    assert (after - target).abs().mean() < 0.15, (after - target).abs().mean()
    assert (torch.sign(after) == torch.sign(target)).float().mean() > 0.95


def test_policy_gradient_sign_on_a_single_update():
    """One update with advantages of known sign moves the mean towards the better actions."""
    torch.manual_seed(1)
    feats = torch.zeros(STARTS, FEAT)
    bins = dm.twohot_bins()
    actor, critic = Actor(FEAT, 1, 16), TwoHotHead(FEAT, 16, 1, bins)
    optim = torch.optim.SGD(actor.parameters(), lr=0.05)
    target = torch.full((STARTS, 1), 1.0)  # reward rises with the action
    losses = _toy_step(actor, critic, critic, dm.ReturnNormalizer(), feats, target)
    mean_before = actor(feats[:1]).mean.item()
    optim.zero_grad()
    losses.policy.backward()
    optim.step()
    assert actor(feats[:1]).mean.item() > mean_before
    assert losses.weight[0].allclose(torch.full((STARTS,), GAMMA)) and losses.weight[1].allclose(
        torch.full((STARTS,), GAMMA**2))


def test_critic_regresses_to_the_returns_where_they_are_known():
    torch.manual_seed(2)
    feats = torch.randn(STARTS, FEAT)
    bins = dm.twohot_bins()
    actor, critic = Actor(FEAT, 1, 16), TwoHotHead(FEAT, 32, 2, bins)
    slow = TwoHotHead(FEAT, 32, 2, bins).requires_grad_(False)
    slow.load_state_dict(critic.state_dict())
    optim = LaProp(critic.parameters(), lr=3e-3, warmup=10)
    retnorm = dm.ReturnNormalizer()
    target = torch.zeros(STARTS, 1)
    for _ in range(300):
        losses = _toy_step(actor, critic, slow, retnorm, feats, target, terminal_after_first=True)
        optim.zero_grad()
        losses.value.backward()
        optim.step()
        with torch.no_grad():
            for s, f in zip(slow.parameters(), critic.parameters()):
                s.lerp_(f, 0.02)
    with torch.no_grad():
        expected = 1.0 - actor(feats).variance.squeeze(-1) - actor(feats).mean.squeeze(-1).pow(2)  # E[r₁]
        values = critic.mean(feats)
    assert (losses.weight[1:] == 0).all()
    assert (values - expected).abs().mean() < 0.1, (values - expected).abs().mean()
