"""The world model's compute switches (issue 17): precision fp32/bf16 and the reference/fast/compiled paths.

The fast paths must compute what the reference path computes (to stated tolerances), bf16 must plan and learn
like fp32 on a fixed model, and a run must record how it computed so that no resume mixes two compute paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from algorithms.cli import main
from algorithms.common.buffer import ReplayBuffer
from algorithms.common.config import ConfigError
from algorithms.common.configure import differences as _differences
from algorithms.common.configure import semantic as _semantic
from algorithms.mbdpo.agent import Agent as MBDPOAgent
from algorithms.mbdpo.agent import Config as MBDPOConfig
from algorithms.tdmpc2.agent import Agent, Config
from algorithms.tdmpc2.planner import MPPIConfig, estimate_value, mppi_plan
from algorithms.world_model import WorldModel, resolve
from algorithms.world_model.compute import (autocast, bf16_is_native, compile_problem, layer_norm_mish,
                                            resolve_compute, resolve_precision, set_compute_path)
from algorithms.world_model.layers import QEnsemble, SimNorm
from envs import get_task, make_env
from tests.helpers import train_rows_without_wall_time

CPU = torch.device("cpu")
SMALL = dict(model_size="1.7M", enc_dim=64, mlp_dim=64, latent_dim=32, num_samples=64, num_elites=8,
             num_pi_trajs=4, iterations=2, batch_size=32, diag_every=0)


def test_auto_resolves_per_device_and_bad_values_are_named():
    assert resolve_precision("auto", CPU) == ("bf16" if bf16_is_native(CPU) else "fp32")
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    assert resolve_compute("auto", CPU) == ("compiled" if compile_problem(CPU) is None else "fast")
    assert resolve_compute("reference", CPU) == "reference"
    meta = torch.device("meta")  # the memory estimate builds agents there: shapes only, nothing to compile
    assert resolve_compute("compiled", meta) == "compiled" and resolve_compute("auto", meta) == "fast"
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: auto, fp32, bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="'agent.precision' is 'fp16'; valid: auto, fp32, bf16"):
        Config(precision="fp16").validate()
    with pytest.raises(ConfigError, match="'agent.compute' is 'fastest'; valid: auto, reference, fast, compiled"):
        Config(compute="fastest").validate()


def test_fast_simnorm_matches_reference():
    x = torch.randn(5, 7, 64) * 3
    reference, fast = SimNorm(8), SimNorm(8)
    fast.compute_path = "fast"
    out = fast(x)
    torch.testing.assert_close(out, reference(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.view(5, 7, 8, 8).sum(-1), torch.ones(5, 7, 8))


def test_fused_layer_norm_mish_matches_eager_values_and_gradients():
    problem = compile_problem(CPU)
    if problem is not None:  # no compiler here: the explicit choice is refused with the reason
        with pytest.raises(ValueError, match="agent.compute=compiled needs torch.compile"):
            resolve_compute("compiled", CPU)
        return
    torch.manual_seed(0)
    cases = [(torch.randn(100, 48) * 2, torch.randn(48), torch.randn(48)),
             (torch.randn(3, 50, 48), torch.randn(48), torch.randn(48)),
             (torch.randn(4, 70, 48), torch.randn(4, 1, 48), torch.randn(4, 1, 48))]  # a Q-ensemble's layout
    for x, weight, bias in cases:
        x, weight, bias = (t.clone().requires_grad_() for t in (x, weight, bias))
        eager = torch.nn.functional.mish(torch.nn.functional.layer_norm(x, x.shape[-1:]) * weight + bias)
        fused = layer_norm_mish(x, weight, bias)
        torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
        grads_eager = torch.autograd.grad(eager.square().sum(), (x, weight, bias))
        grads_fused = torch.autograd.grad(fused.square().sum(), (x, weight, bias))
        for a, b in zip(grads_fused, grads_eager):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert layer_norm_mish(torch.randn(64, 48).bfloat16(), torch.ones(48), torch.zeros(48)).dtype == torch.bfloat16


def varied_model(num_q: int = 5) -> WorldModel:
    """A fixed random model whose reward and Q heads are not zero (their released init is), so plans differ."""
    torch.manual_seed(0)
    model = WorldModel(resolve("1.7M", mlp_dim=64, latent_dim=32, enc_dim=64, num_q=num_q), (5,), 2).eval()
    with torch.no_grad():
        for layer in (model._reward[-1], model._Qs.out, model._target_Qs.out):
            layer.weight.normal_(0, 0.3)
    return model


def test_fast_q_evaluates_only_the_two_members_used_with_the_same_values():
    model = varied_model(num_q=5)
    z, action = model.encode(torch.randn(30, 5)), torch.rand(30, 2) * 2 - 1
    members_seen = []
    hook = model._Qs.out.register_forward_hook(lambda module, args, out: members_seen.append(out.shape[0]))
    values = {}
    for path in ("reference", "fast"):
        set_compute_path(model, path)
        for kind in ("avg", "min"):
            generator = torch.Generator().manual_seed(3)
            values[path, kind] = model.Q(z, action, return_type=kind, generator=generator)
        values[path, "detach"] = model.Q(z, action, return_type="avg", detach=True,
                                         generator=torch.Generator().manual_seed(4))
        values[path, "target"] = model.Q(z, action, return_type="min", target=True, members=(0, 1))
    hook.remove()
    assert members_seen == [5, 5, 5, 2, 2, 2]  # the target ensemble is a copy without the hook
    for key in ("avg", "min", "detach", "target"):
        torch.testing.assert_close(values["fast", key], values["reference", key], atol=1e-6, rtol=1e-6)
    set_compute_path(model, "fast")
    assert model.Q(z, action, return_type="all").shape[0] == 5  # "all" still evaluates every member


def test_q_ensemble_member_subset_equals_slice_of_all():
    torch.manual_seed(0)
    ensemble = QEnsemble(5, 12, [16, 16], 7, dropout=0.0).eval()
    x = torch.randn(9, 12)
    members = torch.tensor([3, 1])
    torch.testing.assert_close(ensemble(x, members), ensemble(x)[members], atol=1e-6, rtol=0)


def test_bf16_values_elites_and_plans_agree_with_fp32():
    """Tolerances: values within 10 % of their spread over the candidates (bf16 keeps 8 bits of mantissa), at
    least 80 % of the elites shared, the final MPPI mean and std within 0.15 of fp32's (actions in [-1, 1])."""
    model = varied_model()
    z = model.encode(torch.randn(2, 5))
    actions = torch.rand(3, 2, 256, 2) * 2 - 1
    z_samples = z.unsqueeze(1).expand(2, 256, -1)

    def run(path, precision, fn):
        set_compute_path(model, path)
        torch.manual_seed(1)
        with torch.no_grad(), autocast(precision, CPU):
            return fn()

    value = lambda: estimate_value(model, z_samples, actions, 0.99).squeeze(-1)  # noqa: E731
    reference = run("reference", "fp32", value)
    fast = run("compiled" if compile_problem(CPU) is None else "fast", "bf16", value)
    assert fast.dtype == torch.float32
    spread = (reference.max(1).values - reference.min(1).values).unsqueeze(1)
    assert ((fast - reference).abs() / spread).max() < 0.1
    for row in range(2):
        elites = lambda v: set(torch.topk(v[row], 32).indices.tolist())  # noqa: E731
        assert len(elites(fast) & elites(reference)) >= 0.8 * 32
    cfg = MPPIConfig(num_samples=256, num_elites=32, num_pi_trajs=8)
    plan = lambda: mppi_plan(model, z, cfg, 0.99, eval_mode=True)  # noqa: E731
    plan_ref, plan_fast = run("reference", "fp32", plan), run("fast", "bf16", plan)
    assert plan_fast.mean.dtype == torch.float32
    assert (plan_fast.mean - plan_ref.mean).abs().max() < 0.15
    assert (plan_fast.std - plan_ref.std).abs().max() < 0.15


