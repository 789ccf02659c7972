"""World-model hyper-parameters and the paper's size presets (MBDPO appendix D; TD-MPC2's 1/5/19/48/317M).

Preset names are the paper's (they count MBDPO's energy and score networks too); dimensions are
encoder dim / MLP dim / latent dim / encoder layers / Q-functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms.common.config import ConfigError

PRESETS: dict[str, dict[str, int]] = {
    "1.7M": dict(enc_dim=256, mlp_dim=384, latent_dim=128, num_enc_layers=2, num_q=2),
    "6M": dict(enc_dim=256, mlp_dim=512, latent_dim=512, num_enc_layers=2, num_q=5),
    "21M": dict(enc_dim=1024, mlp_dim=1024, latent_dim=768, num_enc_layers=3, num_q=5),
    "54M": dict(enc_dim=1792, mlp_dim=1792, latent_dim=768, num_enc_layers=4, num_q=5),
    "340M": dict(enc_dim=4096, mlp_dim=4096, latent_dim=1376, num_enc_layers=5, num_q=8),
}


# Where pixel observations get their random shift (see WorldModelConfig.augment).
AUGMENT_MODES = ("encoder", "batch")


@dataclass
class WorldModelConfig:
    """Resolved world-model dimensions and constants (built from an agent config by :func:`resolve`)."""

    enc_dim: int
    mlp_dim: int
    latent_dim: int
    num_enc_layers: int
    num_q: int
    task_dim: int = 96
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    simnorm_dim: int = 8
    dropout: float = 0.01
    num_channels: int = 32
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    tau: float = 0.01
    termination: bool = False
    q_init: str = "trunc-normal"
    augment: str = "encoder"
    """Pixel augmentation (FIDELITY.md D5): ``encoder`` = a random shift before every encode, acting and
    evaluation included (the released TD-MPC2 encoder's first layer); ``batch`` = only the training
    batches are shifted, encodes are deterministic (the harness's earlier behaviour, with shift_pad 4)."""
    shift_pad: int = 3
    """Largest random shift in pixels (the released 3; the harness's earlier batch augmentation used 4)."""


Q_INITS = ("trunc-normal", "torch-default", "torch-default-hidden")
"""Q-ensemble initialisation: ``trunc-normal`` (TD-MPC2: weights N(0, 0.02) truncated, biases 0, output weight 0);
``torch-default`` (the released MBDPO code, FIDELITY.md D10/D12: hidden layers and the output bias as nn.Linear
initialises them, output weight 0); ``torch-default-hidden`` (the harness's earlier reading: hidden layers only,
output bias 0)."""


def default_task_dim(num_tasks: int) -> int:
    """The released configs' task-embedding size: 64 for up to 30 tasks (mt30), 96 beyond (mt80) (FIDELITY.md D10)."""
    return 64 if num_tasks <= 30 else 96


def resolve(model_size: str, **overrides) -> WorldModelConfig:
    """The preset ``model_size`` with any non-None overrides (e.g. latent_dim=64 for a toy model)."""
    if model_size not in PRESETS:
        raise ConfigError(f"unknown model_size {model_size!r}; valid: {', '.join(PRESETS)}")
    values = {**PRESETS[model_size], **{k: v for k, v in overrides.items() if v is not None}}
    cfg = WorldModelConfig(**values)
    if cfg.q_init not in Q_INITS:
        raise ConfigError(f"config key 'agent.q_init' is {cfg.q_init!r}; valid: {', '.join(Q_INITS)}")
    if cfg.augment not in AUGMENT_MODES:
        raise ConfigError(f"config key 'agent.augment' is {cfg.augment!r}; valid: "
                          f"{', '.join(repr(m) for m in AUGMENT_MODES)}")
    if cfg.shift_pad < 0:
        raise ConfigError(f"config key 'agent.shift_pad' must be >= 0 (0 = no shift), got {cfg.shift_pad}")
    if cfg.latent_dim % cfg.simnorm_dim:
        raise ConfigError(f"latent_dim {cfg.latent_dim} must be a multiple of simnorm_dim {cfg.simnorm_dim}")
    return cfg
