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

import re
import numpy as np
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
    """Assert ``ours`` ≈ ``theirs`` within ATOL + RTOL·|theirs|, and record the largest difference under ``what``
    (step numbers dropped, so that a chain of plans is one row of the table)."""
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs released {tuple(theirs.shape)}"
    excess = ((ours.float() - theirs.float()).abs() - RTOL * theirs.float().abs()).max().item()
    diff = (ours.float() - theirs.float()).abs().max().item()
    assert excess <= ATOL, f"{what}: max |ours − released| = {diff:.3g} beyond {ATOL} + {RTOL}·|released|"
    row = re.sub(r", step \d+$", "", what)
    row = re.sub(r"^(gradient|after the update:) (energy )?(\w+)\..*$", r"\1 \2\3", row)  # one row per module
    MAX_DIFFERENCES[row] = max(MAX_DIFFERENCES.get(row, 0.0), diff)


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


# ------------------------------------------------------------------------------------------------- one update

UPDATE_PAIRS = [(algo, "cartpole-balance") for algo in ("mbdpo", "tdmpc2")] + [("mbdpo", "cheetah-run")]


@pytest.fixture(scope="module", params=UPDATE_PAIRS, ids=[f"{a}-{t}" for a, t in UPDATE_PAIRS])
def updated(request, tmp_path_factory) -> dict:
    """One update of each agent on the same batch from the same random state, dropout 0 on both sides (a
    dropout mask is random per element and would have to be replayed; dropout's distribution is compared apart)."""
    R.require_released()
    algo, task = request.param
    pair = A.build_pair(algo, task, tmp_path_factory.mktemp(f"update-{algo}"), {"dropout": 0.0}, dropout=0.0)
    ours_batch, theirs_batch = A.sample_batch(pair, pair.ours.cfg.batch_size)
    names = A.parameter_names(pair.ours.model)
    if hasattr(pair.ours, "energy"):
        names.update(A.parameter_names(pair.ours.energy, "energy."))
    recorders = {"ours": A.GradientRecorder(pair.ours.optim, names),
                 "theirs": A.GradientRecorder(pair.theirs.optim, A.parameter_names(pair.theirs.model))}
    torch.manual_seed(11)
    ours = pair.ours.update(ours_batch)
    torch.manual_seed(11)  # the same random stream: both draw the policy noise and the Q pairs in the same order
    theirs = {k: float(v) for k, v in pair.theirs._update(*theirs_batch).items()}
    return {"pair": pair, "ours": ours, "theirs": theirs, "grads": {k: r.grads for k, r in recorders.items()}}


def test_update_losses_and_gradient_norm_agree(updated):
    ours, theirs = updated["ours"], updated["theirs"]
    shared = sorted(set(ours) & set(theirs))
    assert {"consistency_loss", "reward_loss", "value_loss", "total_loss", "grad_norm", "pi_loss"} <= set(shared)
    for key in shared:
        close(torch.tensor(ours[key]), torch.tensor(theirs[key]), f"update: {key}")


def test_update_gradients_agree_module_by_module(updated):
    pair, grads = updated["pair"], updated["grads"]
    hidden = len(pair.ours.model._Qs.hidden)
    theirs = grads["theirs"]
    assert grads["ours"], "our optimiser applied no gradient"
    for key, grad in grads["ours"].items():
        name = A.released_name(key, hidden)
        assert name in theirs, f"gradient of {key!r} ({name!r}) has no released counterpart"
        close(A.to_released(grad, key), theirs[name], f"gradient {key}")


def test_parameters_after_the_update_agree(updated):
    pair = updated["pair"]
    theirs = pair.theirs.model.state_dict()
    for name, value in A.mapped_state(pair.ours.model, pair.theirs.model).items():
        close(value, theirs[name], f"after the update: {name}")
    close(pair.ours.scale.value.reshape(-1), pair.theirs.scale.value.reshape(-1), "running scale")
    if pair.algo == "mbdpo":
        for key, value in pair.ours.energy.state_dict().items():
            if key.startswith("net."):
                close(value, theirs[f"_F.{key.removeprefix('net.')}"], f"after the update: energy {key}")
        close(pair.ours.energy.mean.reshape(1), pair.theirs._contrastive_mean, "energy EMA mean")
        close(pair.ours.energy.std.reshape(1), pair.theirs._contrastive_std, "energy EMA std")