def filled_agent(**overrides):
    torch.manual_seed(0)
    env = make_env("cartpole-balance", seed=0)
    cls, cfg_cls = (MBDPOAgent, MBDPOConfig) if overrides.pop("mbdpo", False) else (Agent, Config)
    agent = cls(cfg_cls(**{**SMALL, **overrides}), get_task("cartpole-balance"), env.observation_space,
                env.action_space, CPU)
    buffer = ReplayBuffer(2000, env.observation_space.shape, env.observation_space.dtype, env.action_space.shape[0], 0)
    obs, _ = env.reset(seed=0)
    buffer.add_first(obs)
    for _ in range(200):
        action = env.action_space.sample()
        obs, reward, terminated, _, _ = env.step(action)
        buffer.add(action, reward, terminated, obs)
    return agent, buffer, obs


@pytest.mark.parametrize("mbdpo", [False, True])
def test_bf16_losses_agree_with_fp32_over_updates(mbdpo):
    """Same seed, same batches: eight updates in bf16 on the fast path against the fp32 reference path. Losses
    within 10 % (bf16 activations; the Q members' dropout draws differ between the paths)."""
    reference, ref_buffer, _ = filled_agent(mbdpo=mbdpo, precision="fp32", compute="reference")
    fast, fast_buffer, _ = filled_agent(mbdpo=mbdpo, precision="bf16")
    assert fast.precision == "bf16" and reference.compute_path == "reference"
    keys = ("consistency_loss", "reward_loss", "value_loss", "pi_loss") + (("energy_loss",) if mbdpo else ())
    for _ in range(8):
        torch.manual_seed(5)
        ref_metrics = reference.update(ref_buffer)
        torch.manual_seed(5)
        fast_metrics = fast.update(fast_buffer)
        for key in keys:
            assert fast_metrics[key] == pytest.approx(ref_metrics[key], rel=0.1, abs=1e-3), key
    for p in fast.model.parameters():
        assert p.dtype == torch.float32
    for state in fast.optim.state.values():
        assert all(v.dtype == torch.float32 for v in state.values() if torch.is_tensor(v) and v.dim())
    if mbdpo:  # the energy's EMA statistics received bf16 before issue 17
        assert fast.energy.mean.dtype == torch.float32 and fast.energy.std.dtype == torch.float32
        assert float(fast.energy.mean) != 0.0


