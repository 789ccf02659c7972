"""Offline-to-online fine-tuning (issue 16; paper fig. 7, METHOD.md: "start from pretrained world model + score
net, skip seeding"): an online TD-MPC2/MBDPO run whose agent starts from a multi-task offline checkpoint.

What happens, and why:

* ``init.checkpoint`` names a pretrained offline run folder (its newest checkpoint) or one checkpoint file. When the
  config is built (:func:`resolve_init`) the file's SHA-256 is written into the config (``init.checkpoint_sha256``),
  so config.yaml and every checkpoint of the fine-tuning run record it and a resume whose pretrained file changed is
  refused as a config change (``runfolder.prepare_run_dir``, ``RunLoop.check_config``).
* The agent is built in the pretrained multi-task shape, as released TD-MPC2 fine-tuning loads a multi-task
  checkpoint into a model of the same shape (``tdmpc2/common/layers.py``'s ``api_model_conversion`` copies weights
  key for key, so the shape must match): the model keys (:data:`SHAPE_KEYS`, e.g. ``agent.model_size``) are taken
  from the pretrained run's config; one the user set to another value is a ConfigError naming both values.
  Observations are zero-padded to the pretrained observation size (:class:`PaddedObservationEnv`, as the released
  multi-task wrapper pads) and the agent cuts its actions to the task's action size before they reach the env.
* A task the pretraining saw plays with its own embedding row; an unseen task gets one new row appended to the
  embedding table. The released code has no rule for an unseen task's row (its fine-tuning runs a pretrained task
  index); we start the new row at the mean of the pretrained rows, the "average task", so that the first actions
  are those of a generalist rather than of a random embedding (``nn.Embedding``'s N(0, 1) draw). Its action mask
  is the task's action size and its discount the task's (``TaskSpec.discount``), as for pretrained tasks.
* Loaded: the whole world model (encoder, dynamics, reward, policy prior, Q-ensemble and target Qs, task
  embeddings), MBDPO's energy (with its EMA statistics) and score network. Not loaded, as in the released code whose
  ``TDMPC2.save`` keeps only the model: optimiser moments, the policy-loss scale and the update counter, which
  start fresh. The weights are loaded only when a run starts fresh; a resume loads the run's own checkpoint.
* No seed steps by default (``seed_steps`` None means 0 here; METHOD.md), an empty replay buffer unless
  ``init.seed_buffer_from`` names a dataset holding the task's episodes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from algorithms.common.checkpoint import CheckpointError, CheckpointManager
from algorithms.common.runfiles import file_sha256
from algorithms.common.config import ConfigError, RunConfig

SHAPE_KEYS = ("model_size", "enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q", "task_dim", "num_bins",
              "vmin", "vmax", "simnorm_dim", "termination")
"""Agent keys that set the shape of the world model's weights: a fine-tuning run takes them from the pretrained run."""
MBDPO_SHAPE_KEYS = ("energy", "classifier", "use_score_network", "score_t_dim")
"""MBDPO's further keys that set which networks exist and their shapes (the score network's input also holds the
horizon: ``horizon`` joins these when the pretrained run had a score network)."""



def checkpoint_file(location: str) -> Path:
    """The checkpoint ``init.checkpoint`` names: a ``.pt`` file, or the newest checkpoint of a run folder (or of
    its ``checkpoints`` folder); ConfigError naming the path when there is none."""
    path = Path(location).expanduser()
    if path.is_file():
        return path.resolve()
    for folder in (path / "checkpoints", path):
        found = CheckpointManager(folder).checkpoints() if folder.is_dir() else []
        if found:
            return found[0].resolve()
    raise ConfigError(f"config key 'init.checkpoint': {location} is neither a checkpoint file nor a run folder "
                      "with checkpoints (give a pretrained offline run's folder or one of its checkpoints/step_*.pt)")


@dataclass
class Pretrained:
    """A loaded pretrained checkpoint and the multi-task shape it was trained in."""

    path: Path
    sha256: str
    state: dict[str, Any]
    config: dict[str, Any]
    tasks: list[str]
    obs_dims: list[int]
    action_dims: list[int]

    @property
    def obs_dim(self) -> int:
        return max(self.obs_dims)

    @property
    def action_dim(self) -> int:
        return max(self.action_dims)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)


_CACHE: dict[tuple[str, str], Pretrained] = {}


