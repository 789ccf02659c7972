"""The TD-MPC2-style latent world model shared by TD-MPC2 and MBDPO."""

from algorithms.world_model.model import PolicyOutput, WorldModel
from algorithms.world_model.presets import PRESETS, WorldModelConfig, resolve

__all__ = ["PRESETS", "PolicyOutput", "WorldModel", "WorldModelConfig", "resolve"]
