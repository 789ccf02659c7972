#!/usr/bin/env bash
# Set up the harness in ./.venv (Python >= 3.11): torch first (so pip does not pull a multi-GB CUDA
# build where a local CPU wheel exists), then the project with its pinned simulators. Idempotent:
# a second call with the same pyproject.toml and extras returns at once.
#   PYTHON=python3.12 bash scripts/setup.sh         # another interpreter
#   MBDPO_EXTRAS=all,dev,logging bash scripts/setup.sh   (default all,dev: DMControl, MetaWorld, MyoSuite)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.11}
extras=${MBDPO_EXTRAS:-all,dev}

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup: '$python' not found; install Python >= 3.11 or set PYTHON=/path/to/python3" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv

stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[$extras]"
  touch "$stamp"
fi

# Headless rendering (Visual RL tasks) needs EGL or OSMesa; install Mesa's when neither is present.
if ! ldconfig -p 2>/dev/null | grep -qE 'libEGL\.so|libOSMesa\.so'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1 libosmesa6 >/dev/null
  else
    echo "setup: no EGL or OSMesa library found; pixel tasks need one (Debian: apt-get install libegl1 libegl-mesa0 libosmesa6)" >&2
  fi
fi
