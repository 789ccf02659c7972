"""Algorithms of the harness (MBDPO, TD-MPC2, SAC, DreamerV3) on one shared run life cycle (``common``)."""
