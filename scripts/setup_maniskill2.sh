#!/usr/bin/env bash
# A second environment for ManiSkill2 in ./.venv-maniskill2 (numpy < 1.24; see requirements/maniskill2.txt):
# torch first (the local CPU wheel where one exists; on a GPU node keep or install the CUDA build), then the
# pinned ManiSkill2 set, then the harness without its main-environment pins. Idempotent.
#   bash scripts/setup_maniskill2.sh && .venv-maniskill2/bin/mbdpo-bench tasks --suite maniskill2
# The workflow uses it for ManiSkill2 runs when config key `maniskill2_python` points at .venv-maniskill2/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
venv=${MBDPO_MS2_VENV:-.venv-maniskill2}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.installed-$(cat requirements/maniskill2.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -c "import torch" 2>/dev/null || "$venv/bin/pip" install -q "torch==2.13.0"
  "$venv/bin/pip" install -q -r requirements/maniskill2.txt
  "$venv/bin/pip" install -q --no-deps -e .
  touch "$stamp"
fi
"$venv/bin/python" -c "
from importlib.metadata import version
import mani_skill2, numpy, gymnasium, envs, algorithms.common.trainer  # the harness imports under the old numpy
print('mani-skill2', version('mani-skill2'), 'sapien', version('sapien'), 'numpy', numpy.__version__,
      'gymnasium', gymnasium.__version__)"
