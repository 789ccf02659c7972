"""Analysis of run files (rliable statistics, the paper's figures and tables): arrives with its own issue.

It reads the tidy run files documented in results/README.md; nothing here reaches into the algorithms.
"""


class AnalysisInputError(ValueError):
    """Input the analysis cannot use at all (no runs, no published folder): the message says what was expected.

    Defined here, without importing pandas, so that the CLI can catch it in environments without the analysis
    dependencies (the ManiSkill2 environment)."""
