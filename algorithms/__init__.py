"""Algorithms of the harness (MBDPO, TD-MPC2, SAC, DreamerV3) on one shared run life cycle (``common``)."""

import os

# OpenMP threads that spin while waiting make torch 10-60x slower on small, shared machines (measured on 2
# busy cores: 1 s vs 15 ms per SAC update); must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
