"""Fig. 23: the learned task embeddings of a multi-task checkpoint, projected to 2-D with t-SNE; and the latent
trajectories of its rollouts (``mbdpo-bench export-latents`` writes them, algorithms/commands/latents.py), projected
to 2-D with PCA, coloured by task. Nothing here builds a model: the analysis reads checkpoints and ``.npz`` files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import AnalysisInputError

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

    from analysis.load import task_domain  # a task plug-in's domain too, "?" if unknown

    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or len(weights) != len(tasks):
        raise ValueError(f"{len(tasks)} task names for an embedding table of shape {weights.shape}: they must match "
                         "the table's rows, in task-id order")
    if len(tasks) < 3:
        raise ValueError(f"t-SNE needs at least 3 tasks, got {len(tasks)}")
    perplexity = perplexity or max(1.0, min(30.0, (len(tasks) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(weights)
    return pd.DataFrame({"task": list(tasks), "domain": [task_domain(t) for t in tasks],
                         "x": xy[:, 0], "y": xy[:, 1]})


LATENT_KEYS = ("z", "task_id", "episode", "step", "tasks", "task_embedding")
"""Arrays :func:`load_latents` needs (algorithms/commands/latents.py ``NPZ_KEYS`` writes them and more)."""


def load_latents(path: str | Path) -> dict[str, Any]:
    """The arrays of a latent export (``.npz``) as a dict (``meta`` decoded from JSON); AnalysisInputError (one line
    in the CLI) naming the file and the missing keys when it is not one. Read without pickle: plain arrays only."""
    import json

    path = Path(path)
    if not path.is_file():
        raise AnalysisInputError(f"latent export {str(path)!r} does not exist (write it with mbdpo-bench "
                                "export-latents RUN_DIR --out FILE.npz)")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in LATENT_KEYS if k not in data.files]
        if missing:
            raise AnalysisInputError(f"{path}: not a latent export, missing {missing} (has {data.files})")
        out: dict[str, Any] = {k: data[k] for k in data.files}
    out["tasks"] = [str(t) for t in out["tasks"]]
    out["meta"] = json.loads(str(out["meta"])) if "meta" in out else {}
    return out


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows × 2 projection, explained-variance ratio of the two components): PCA by SVD of the centred data —
    deterministic and fast for hundreds of thousands of latents, where t-SNE is neither."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    total = float((sv ** 2).sum())
    ratio = (sv[:2] ** 2) / total if total > 0 else np.zeros(min(2, len(sv)))
    xy = centred @ vt[:2].T
    if xy.shape[1] < 2:  # one latent dimension (or a single point): a flat second axis
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        ratio = np.pad(ratio, (0, 2 - len(ratio)))
    return xy, ratio


def latent_projection(latents: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray]:
    """(``task, domain, task_id, episode, step, x, y`` per exported latent, explained-variance ratio): the 2-D PCA
    of every latent of the export together, so trajectories of different tasks share one map."""
    from analysis.load import task_domain  # a task plug-in's domain too, "?" if unknown

    xy, ratio = pca_2d(latents["z"])
    names = np.asarray(latents["tasks"], dtype=object)[latents["task_id"]]
    frame = pd.DataFrame({"task": names, "domain": [task_domain(t) for t in names],
                          "task_id": latents["task_id"].astype(int), "episode": latents["episode"].astype(int),
                          "step": latents["step"].astype(int), "x": xy[:, 0], "y": xy[:, 1]})
    return frame, ratio


def latent_trajectories_figure(projection: pd.DataFrame, ratio: np.ndarray | None = None,
                               max_episodes: int = 3) -> Figure:
    """Latent trajectories of a multi-task checkpoint's rollouts on the 2-D PCA map (:func:`latent_projection`):
    one line per episode (at most ``max_episodes`` per task, so that a large export stays legible), coloured by
    task, its start marked with a circle and its end with a cross; a legend entry per task."""
    from analysis import figures as F

    if projection.empty:
        return F._empty("no latents in the export")
    tasks = list(dict.fromkeys(projection.sort_values("task_id")["task"]))
    palette = dict(zip(tasks, F.sns.color_palette("tab20" if len(tasks) > 10 else "tab10", n_colors=len(tasks))))
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    ax = fig.subplots()
    for task in tasks:
        sub = projection[projection["task"] == task]
        for i, (episode, ep) in enumerate(sub.groupby("episode")):
            if i >= max_episodes:
                break
            ep = ep.sort_values("step")
            ax.plot(ep["x"], ep["y"], color=palette[task], lw=0.8, alpha=0.8, label=task if i == 0 else None)
            ax.scatter(ep["x"].iloc[[0]], ep["y"].iloc[[0]], color=palette[task], marker="o", s=25, zorder=3)
            ax.scatter(ep["x"].iloc[[-1]], ep["y"].iloc[[-1]], color=palette[task], marker="x", s=25, zorder=3)
    share = [f" ({100 * r:.0f}% of variance)" for r in ratio] if ratio is not None else ["", ""]
    ax.set_xlabel(f"latent PC 1{share[0]}")
    ax.set_ylabel(f"latent PC 2{share[1]}")
    n_eps = projection.groupby("task")["episode"].nunique()
    ax.set_title(f"Latent trajectories (PCA of z; {len(tasks)} tasks, up to {min(max_episodes, int(n_eps.max()))} "
                 "episodes each; o start, x end)", fontsize=9)
    ax.grid(alpha=0.3)
    F._legend(fig, ax)
    return fig