# ------------------------------------------------------------------------------------------------ the planner

LIGHT = {"mbdpo": ({"num_samples": 64, "num_elites": 8, "num_pi_trajs": 4, "diffusion_steps": 5},
                   {"diffusion_num_samples": 64, "diffusion_num_elites": 8, "diffusion_num_pi_trajs": 4,
                    "diffusion_steps": 5}),
         "tdmpc2": ({"num_samples": 64, "num_elites": 8, "num_pi_trajs": 4, "iterations": 2},
                    {"num_samples": 64, "num_elites": 8, "num_pi_trajs": 4, "iterations": 2})}
"""Lighter planning on both sides (ours, released): the same computation on fewer candidates, so that chains of
plans stay cheap on a CPU; ``pytest -m slow`` runs the released defaults."""
CHAIN = 8


def acts_side_by_side(pair: A.Pair, eval_mode: bool, steps: int, seed: int = 0):
    """A warm-started chain of acts on both sides from the same random draws (recorded on ours, replayed into the
    released code): yields (step, our action, the released action) after each pair of acts."""
    rng = np.random.default_rng(seed)
    pair.ours.reset()
    for step in range(steps):
        obs = rng.standard_normal(pair.obs_dim).astype(np.float32)
        replay = A.RandomReplay()
        with replay.recording():
            action = pair.ours.act(obs, eval_mode)
        with replay.replaying():
            released = pair.theirs.act(torch.as_tensor(obs), t0=step == 0, eval_mode=eval_mode)
        assert not replay.leftover(), f"step {step}: draws ours made and the released code did not: {replay.leftover()}"
        yield step, action, released


def plan_chain(pair: A.Pair, eval_mode: bool, steps: int = CHAIN, seed: int = 0) -> list[tuple[float, float]]:
    """:func:`acts_side_by_side` with every action and warm start compared: per step, max |action difference| and
    max |warm-start difference|."""
    out = []
    for step, action, released in acts_side_by_side(pair, eval_mode, steps, seed):
        plan = pair.ours.prev_mean if pair.algo == "tdmpc2" else pair.ours.prev_plan
        close(torch.as_tensor(np.asarray(action)), released, f"{pair.algo} act, step {step}")
        close(plan[0], pair.theirs._prev_mean, f"{pair.algo} warm start, step {step}")
        out.append((float(np.abs(np.asarray(action) - released.numpy()).max()),
                    float((plan[0] - pair.theirs._prev_mean).abs().max())))
    return out


@pytest.mark.parametrize("algo, task", PAIRS, ids=[f"{a}-{t}" for a, t in PAIRS])
def test_chains_of_plans_agree(algo, task, tmp_path):
    R.require_released()
    ours, theirs = LIGHT[algo]
    pair = A.build_pair(algo, task, tmp_path, theirs, **ours)
    for eval_mode in (True, False):
        differences = plan_chain(pair, eval_mode)
        assert len(differences) == CHAIN


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["mbdpo", "tdmpc2"])
def test_chains_of_plans_agree_at_the_released_settings(algo, tmp_path):
    R.require_released()
    pair = A.build_pair(algo, "cheetah-run", tmp_path)
    for eval_mode in (True, False):
        plan_chain(pair, eval_mode)


# ------------------------------------------------------------------------------- the score network (D13)

SCORE_RTOL = 1e-4
"""With the score network on, the MC target's 64 weighted returns are reduced in another order on each side:
losses and gradients agree to ~1e-5 relative (measured: score loss 0.181404 vs 0.181405, gradient norm 11.66170
vs 11.66175), so these comparisons allow 1e-4 relative."""


