"""DreamerV3 in PyTorch: block-GRU RSSM world model, actor-critic in imagination, LaProp (Hafner et al. 2023)."""

from algorithms.dreamerv3.agent import Agent, Config

__all__ = ["Agent", "Config"]