def test_act_under_bf16_returns_fp32_plans():
    agent, _, obs = filled_agent(precision="bf16", mbdpo=True)
    action = agent.act(obs, eval_mode=False)
    assert action.dtype == np.float32 and agent.prev_plan.dtype == torch.float32


def test_configs_from_before_the_switch_compare_as_fp32_reference():
    old = {"algo": "tdmpc2", "agent": {"model_size": "1.7M"}}
    new = {"algo": "tdmpc2", "agent": {"model_size": "1.7M", "precision": "fp32", "compute": "reference"}}
    assert _differences(_semantic(old), _semantic(new)) == []
    fast = {"algo": "tdmpc2", "agent": {"model_size": "1.7M", "precision": "bf16", "compute": "fast"}}
    assert _differences(_semantic(old), _semantic(fast)) == ["agent.compute: 'reference' -> 'fast'",
                                                             "agent.precision: 'fp32' -> 'bf16'"]


TRAIN = ["train", "--algo", "tdmpc2", "--task", "cartpole-balance", "--seed", "4", "--steps", "2000",
         "seed_steps=500", "eval_every=1000", "eval_episodes=1", "checkpoint_every=1000", "progress=false",
         "pretrain_updates=5", "threads=1", "log_every=500", *[f"{k}={v}" for k, v in SMALL.items()]]


def test_run_records_the_resolved_compute_path_and_refuses_to_mix(tmp_path, capsys):
    assert main([*TRAIN, "--results-dir", str(tmp_path)]) == 0
    run = tmp_path / "runs" / "tdmpc2" / "cartpole-balance" / "4"
    text = (run / "config.yaml").read_text()
    precision, compute = resolve_precision("auto", CPU), resolve_compute("auto", CPU)
    assert f"precision: {precision}" in text and f"compute: {compute}" in text
    other = "fp32" if precision == "bf16" else "bf16"
    capsys.readouterr()
    assert main([*TRAIN, "--results-dir", str(tmp_path), f"precision={other}"]) != 0
    assert f"agent.precision: '{precision}' -> '{other}'" in capsys.readouterr().err
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    from algorithms.commands.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(run, episodes=1)  # re-evaluated with the recorded compute path
    assert result["env_step"] == 2000 and np.isfinite(result["episode_return"])


def test_killed_fast_default_run_resumes_bit_for_bit_in_a_new_process(tmp_path):
    """SIGKILL after the first checkpoint, resume in a fresh process (fresh compiled kernels): the same files as an
    uninterrupted run of the fast default."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    args = [a for a in TRAIN if a != "train"]

    def start(results: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "algorithms.cli", "train", *args, "--results-dir",
                                 str(results)], cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reference = start(tmp_path / "a")
    killed = start(tmp_path / "b")
    run_b = tmp_path / "b" / "runs" / "tdmpc2" / "cartpole-balance" / "4"
    deadline = time.time() + 600
    while not list((run_b / "checkpoints").glob("step_0000001000.sha256")) and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert killed.returncode != 0
    _, err = reference.communicate(timeout=900)
    assert reference.returncode == 0, err
    resumed = start(tmp_path / "b")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert "resuming from" in err
    run_a = tmp_path / "a" / "runs" / "tdmpc2" / "cartpole-balance" / "4"
    assert (run_b / "eval.csv").read_bytes() == (run_a / "eval.csv").read_bytes()
    assert train_rows_without_wall_time(run_b / "train.csv") == train_rows_without_wall_time(run_a / "train.csv")


def test_cuda_runs_tf32_matmuls_as_the_released_trainers_did():
    """D14: the released trainers enable TF32 matmuls on CUDA, so ``auto`` means tf32 there; tf32 is CUDA-only
    (one clear error elsewhere) and its context turns the flags on and restores them."""
    from algorithms.world_model.compute import resolve_precision

    assert resolve_precision("auto", torch.device("cuda")) == "tf32"
    assert resolve_precision("tf32", torch.device("cuda")) == "tf32"
    with pytest.raises(ValueError, match="tf32 is a CUDA matmul mode.*cpu"):
        resolve_precision("tf32", torch.device("cpu"))
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with autocast("tf32", torch.device("cuda")):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_tf32_on_a_cpu_run_is_one_config_error():
    import gymnasium as gym

    box = lambda n: gym.spaces.Box(-1.0, 1.0, (n,), np.float32)  # noqa: E731
    with pytest.raises(ConfigError, match="precision=tf32"):
        Agent(Config(model_size="1.7M", precision="tf32"), get_task("cartpole-balance"), box(5), box(1),
              torch.device("cpu"))