def score_network_update(tmp_path, **ours) -> tuple[dict, dict, dict, dict]:
    pair = A.build_pair("mbdpo", "cartpole-balance", tmp_path, {"dropout": 0.0, "use_score_network": True},
                        dropout=0.0, use_score_network=True, **ours)
    ours_batch, theirs_batch = A.sample_batch(pair, pair.ours.cfg.batch_size)
    names = A.parameter_names(pair.ours.model)
    names.update(A.parameter_names(pair.ours.energy, "energy."))
    names.update(A.parameter_names(pair.ours.score_net, "score_net."))
    mine = A.GradientRecorder(pair.ours.optim, names)
    theirs = A.GradientRecorder(pair.theirs.optim, A.parameter_names(pair.theirs.model))
    replay = A.RandomReplay()
    torch.manual_seed(3)
    with replay.recording():
        ours_metrics = pair.ours.update(ours_batch)
    with replay.replaying():
        theirs_metrics = {k: float(v) for k, v in pair.theirs._update(*theirs_batch).items()}
    assert not replay.leftover(), f"draws ours made and the released code did not: {replay.leftover()}"
    return ours_metrics, theirs_metrics, mine.grads, theirs.grads


def test_score_network_update_agrees(tmp_path):
    """D13: the released score loss backpropagates into the encoder through the latents, and its MC target adds
    +1e-6 to the returns' std and +1e-8 to 1 − ᾱ; ours does the same by default (``score_encoder_grad``,
    ``score_target=released``)."""
    R.require_released()
    ours, theirs, ours_grads, theirs_grads = score_network_update(tmp_path)
    for key in ("score_loss", "total_loss", "grad_norm", "value_loss", "pi_loss"):
        assert ours[key] == pytest.approx(theirs[key], rel=SCORE_RTOL, abs=ATOL), key
    for key, grad in ours_grads.items():
        name = A.released_name(key, 2)
        assert name in theirs_grads, f"gradient of {key!r} has no released counterpart"
        released = theirs_grads[name]
        excess = ((A.to_released(grad, key) - released).abs() - SCORE_RTOL * released.abs()).max().item()
        assert excess <= 1e-5 + SCORE_RTOL * released.abs().max().item(), f"gradient {key}"


def test_the_detached_reading_of_d13_is_caught(tmp_path):
    """Flip D13 to the harness's earlier reading (latents detached): the encoder's gradient no longer matches —
    the comparison above is what would catch a reintroduced departure."""
    R.require_released()
    _, _, ours_grads, theirs_grads = score_network_update(tmp_path, score_encoder_grad=False)
    mine, released = ours_grads["_encoder.0.weight"], theirs_grads["_encoder.state.0.weight"]
    assert (mine - released).norm() > 0.5 * released.norm()


# ---------------------------------------------------------------------------------------------- dropout on

DRAWS = 400


def test_q_dropout_has_the_released_distribution(pair):
    """With the default dropout (0.01, first layer of each Q member) on, single draws differ (random masks), so
    the comparison is distributional: for each member, the mean over draws of the batch-mean decoded Q agrees
    within 4 standard errors, and the spread of that quantity across draws within a factor 1.25 — a wrong rate,
    layer or scaling moves one of the two."""
    ours, theirs = pair.ours.model, pair.theirs.model
    if ours._Qs.hidden[0].dropout is None:
        pytest.fail("our Q ensemble has no dropout at the default config")
    with torch.no_grad():  # a zero output layer (as initialised) would hide every hidden unit: give it weights
        ours._Qs.out.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(9))
    A.load_into_released(ours, theirs)  # both sides keep identical weights for the other tests of this pair
    _, action, z = inputs(pair)
    cfg = pair.theirs.cfg
    samples = {"ours": [], "released": []}
    ours.train()
    theirs.train()
    try:
        with torch.no_grad():
            for i in range(DRAWS):
                torch.manual_seed(1000 + i)
                samples["ours"].append(wm_math.two_hot_inv(ours.Q(z, action, return_type="all"), cfg.num_bins,
                                                           cfg.vmin, cfg.vmax).mean(dim=(1, 2)))
                torch.manual_seed(5000 + i)
                samples["released"].append(pair.modules.math.two_hot_inv(
                    theirs.Q(z, action, None, return_type="all"), cfg).mean(dim=(1, 2)))
    finally:
        ours.eval()
        theirs.eval()
    mine, released = torch.stack(samples["ours"]), torch.stack(samples["released"])  # (draws, members)
    assert (mine.std(0) > 0).all(), "dropout changed nothing: no randomness on our side"
    se = (mine.var(0) / DRAWS + released.var(0) / DRAWS).sqrt()
    gap = (mine.mean(0) - released.mean(0)).abs()
    assert (gap <= 4 * se).all(), f"Q mean under dropout: gap {gap.tolist()} vs 4 SE {(4 * se).tolist()}"
    ratio = mine.std(0) / released.std(0)
    assert ((ratio > 1 / 1.25) & (ratio < 1.25)).all(), f"Q spread under dropout: ours / released = {ratio.tolist()}"


