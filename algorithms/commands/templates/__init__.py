"""What ``mbdpo-bench new-algorithm`` copies into a new plug-in package: ``linear_agent.py``, a working algorithm
(the smallest the harness trains, resumes and analyses), shipped as Python so that it is installed with the harness
and tested like any module."""
