"""Device choice: CUDA when present unless ``device=cpu``; ``device=cuda`` without CUDA is an error."""

from __future__ import annotations

import torch

from algorithms.common.config import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but this torch ({torch.__version__}) sees no CUDA device; "
                              "valid here: 'auto', 'cpu'")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {name!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")
