"""Algorithm name -> its hyper-parameter dataclass and agent class.

An algorithm joins the harness (CLI, run life cycle, workflow) by adding one entry here.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmEntry:
    name: str
    module: str  # defines ``Config`` (hyper-parameters) and ``Agent``
    summary: str

    def load(self):
        return importlib.import_module(self.module)


ALGORITHMS: dict[str, AlgorithmEntry] = {
    entry.name: entry for entry in (
        AlgorithmEntry("sac", "algorithms.sac", "Soft actor-critic: twin Q, tanh-Gaussian actor, auto entropy"),
        AlgorithmEntry("tdmpc2", "algorithms.tdmpc2", "TD-MPC2: latent world model + MPPI planning"),
        AlgorithmEntry("mbdpo", "algorithms.mbdpo", "MBDPO: world model + energy + Monte Carlo diffusion planner"),
        AlgorithmEntry("dreamerv3", "algorithms.dreamerv3", "DreamerV3: RSSM world model, actor-critic in imagination"),
    )
}


def get_algorithm(name: str) -> AlgorithmEntry:
    if name not in ALGORITHMS:
        near = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        from algorithms.common.config import ConfigError

        raise ConfigError(f"unknown algorithm {name!r}{hint} (registered: {', '.join(ALGORITHMS)})")
    return ALGORITHMS[name]
