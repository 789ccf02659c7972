"""TD-MPC2: the shared latent world model, a policy prior and MPPI planning."""

from algorithms.tdmpc2.agent import Agent, Config

__all__ = ["Agent", "Config"]
