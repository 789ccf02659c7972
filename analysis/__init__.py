"""Analysis of run files (rliable statistics, the paper's figures and tables): arrives with its own issue.

It reads the tidy run files documented in results/README.md; nothing here reaches into the algorithms.
"""
