"""Checkpoints: written atomically with a SHA-256 sidecar; loading falls back past corrupt ones.

A checkpoint ``step_XXXXXXXXXX.pt`` counts only once its ``.sha256`` sidecar exists, and the sidecar is
written after the checkpoint itself, so a run killed mid-save leaves at worst a checkpoint without sidecar,
which is reported and skipped like a corrupt one.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Callable

import torch

from algorithms.common.runfiles import atomic_write, atomic_write_text

CHECKPOINT_FORMAT_VERSION = 2
REQUIRED_KEYS = ("format_version", "counters", "agent", "config")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names its path and why."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CheckpointManager:
    def __init__(self, directory: Path, keep: int = 2):
        self.directory = directory
        self.keep = max(1, keep)

    def path_for(self, env_step: int) -> Path:
        return self.directory / f"step_{env_step:010d}.pt"

    def checkpoints(self) -> list[Path]:
        """All checkpoint files, newest first."""
        return sorted(self.directory.glob("step_*.pt"), reverse=True)

    def save(self, state: dict[str, Any], env_step: int) -> Path:
        state = {"format_version": CHECKPOINT_FORMAT_VERSION, **state}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        path = self.path_for(env_step)
        atomic_write(path, lambda f: f.write(data), mode="wb")
        atomic_write_text(path.with_suffix(".sha256"), _digest(data) + "\n")
        for old in self.checkpoints()[self.keep:]:
            old.with_suffix(".sha256").unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        return path

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        """Load and verify one checkpoint, or raise CheckpointError saying what is wrong with it."""
        sidecar = path.with_suffix(".sha256")
        if not sidecar.exists():
            raise CheckpointError(f"checkpoint {path} is incomplete (no {sidecar.name}: the save was interrupted)")
        data = path.read_bytes()
        expected = sidecar.read_text().strip()
        if _digest(data) != expected:
            raise CheckpointError(f"checkpoint {path} is corrupt (SHA-256 differs from {sidecar.name})")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as err:  # any unpickling failure means the same thing: unusable
            raise CheckpointError(f"checkpoint {path} cannot be read: {err}") from err
        missing = [k for k in REQUIRED_KEYS if k not in state]
        if missing:
            raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
        if state["format_version"] != CHECKPOINT_FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path} has format {state['format_version']}, "
                                  f"this harness reads {CHECKPOINT_FORMAT_VERSION}")
        return state

    def load_latest(self, reject: Callable[[dict[str, Any]], str | None] | None = None
                    ) -> tuple[dict[str, Any] | None, Path | None, list[str]]:
        """The newest usable checkpoint, its path, and one message per unusable newer one.

        ``reject(state)`` may refuse a readable checkpoint with a reason (e.g. non-finite weights).
        """
        problems: list[str] = []
        for path in self.checkpoints():
            try:
                state = self.load(path)
            except CheckpointError as err:
                problems.append(str(err))
                continue
            reason = reject(state) if reject is not None else None
            if reason is None:
                return state, path, problems
            problems.append(f"checkpoint {path} {reason}")
        return None, None, problems
