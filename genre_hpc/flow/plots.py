"""Figures people look at rather than read, each written as one PNG file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from genre_hpc.core.atomic import atomic_path

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
    return _save(fig, path)


def cv_results_png(results, path: Path, *, scoring: str) -> Path:
    """Mean cross-validated score per grid candidate, with one standard deviation."""
    ranked = results.sort_values("mean_test_score")
    labels = [_short(p) for p in ranked["params"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.5), dpi=100)
    ax.barh(range(len(labels)), ranked["mean_test_score"], xerr=ranked["std_test_score"],
            color="tab:blue", alpha=0.8)  # fmt: skip
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel(f"mean CV {scoring} over folds of the training side")
    ax.set_title("grid search", fontsize=10)
    return _save(fig, path)


def _short(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def comparison_png(table, path: Path, *, title: str) -> Path:
    """Segment and track accuracy per model, side by side, each with its 95 % interval as an error bar.

    `table` has, per accuracy, `<name>` and `<name>_low`/`<name>_high` (mean over folds or the
    single split's value, and its interval).
    """
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    x = np.arange(len(table))
    for offset, name, label in (
        (-0.2, "segment_accuracy", "segment accuracy"),
        (0.2, "track_accuracy", "track accuracy"),
    ):
        errors = None
        if f"{name}_low" in table:
            errors = np.vstack([table[name] - table[f"{name}_low"], table[f"{name}_high"] - table[name]])
            errors = np.clip(np.nan_to_num(errors), 0, None)
        ax.bar(x + offset, table[name], 0.4, yerr=errors, capsize=3, label=label)
    names = table["model"].astype(str).tolist()
    if "sampled" in table:  # a model trained on a sample of the tracks says so under its bars
        names = [
            f"{name}\n(sample: {int(tracks):,} tracks)" if sampled else name
            for name, sampled, tracks in zip(names, table["sampled"], table["trained_on_tracks"], strict=True)
        ]
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (95 % interval)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right")
    return _save(fig, path)


def folds_png(table, summary: dict, path: Path, *, title: str) -> Path:
    """Track and segment accuracy of every fold; the mean over folds and its 95 % interval as a band."""
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    x = table["fold"].to_numpy()
    for offset, name, color in (
        (-0.2, "segment_accuracy", "tab:orange"),
        (0.2, "track_accuracy", "tab:blue"),
    ):
        info = summary[name]
        label = f"{name.replace('_', ' ')}: mean {info['mean']:.3f} [{info['low']:.3f}, {info['high']:.3f}]"
        ax.bar(x + offset, table[name], 0.4, color=color, alpha=0.8, label=label)
        ax.axhspan(info["low"], info["high"], color=color, alpha=0.15)
        ax.axhline(info["mean"], color=color, lw=1)
    ax.set_xticks(x, [str(f) for f in x])
    ax.set_xlabel("fold")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on the fold's held-out tracks")
    ax.set_title(title, fontsize=8, wrap=True)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def class_balance_png(counts, path: Path) -> Path:
    """Tracks per genre (a pandas Series indexed by genre)."""
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.bar(counts.index, counts.to_numpy(), color="tab:green")
    ax.set_ylabel("tracks")
    ax.set_title("class balance", fontsize=10)
    ax.tick_params(axis="x", rotation=30)
    return _save(fig, path)


def genre_example_png(y: np.ndarray, sr: int, path: Path, *, title: str, n_fft: int, hop: int) -> Path:
    """The origin study's exploration figures for one clip: waveform, spectrogram, centroid and
    rolloff over time, chromagram and zero crossings."""
    import librosa
    import librosa.display

    spec_db = librosa.amplitude_to_db(np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)), ref=np.max)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, n_fft=n_fft, hop_length=hop)[0]
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0]
    frames_t = librosa.frames_to_time(np.arange(len(centroid)), sr=sr, hop_length=hop)

    fig, axes = plt.subplots(5, 1, figsize=(8, 11), dpi=90)
    axes[0].plot(np.arange(len(y)) / sr, y, linewidth=0.3)
    axes[0].set_title(f"{title}: waveform", fontsize=9)
    librosa.display.specshow(spec_db, sr=sr, hop_length=hop, x_axis="time", y_axis="log", ax=axes[1])
    axes[1].set_title("spectrogram (dB)", fontsize=9)
    axes[2].plot(frames_t, centroid, label="spectral centroid")
    axes[2].plot(frames_t, rolloff, label="spectral rolloff (85 %)")
    axes[2].set_ylabel("Hz")
    axes[2].legend(fontsize=7, loc="upper right")
    librosa.display.specshow(chroma, sr=sr, hop_length=hop, x_axis="time", y_axis="chroma", ax=axes[3])
    axes[3].set_title("chromagram", fontsize=9)
    axes[4].plot(frames_t, zcr, color="tab:red")
    axes[4].set_title(f"zero-crossing rate ({int(librosa.zero_crossings(y).sum())} crossings)", fontsize=9)
    axes[4].set_xlabel("time (s)")
    return _save(fig, path)


def correlation_png(corr, path: Path) -> Path:
    """Pearson correlation between feature columns (a square pandas DataFrame)."""
    fig, ax = plt.subplots(figsize=(10, 9), dpi=100)
    image = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    step = max(1, len(corr) // 40)  # label every n-th feature so the names stay readable
    ticks = range(0, len(corr), step)
    ax.set_xticks(ticks, [corr.columns[i] for i in ticks], rotation=90, fontsize=5)
    ax.set_yticks(ticks, [corr.columns[i] for i in ticks], fontsize=5)
    ax.set_title("feature correlation (segment rows)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def scaling_png(schedulers, scaling, path: Path) -> Path:
    """The bench's Dask schedulers on the same files, and speedup and efficiency over worker counts."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [name.replace("multiprocessing ", "mp ") for name in schedulers.scheduler]
    axes[0].barh(names, schedulers.seconds, color="tab:blue")
    axes[0].invert_yaxis()
    axes[0].set(title="schedulers, same files", xlabel="seconds")
    if "speedup" in scaling:
        axes[1].plot(scaling.workers, scaling.speedup, "o-", label="measured")
        axes[1].plot(scaling.workers, scaling.workers, "--", color="grey", label="ideal")
        axes[1].set(title="speedup (distributed)", xlabel="workers", ylabel="T(1) / T(n)")
        axes[1].legend()
        axes[2].plot(scaling.workers, scaling.efficiency, "o-")
        axes[2].axhline(0.9, ls=":", color="grey")
        axes[2].set(title="parallel efficiency", xlabel="workers", ylabel="speedup / workers", ylim=(0, 1.1))
    for ax in axes[1:]:
        ax.set_xticks(list(scaling.workers))
    return _save(fig, path, dpi=110)


def training_png(table, path: Path) -> Path:
    """Fit seconds against rows per training method (log-log), and speedup over one thread."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, rows in table.groupby("method", sort=False):
        axes[0].plot(rows.rows, rows.fit_seconds, "o-", label=method)
        axes[1].plot(rows.rows, rows.speedup_vs_1_thread, "o-", label=method)
    axes[0].set(title="xgboost fit, same trees", xlabel="rows", ylabel="seconds", xscale="log", yscale="log")
    axes[1].axhline(1.0, ls=":", color="grey")
    axes[1].set(title="speedup over XGBClassifier n_jobs=1", xlabel="rows", ylabel="T(1 thread) / T")
    axes[1].set_xscale("log")
    axes[0].legend(fontsize=7)
    return _save(fig, path, dpi=110)


def _save(fig, path: Path, *, dpi: float | None = None) -> Path:
    fig.tight_layout()
    try:
        # a figure is redrawn by the next run, so no fsync; the temporary name says nothing of the format
        with atomic_path(path, durable=False) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path
