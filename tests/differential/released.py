"""The authors' released code as a test oracle: find it, make a CPU copy, import it beside ours, build its agents.

The released MBDPO (github.com/Edmond1Cheng/MBDPO @ 5ff5a06) and TD-MPC2 (github.com/nicklashansen/tdmpc2 @ e9f5932)
trees live, unmodified, at ``../shared/reference/released-code`` (README there; ``MBDPO_RELEASED_CODE`` points
elsewhere). They are never copied into this project: each test session copies them to a temporary folder and
changes only what a CPU-only machine needs (README there): ``'cuda:0'`` → the device, ``capturable=True`` → False.

Both trees import top-level packages named ``common``, ``envs``, ``trainer`` — ``envs`` is also ours — so
:func:`import_released` imports them with the project's own modules of those names set aside, and puts ours back
afterwards; the released modules keep the references they were built with. One tree at a time holds the names.

Without the released code the tests fail with one line saying where they looked; only with
``MBDPO_NO_RELEASED_CODE=1`` (a machine that cannot have the oracle; CI must not set it) do they skip.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RELEASED = Path(os.environ.get("MBDPO_RELEASED_CODE", REPO.parent / "shared" / "reference" / "released-code"))
SKIP_VARIABLE = "MBDPO_NO_RELEASED_CODE"
TREES = {"mbdpo": ("mbdpo", "MBDPO"), "tdmpc2": ("tdmpc2", "tdmpc2")}
"""Released tree → (its folder under RELEASED, the folder its modules import from)."""
SHARED_NAMES = ("common", "envs", "trainer", "diffusion", "mbdpo", "tdmpc2")
"""Top-level module names the released trees use (``envs`` is also one of ours)."""
_DEVICE_FILES = ("mbdpo.py", "tdmpc2.py", "common/scale.py", "common/buffer.py")


def require_released() -> Path:
    """The released code's folder; a failure with one line when it is absent (a skip only under
    ``MBDPO_NO_RELEASED_CODE=1``)."""
    if (RELEASED / "mbdpo").is_dir() and (RELEASED / "tdmpc2").is_dir():
        return RELEASED
    message = (f"the released code (the oracle of the differential tests) is not at {RELEASED}; set "
               f"MBDPO_RELEASED_CODE to its folder (shared/reference/released-code)")
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(message + f" [{SKIP_VARIABLE}=1]")
    pytest.fail(message, pytrace=False)


def cpu_copy(tree: str, destination: Path, device: str = "cpu") -> Path:
    """Copy one released tree to ``destination`` with the device strings replaced (README: line numbers stay);
    returns the folder to import from."""
    folder, package = TREES[tree]
    target = destination / folder
    if not target.exists():
        shutil.copytree(require_released() / folder, target)
        for name in _DEVICE_FILES:
            path = target / package / name
            if path.exists():
                text = path.read_text()
                text = text.replace("'cuda:0'", repr(device)).replace('"cuda:0"', repr(device))
                if device == "cpu":
                    text = text.replace("capturable=True", "capturable=False")
                path.write_text(text)
    return target / package


@contextmanager
def _names_set_aside(root: Path):
    ours = {name: mod for name, mod in sys.modules.items()
            if name.split(".")[0] in SHARED_NAMES}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.split(".")[0] in SHARED_NAMES]:
            del sys.modules[name]
        sys.modules.update(ours)


def import_released(root: Path, modules: list[str]) -> types.SimpleNamespace:
    """Import ``modules`` (dotted names inside the released tree at ``root``) with ours set aside; returns them by
    their last name part (``common.world_model`` → ``.world_model``)."""
    loaded = {}
    with _names_set_aside(root):
        for name in modules:
            loaded[name.split(".")[-1]] = importlib.import_module(name)
    return types.SimpleNamespace(**loaded)


AGENT_MODULES = {"mbdpo": ("mbdpo", "MBDPO"), "tdmpc2": ("tdmpc2", "TDMPC2")}
MODEL_SIZES = {"1.7M": 1, "6M": 5}
"""Our preset → the released parser's ``model_size`` key (its cfgs/config.yaml says 6, which it rejects)."""


def released_config(tree: str, root: Path, task: str, obs_dim: int, action_dim: int, episode_length: int,
                    model_size: str = "1.7M", **overrides):
    """The released agent's config as its trainer builds it: its YAML, its own parser, then the fields the
    trainer fills from the environment (obs shape, action dim, episode length, seed steps); ``compile`` off."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(root.parent / "cfgs" / "config.yaml" if tree == "mbdpo" else root / "config.yaml")
    cfg.pop("defaults", None)
    cfg.task, cfg.model_size, cfg.compile = task, MODEL_SIZES[model_size], False
    for key, value in overrides.items():
        cfg[key] = value
    parser = import_released(root, ["common.parser"]).parser
    hydra = sys.modules.get("hydra") or importlib.import_module("hydra")
    original = hydra.utils.get_original_cwd
    hydra.utils.get_original_cwd = lambda: str(root)  # the parser asks for Hydra's start folder
    try:
        parsed = parser.parse_cfg(cfg)
    finally:
        hydra.utils.get_original_cwd = original
    parsed.obs_shape = {"state": (obs_dim,)}
    parsed.action_dim = action_dim
    parsed.episode_length = episode_length
    parsed.seed_steps = max(1000, 5 * episode_length)
    return parsed
