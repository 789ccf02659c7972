"""DreamerV3's behaviour learning (sec. 3): roll the policy out in the world model, then one actor loss and one
critic loss on the imagined trajectories. The world model enters only through ``imagine``; the losses see
features, actions, rewards and continues, so they can be checked on a toy model with a known best action."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from algorithms.dreamerv3 import math as dm
from algorithms.dreamerv3.networks import RSSM, Actor, TwoHotHead


def imagine(rssm: RSSM, actor: Actor, h: torch.Tensor, z: torch.Tensor, horizon: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sec. 3: roll the policy out in the model for ``horizon`` steps from the starts (h, z); returns features
    (H+1, N, F) and the actions taken (H, N, A). Actions are sampled without gradients (REINFORCE) and the policy
    sees detached features, so the actor loss does not train the model."""
    feats, actions = [rssm.features(h, z)], []
    for _ in range(horizon):
        action = actor(feats[-1].detach()).sample()
        h = rssm.img_step(h, z, action)
        z = dm.sample_onehot_st(rssm.prior(h))
        feats.append(rssm.features(h, z))
        actions.append(action)
    return torch.stack(feats), torch.stack(actions)


@dataclass
class BehaviourLosses:
    policy: torch.Tensor
    value: torch.Tensor
    returns: torch.Tensor
    """λ-returns R₀..R_{H−1}, (H, N)."""
    advantage: torch.Tensor
    """(R − v) / S, (H, N)."""
    weight: torch.Tensor
    """Π_{k≤t} c_k, (H, N)."""
    entropy: torch.Tensor
    scale: torch.Tensor


def actor_critic_losses(actor: Actor, critic: TwoHotHead, slow_critic: TwoHotHead, retnorm: dm.ReturnNormalizer,
                        feats: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, continues: torch.Tensor,
                        lam: float, entropy_scale: float) -> BehaviourLosses:
    """Sec. 3, eqs. (7)–(11) on one imagined batch.

    ``feats`` (H+1, N, F) and ``actions`` (H, N, A) from ``imagine``; ``rewards`` (H, N) are r₁..r_H and
    ``continues`` (H+1, N) are c₀..c_H (c₀ from replay, γ included). Critic: two-hot cross-entropy towards the
    λ-returns plus towards its slow EMA's prediction (the regulariser), weighted by the chance of still being
    in the episode. Actor: REINFORCE with advantages (R − v)/max(1, P95 − P5) and entropy bonus."""
    feats = feats.detach()
    with torch.no_grad():
        values = critic.mean(feats)
        returns = dm.lambda_returns(rewards, values, continues[1:], lam)
        weight = torch.cumprod(continues[:-1], 0)  # w_t = Π_{k≤t} c_k, including c_0
        scale = retnorm.update(returns).to(feats.device)
        advantage = (returns - values[:-1]) / scale
        slow_target = slow_critic.mean(feats[:-1])
    dist = actor(feats[:-1])
    entropy = dist.entropy()
    policy = -(weight * (dist.log_prob(actions) * advantage + entropy_scale * entropy)).mean()
    value = (weight * (critic.loss(feats[:-1], returns) + critic.loss(feats[:-1], slow_target))).mean()
    return BehaviourLosses(policy, value, returns, advantage, weight, entropy.detach(), scale)