# ------------------------------------------------------------------------------------- our fast default

@pytest.mark.parametrize("algo", ["mbdpo", "tdmpc2"])
def test_fast_default_stays_within_the_compute_tolerances_of_the_released_code(algo, tmp_path):
    """Our default computes faster (``precision``/``compute`` = auto: bf16 and fused kernels on a CPU with native
    bf16) than the released fp32 code; against it directly, with the tolerances tests/test_compute.py states for
    the fast path: values within 10 % of their spread over the batch, the policy mean within 0.15, and the first
    action of a plan chain within 0.15 (actions in [-1, 1]; measured on this CPU, light planning, 4 warm-started
    acts: MBDPO 0.002, TD-MPC2 0 — the same elite chosen)."""
    R.require_released()
    pair = A.build_pair(algo, "cheetah-run", tmp_path, precision="auto", compute="auto")
    ours, theirs = pair.ours, pair.theirs.model
    obs, action, _ = inputs(pair)
    with torch.no_grad(), ours.autocast():
        z = ours.model.encode(obs)
        q = ours.model.Q(z, action, return_type="all").float()
        r = ours.model.reward(z, action).float()
        mu = ours.model.pi(z).mean
    with torch.no_grad():
        z_ref = theirs.encode(obs, None)
        q_ref, r_ref = theirs.Q(z_ref, action, None, return_type="all"), theirs.reward(z_ref, action, None)
        mu_ref = theirs.pi(z_ref, None)[1]["mean"]
    for name, fast, ref in (("Q logits", q, q_ref), ("reward logits", r, r_ref)):
        spread = ref.amax(-1, keepdim=True) - ref.amin(-1, keepdim=True) + 1e-6
        assert ((fast - ref).abs() / spread).max() < 0.1, name
    assert (mu - mu_ref).abs().max() < 0.15
    light, released_light = LIGHT[algo]
    chain = A.build_pair(algo, "cheetah-run", tmp_path / "chain", released_light, precision="auto", compute="auto",
                         **light)
    moves = [float(np.abs(np.asarray(fast) - released.numpy()).max())
             for _, fast, released in acts_side_by_side(chain, True, 4)]
    MAX_DIFFERENCES[f"{algo} act, fast default (bf16/compiled here) vs released fp32"] = max(moves)
    assert max(moves) < 0.15, moves


@pytest.mark.parametrize("reading", [{"sampler": "ddpm"}, {"weighting": "softmax"}], ids=["ddpm", "softmax"])
def test_paper_text_readings_are_caught(reading, tmp_path):
    """Our options for the paper text's readings (the stochastic DDPM sampler from N(0, I); a plain softmax of
    returns for the MC weights) are not the released algorithm, and the plan comparison says so: over 3 acts the
    actions move by more than the tolerance, or the two sides draw different random numbers."""
    R.require_released()
    ours, theirs = LIGHT["mbdpo"]
    pair = A.build_pair("mbdpo", "cartpole-balance", tmp_path, theirs, **ours, **reading)
    moves = []
    try:
        for _, action, released in acts_side_by_side(pair, True, 3):
            moves.append(float(np.abs(np.asarray(action) - released.numpy()).max()))
    except AssertionError as mismatch:  # the draws differ: caught as well
        assert "draw" in str(mismatch)
        return
    assert max(moves) > 10 * ATOL, f"{reading}: acts agree with the released code ({moves})"
