"""Analysis of run files (rliable statistics, the paper's figures and tables): arrives with its own issue.

It reads the tidy run files documented in results/README.md; nothing here reaches into the algorithms.
"""


class AnalysisInputError(ValueError):
    """Input the analysis cannot use at all (no runs, no published folder): the message says what was expected.

    Defined here, without importing pandas, so that the CLI can catch it in environments without the analysis
    dependencies (the ManiSkill2 environment)."""


PAPER_ALGORITHMS = ("mbdpo", "tdmpc2", "dreamerv3", "sac", "tdmpc")
"""The paper's algorithms (MBDPO and its baselines), in the paper's order. Any other run.json ``algo`` is a plug-in
algorithm (algorithms/README.md): analysed like these (named, coloured, compared), but not a baseline of the paper's
claims (analysis/claims.py). Defined here, not taken from the algorithm registry: the analysis imports no run code."""
