"""``mbdpo-bench evaluate``: re-evaluate a finished or running online run's checkpoint on fresh evaluation seeds
(the ``REEVALUATION`` seed stream), with the agent rebuilt from the run's own config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from algorithms.common.checkpoint import CheckpointManager
from algorithms.common.config import apply_values, load_yaml
from algorithms.common.configure import build_config, with_keys_added_later
from algorithms.common.device import resolve_device
from algorithms.common.evaluation import evaluate_policy
from algorithms.common.runfolder import RunError
from algorithms.common.seeding import REEVALUATION, derived_seed, seed_everything
from algorithms.registry import get_algorithm
from envs import make_env
from envs.registry import get_task


def evaluate_checkpoint(run_dir: Path, checkpoint: Path | None = None, episodes: int | None = None,
                        device: str = "auto") -> dict[str, Any]:
    """Re-evaluate a run's checkpoint (the newest usable one by default) on fresh evaluation seeds."""
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise RunError(f"{run_dir} is not a run folder (no config.yaml)")
    values = load_yaml(config_file)
    if values.get("offline"):
        dataset = values["offline"].get("dataset")
        raise RunError(f"{run_dir} is an offline multi-task run (offline.dataset={dataset!r}); "
                       "`evaluate` re-evaluates online single-task runs only: its eval.csv has every task's returns")
    # A config written before the render_shadows key existed belongs to a run rendered without shadows
    # (the harness's old fixed setting; FIDELITY.md D5): re-evaluate it as it was trained.
    values.setdefault("render_shadows", False)
    values = with_keys_added_later(values)  # and one from before issue 17 computed in fp32 on the reference path
    cfg = build_config(values.pop("algo", None), overrides=None)
    apply_values(cfg, values)
    cfg.device = device
    spec = get_task(cfg.task, cfg.obs)
    manager = CheckpointManager(run_dir / "checkpoints")
    if checkpoint is None:
        state, checkpoint, problems = manager.load_latest()
        if state is None:
            raise RunError(f"{run_dir} has no usable checkpoint" + (f": {'; '.join(problems)}" if problems else ""))
    else:
        state = manager.load(Path(checkpoint))
    seed_everything(cfg.seed)
    env = make_env(cfg.task, seed=cfg.seed, obs=cfg.obs, shadows=cfg.render_shadows)
    if cfg.is_finetune:  # the pretrained shape; the weights are the run's own, from its checkpoint below
        from algorithms.common import finetune

        agent = finetune.build_agent(cfg, spec, env, resolve_device(device))[0]
        env = finetune.PaddedObservationEnv(env, agent.observation_space.shape[0])
    else:
        agent = get_algorithm(cfg.algo).load().Agent(cfg.agent, spec, env.observation_space, env.action_space,
                                                     resolve_device(device))
    agent.load_state_dict(state["agent"])
    n = episodes or cfg.eval_episodes
    result = evaluate_policy(agent, env, n, lambda k: derived_seed(cfg.seed, REEVALUATION, k))
    return {"run_dir": str(run_dir), "checkpoint": str(checkpoint), "env_step": state["counters"]["env_step"],
            "task": spec.name, "algo": cfg.algo, "seed": cfg.seed, **result}
