"""SAC: the model-free baseline (twin Q, tanh-Gaussian actor, automatic entropy tuning)."""

from algorithms.sac.agent import Agent, Config

__all__ = ["Agent", "Config"]
