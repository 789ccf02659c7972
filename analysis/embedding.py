"""Fig. 23: the learned task embeddings of a multi-task checkpoint, projected to 2-D with t-SNE."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EMBEDDING_SUFFIX = "task_emb.weight"


def find_task_embedding(state: dict[str, Any], prefix: str = "") -> tuple[str, np.ndarray]:
    """(key, num_tasks × dim array) of the task-embedding table in a (nested) checkpoint state dict."""
    found = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif path.endswith(EMBEDDING_SUFFIX) and hasattr(node, "shape") and len(node.shape) == 2:
            found.append((path, node))

    walk(state, prefix)
    if not found:
        raise ValueError(f"no task embedding ('*{EMBEDDING_SUFFIX}') in the checkpoint: it is a single-task model "
                         "(multi-task checkpoints from offline pretraining have one)")
    key, tensor = found[0]
    return key, np.asarray(tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else tensor, dtype=float)


def load_task_embedding(checkpoint: str | Path) -> np.ndarray:
    """The task-embedding table of a harness checkpoint (``checkpoints/step_*.pt``)."""
    import torch

    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=False)
    return find_task_embedding(state.get("agent", state))[1]


def tsne_embedding(weights: np.ndarray, tasks: Sequence[str], seed: int = 0,
                   perplexity: float | None = None) -> pd.DataFrame:
    """2-D t-SNE of task embeddings: ``task, domain, x, y`` (domain from the registry, ``?`` if unknown).

    ``perplexity`` defaults to min(30, (tasks − 1) / 3), the largest that is valid for few tasks.
    """
    from sklearn.manifold import TSNE

    from envs.registry import TASKS

    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or len(weights) != len(tasks):
        raise ValueError(f"{len(tasks)} task names for an embedding table of shape {weights.shape}: they must match "
                         "the table's rows, in task-id order")
    if len(tasks) < 3:
        raise ValueError(f"t-SNE needs at least 3 tasks, got {len(tasks)}")
    perplexity = perplexity or max(1.0, min(30.0, (len(tasks) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(weights)
    return pd.DataFrame({"task": list(tasks), "domain": [TASKS[t].domain if t in TASKS else "?" for t in tasks],
                         "x": xy[:, 0], "y": xy[:, 1]})
