"""MBDPO: the shared world model, an implicit energy, and a diffusion planner with a Monte Carlo score."""

from algorithms.mbdpo.agent import Agent, Config

__all__ = ["Agent", "Config"]