def load_pretrained(location: str, sha256: str | None = None) -> Pretrained:
    """The checkpoint ``location`` names, verified (its sidecar) and, given ``sha256``, checked to be that file;
    ConfigError naming what is wrong. Kept in memory: the config check and the trainer read it once."""
    path = checkpoint_file(location)
    digest = file_sha256(path)
    if sha256 is not None and sha256 != digest:
        raise ConfigError(f"config key 'init.checkpoint_sha256' is {sha256}, but {path} has SHA-256 {digest}: the "
                          "pretrained checkpoint changed since this run was configured")
    key = (str(path), digest)
    if key in _CACHE:
        return _CACHE[key]
    try:
        state = CheckpointManager.load(path)
    except CheckpointError as err:
        raise ConfigError(f"config key 'init.checkpoint': {err}") from None
    config = state.get("config") or {}
    if not config.get("offline") and "tasks" not in state:
        raise ConfigError(f"config key 'init.checkpoint': {path} is not from an offline (multi-task) run; "
                          "fine-tuning starts from `mbdpo-bench train --offline` checkpoints")
    if "tasks" in state:  # written by OfflineTrainer.sampler_state
        tasks, obs_dims, action_dims = list(state["tasks"]), list(state["obs_dims"]), list(state["action_dims"])
    else:  # an older offline checkpoint: the shape is its dataset's
        from offline.dataset import DatasetError, read_manifest

        try:
            manifest = read_manifest(config["offline"]["dataset"])
        except DatasetError as err:
            raise ConfigError(f"config key 'init.checkpoint': {path} does not record its tasks and its dataset "
                              f"cannot be read ({err})") from None
        tasks, obs_dims, action_dims = manifest["tasks"], manifest["obs_dims"], manifest["action_dims"]
    pretrained = Pretrained(path, digest, state, config, tasks, [int(d) for d in obs_dims],
                            [int(d) for d in action_dims])
    _CACHE.clear()  # one pretrained checkpoint at a time: they can be large
    _CACHE[key] = pretrained
    return pretrained


def explicit_agent_keys(values: dict[str, Any], overrides: dict[str, str], agent_keys: set[str],
                        run_keys: set[str]) -> set[str]:
    """The agent keys the user set (config file's ``agent`` section, ``agent.x=`` or bare ``x=`` overrides)."""
    keys = set((values.get("agent") or {}).keys()) if isinstance(values.get("agent"), dict) else set()
    for key in overrides:
        if key.startswith("agent."):
            keys.add(key[len("agent."):])
        elif key in agent_keys and key not in run_keys:
            keys.add(key)
    return keys


def resolve_init(cfg: RunConfig, explicit: set[str]) -> None:
    """Check ``init.*`` and put the pretrained run's model shape into ``cfg.agent`` (and the checkpoint's SHA-256
    into ``cfg.init``); ConfigError naming the first problem. A no-op without ``init.checkpoint``."""
    init = cfg.init
    if not cfg.is_finetune:
        if init.seed_buffer_from is not None or init.checkpoint_sha256 is not None:
            raise ConfigError("config keys 'init.seed_buffer_from' and 'init.checkpoint_sha256' need "
                              "'init.checkpoint' (the pretrained checkpoint to fine-tune)")
        return
    if cfg.is_offline:
        raise ConfigError("config key 'init.checkpoint' starts an online run from a pretrained checkpoint; it cannot "
                          "be combined with offline.dataset (offline training)")
    pretrained = load_pretrained(init.checkpoint, init.checkpoint_sha256)
    init.checkpoint_sha256 = pretrained.sha256
    if pretrained.config.get("algo") != cfg.algo:
        raise ConfigError(f"config key 'algo' is {cfg.algo!r}, but the pretrained checkpoint {pretrained.path} was "
                          f"trained with {pretrained.config.get('algo')!r}; fine-tune with the same algorithm")
    trained = dict(pretrained.config.get("agent") or {})
    model = pretrained.state["agent"]["model"]
    if "task_emb.weight" in model:  # the width it trained with (None in its config: the task-count default)
        trained["task_dim"] = int(model["task_emb.weight"].shape[1])
    keys = list(SHAPE_KEYS)
    if cfg.algo == "mbdpo":
        keys += list(MBDPO_SHAPE_KEYS) + (["horizon"] if trained.get("use_score_network") else [])
    for key in keys:
        if key not in trained or not hasattr(cfg.agent, key):
            continue
        asked = getattr(cfg.agent, key)
        if key in explicit and asked != trained[key] and not (key == "task_dim" and asked is None):
            raise ConfigError(f"config key 'agent.{key}' is {asked!r}, but the pretrained checkpoint "
                              f"{pretrained.path} was trained with {trained[key]!r}; fine-tuning keeps the "
                              f"pretrained model's shape (leave agent.{key} out)")
        setattr(cfg.agent, key, trained[key])
    if init.seed_buffer_from is not None:
        from offline.dataset import DatasetError, read_manifest

        try:
            read_manifest(init.seed_buffer_from)
        except DatasetError as err:
            raise ConfigError(f"config key 'init.seed_buffer_from': {err}") from None


@dataclass
class FinetuneTask:
    """Where the online task sits in the fine-tuning agent's task table."""

    task_id: int
    new: bool
    num_tasks: int
    action_dims: list[int]
    discounts: list[float]


