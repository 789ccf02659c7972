"""DreamerV3's numerics against hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from algorithms.dreamerv3 import math as dm


def test_symlog_symexp_are_inverse_and_compress():
    x = torch.tensor([-1e6, -10.0, -1.0, 0.0, 0.5, 3.0, 1e5], dtype=torch.float64)
    torch.testing.assert_close(dm.symexp(dm.symlog(x)), x)
    assert dm.symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    assert dm.symlog(torch.tensor(-(math.e - 1))).item() == pytest.approx(-1.0)


def test_twohot_round_trip_and_weights():
    bins = dm.twohot_bins()
    assert len(bins) == 255 and abs(bins[127].item()) < 1e-6 and bins[0] == pytest.approx(-dm.symexp(torch.tensor(20.0)))
    x = torch.tensor([0.0, 0.37, -2.5, 13.0, 950.0, -4e3])
    target = dm.twohot_encode(x, bins)
    torch.testing.assert_close(target.sum(-1), torch.ones(len(x)))
    assert ((target > 0).sum(-1) <= 2).all()
    torch.testing.assert_close((target * bins).sum(-1), x, rtol=1e-5, atol=1e-5)  # decode(encode(x)) = x
    # by hand on simple bins: 0.25 between 0 and 1 → weights 0.75 / 0.25
    simple = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    torch.testing.assert_close(dm.twohot_encode(torch.tensor(0.25), simple), torch.tensor([0.0, 0.75, 0.25, 0.0]))
    torch.testing.assert_close(dm.twohot_encode(torch.tensor(9.0), simple), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    # the head's prediction of a target's logits recovers the target
    logits = torch.log(target.clamp_min(1e-30))
    torch.testing.assert_close(dm.twohot_mean(logits, bins), x, rtol=1e-4, atol=1e-4)


def test_unimix_floor():
    logits = torch.tensor([[50.0] + [-50.0] * 31])
    probs = dm.unimix_probs(logits, 0.01)
    assert probs.min().item() >= 0.01 / 32 * (1 - 1e-6)  # float32
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))
    assert probs[0, 0].item() == pytest.approx(0.99 + 0.01 / 32)


def test_straight_through_sample():
    probs = torch.tensor([[0.2, 0.8], [0.5, 0.5]], requires_grad=True)
    sample = dm.sample_onehot_st(probs, torch.Generator().manual_seed(0))
    hard = sample.detach().round()
    torch.testing.assert_close(sample.detach(), hard)  # forward: the one-hot sample (up to float rounding)
    assert hard.sum(-1).tolist() == [1.0, 1.0]
    (sample * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    torch.testing.assert_close(probs.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # gradient passes straight


def test_kl_balance_and_free_bits_by_hand():
    q = torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]], requires_grad=True)  # 2 steps, 1 latent, 2 classes
    p = torch.tensor([[[0.5, 0.5]], [[0.1, 0.9]]], requires_grad=True)
    dyn, rep = dm.kl_losses(q, p, free_bits=1.0)
    kl = 0.9 * math.log(9) + 0.1 * math.log(1 / 9)  # KL[q‖p] of step 2 = 0.8 ln 9 ≈ 1.758
    torch.testing.assert_close(dyn, torch.tensor([1.0, kl]))  # step 1: KL 0 → clipped to the free bit
    torch.testing.assert_close(rep, torch.tensor([1.0, kl]))
    dyn.sum().backward(retain_graph=True)
    assert q.grad is None and p.grad[0].abs().sum() == 0 and p.grad[1].abs().sum() > 0  # dyn trains the prior only
    p.grad = None
    rep.sum().backward()
    assert p.grad is None and q.grad[1].abs().sum() > 0  # rep trains the posterior only


def test_lambda_returns_by_hand():
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.0, 1.0, 2.0, 3.0])
    continues = torch.tensor([0.9, 0.9, 0.9])
    lam = 0.5
    r2 = 2.0 + 0.9 * (0.5 * 3.0 + 0.5 * 3.0)  # R_3 = v_3
    r1 = 0.0 + 0.9 * (0.5 * 2.0 + 0.5 * r2)
    r0 = 1.0 + 0.9 * (0.5 * 1.0 + 0.5 * r1)
    torch.testing.assert_close(dm.lambda_returns(rewards, values, continues, lam), torch.tensor([r0, r1, r2]))
    # λ = 1: discounted Monte Carlo with bootstrap; λ = 0: one-step TD targets
    mc = dm.lambda_returns(rewards, values, continues, 1.0)
    assert mc[0].item() == pytest.approx(1 + 0.9 * (0 + 0.9 * (2 + 0.9 * 3)))
    torch.testing.assert_close(dm.lambda_returns(rewards, values, continues, 0.0), rewards + continues * values[1:])


def test_return_normalizer_percentiles():
    norm = dm.ReturnNormalizer(rate=1.0)  # rate 1: the batch's own percentiles
    returns = torch.arange(101, dtype=torch.float32)  # P5 = 5, P95 = 95
    assert norm.update(returns).item() == pytest.approx(90.0)
    small = dm.ReturnNormalizer(rate=1.0)
    assert small.update(torch.linspace(0, 0.5, 11)).item() == 1.0  # small returns are not scaled up
    ema = dm.ReturnNormalizer(rate=0.01)
    ema.update(returns)
    assert ema.scale().item() == 1.0 and ema.hi.item() == pytest.approx(0.95) and ema.lo.item() == pytest.approx(0.05)
    restored = dm.ReturnNormalizer()
    restored.load_state_dict(ema.state_dict())
    assert restored.hi.item() == ema.hi.item()


def test_bounded_normal():
    dist = dm.bounded_normal(torch.tensor([[10.0, -10.0]]), torch.tensor([[-100.0, 100.0]]))
    torch.testing.assert_close(dist.mean, torch.tensor([[1.0, -1.0]]))
    torch.testing.assert_close(dist.base_dist.stddev, torch.tensor([[0.1, 1.0]]))
    assert dist.log_prob(torch.zeros(1, 2)).shape == (1,)


def test_twohot_bins_are_mirrored_and_uniform_logits_predict_zero():
    bins = dm.twohot_bins()
    assert torch.equal(bins, -bins.flip(0)) and bins[127] == 0.0
    assert torch.equal(dm.twohot_mean(torch.zeros(4, 255), bins), torch.zeros(4))  # a plain float32 sum: −0.32
    logits = torch.randn(64, 255, dtype=torch.float64) * 3.0
    logits[:, 120:135] += 30.0  # mass near zero, as a trained head has
    torch.testing.assert_close(dm.twohot_mean(logits.float(), bins), dm.twohot_mean(logits, bins.double()).float(),
                               rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="must be odd"):
        dm.twohot_bins(254)
