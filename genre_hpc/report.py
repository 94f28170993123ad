"""Figures people look at rather than read: written as PNG files beside the run's outputs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(matrix: np.ndarray, classes: list[str], path: Path, *, title: str) -> Path:
    """Rows are true genres, columns predicted; each cell shows its count."""
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > threshold else "black", fontsize=8)  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def cv_results_png(results, path: Path, *, scoring: str) -> Path:
    """Mean cross-validated score per grid candidate, with one standard deviation."""
    ranked = results.sort_values("mean_test_score")
    labels = [_short(p) for p in ranked["params"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.5), dpi=100)
    ax.barh(range(len(labels)), ranked["mean_test_score"], xerr=ranked["std_test_score"],
            color="tab:blue", alpha=0.8)  # fmt: skip
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"mean CV {scoring} (track-grouped folds of the training tracks)")
    ax.set_title("grid search", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _short(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