def plan_task(pretrained: Pretrained, spec, obs_dim: int, action_dim: int) -> FinetuneTask:
    """The online task's row: its pretrained index, or a new one appended; ConfigError when its sizes do not fit
    the pretrained padding (naming both values)."""
    from envs.registry import get_task

    if obs_dim > pretrained.obs_dim or action_dim > pretrained.action_dim:
        raise ConfigError(f"task {spec.name!r} has observation/action sizes {obs_dim}/{action_dim}, larger than the "
                          f"pretrained checkpoint's padding {pretrained.obs_dim}/{pretrained.action_dim} "
                          f"({pretrained.path}); fine-tune on a task that fits")
    discounts = [get_task(task, "state").discount for task in pretrained.tasks]
    if spec.name in pretrained.tasks:
        task_id = pretrained.tasks.index(spec.name)
        sizes = (pretrained.obs_dims[task_id], pretrained.action_dims[task_id])
        if sizes != (obs_dim, action_dim):
            raise ConfigError(f"task {spec.name!r} has observation/action sizes {obs_dim}/{action_dim} here, the "
                              f"pretrained checkpoint recorded {sizes[0]}/{sizes[1]}")
        return FinetuneTask(task_id, False, pretrained.num_tasks, list(pretrained.action_dims), discounts)
    if pretrained.num_tasks < 2:
        raise ConfigError(f"the pretrained checkpoint {pretrained.path} is single-task ({pretrained.tasks[0]}); a "
                          f"new task ({spec.name}) needs a multi-task checkpoint with a task embedding")
    return FinetuneTask(pretrained.num_tasks, True, pretrained.num_tasks + 1,
                        [*pretrained.action_dims, action_dim], [*discounts, spec.discount])


class PaddedObservationEnv(gym.ObservationWrapper):
    """Zero-pads a state observation to the pretrained size, as the released multi-task wrapper pads every task's
    observation to the largest one; actions pass unchanged (the agent already cuts them to the task's size)."""

    def __init__(self, env: gym.Env, obs_dim: int):
        super().__init__(env)
        self.pad = obs_dim - env.observation_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.pad(np.asarray(observation, dtype=np.float32), (0, self.pad)) if self.pad else observation


def build_agent(cfg: RunConfig, spec, env: gym.Env, device: torch.device) -> tuple[Any, Pretrained, FinetuneTask]:
    """The fine-tuning agent in the pretrained shape (random weights: :func:`load_weights` fills them in)."""
    from algorithms.registry import get_algorithm

    if spec.obs != "state":
        raise ConfigError(f"fine-tuning supports state observations only (offline datasets hold states); task "
                          f"{spec.name!r} has {spec.obs!r} observations")
    pretrained = load_pretrained(cfg.init.checkpoint, cfg.init.checkpoint_sha256)
    task = plan_task(pretrained, spec, env.observation_space.shape[0], env.action_space.shape[0])
    observation_space = gym.spaces.Box(-np.inf, np.inf, (pretrained.obs_dim,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (pretrained.action_dim,), np.float32)
    agent = get_algorithm(cfg.algo).load().Agent(cfg.agent, spec, observation_space, action_space, device,
                                                 num_tasks=task.num_tasks, task_id=task.task_id,
                                                 action_dims=task.action_dims, discounts=task.discounts)
    return agent, pretrained, task


def load_weights(agent: Any, pretrained: Pretrained, task: FinetuneTask) -> None:
    """Copy every pretrained weight into ``agent``; for a new task, append the mean of the pretrained embedding
    rows (the old rows unchanged) and keep the agent's action-mask row for it."""
    state = pretrained.state["agent"]
    model = dict(state["model"])
    if task.new:
        emb = model["task_emb.weight"]
        model["task_emb.weight"] = torch.cat([emb, emb.mean(dim=0, keepdim=True)])
        own = agent.model.action_masks
        if not torch.equal(own[: len(emb)].cpu(), model["action_masks"].cpu()):
            raise ConfigError(f"the pretrained checkpoint {pretrained.path}'s action masks disagree with its tasks' "
                              "action sizes")
        model["action_masks"] = own
    agent.model.load_state_dict(model)
    if hasattr(agent, "energy") and "energy" in state:
        agent.energy.load_state_dict(state["energy"])
    if getattr(agent, "score_net", None) is not None and "score_net" in state:
        agent.score_net.load_state_dict(state["score_net"])


def seed_buffer(buffer, dataset: str, task_name: str, obs_dim: int, action_dim: int) -> int:
    """Add the dataset's episodes of ``task_name`` (padded to the agent's sizes) to ``buffer``; returns how many.
    A dataset without that task adds none (said on stderr): the buffer then starts empty."""
    from offline.dataset import iter_episodes, read_manifest

    manifest = read_manifest(dataset)
    if task_name not in manifest["tasks"]:
        print(f"note: init.seed_buffer_from={dataset} holds no episodes of {task_name}; the replay buffer starts "
              "empty", file=sys.stderr)
        return 0
    count = 0
    for _, episode in iter_episodes(dataset, [manifest["tasks"].index(task_name)], manifest=manifest):
        obs = np.pad(episode.obs, ((0, 0), (0, obs_dim - episode.obs.shape[1])))
        actions = np.pad(episode.action, ((0, 0), (0, action_dim - episode.action.shape[1])))
        buffer.add_first(obs[0])
        for t in range(len(episode)):
            buffer.add(actions[t], float(episode.reward[t]), bool(episode.terminated[t]), obs[t + 1])
        buffer.end_episode()
        count += 1
    return count
