"""Names every path genre-hpc writes under output.dir, so that no stage spells one out.

Inside features/ the FeatureStore names its parts, and the report page names its figures.
Folders a setting names (data.demo.root, cluster.local_directory, cluster.numba_cache_dir,
cluster.log_directory, Hydra's run directories) are in conf/, under output.dir by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelFiles:
    """A saved model: the booster and what prediction needs to use it (train's model/, tune/model/)."""

    folder: Path

    @property
    def booster(self) -> Path:
        return self.folder / "model.ubj"

    @property
    def preprocess(self) -> Path:
        return self.folder / "preprocess.json"


@dataclass(frozen=True)
class ComparisonFiles:
    """What `compare` writes for one split: compare/<split>/."""

    folder: Path

    @property
    def table(self) -> Path:
        return self.folder / "comparison.csv"

    @property
    def summary(self) -> Path:
        return self.folder / "comparison.json"

    @property
    def figure(self) -> Path:
        return self.folder / "comparison.png"

    @property
    def folds(self) -> Path:
        """compare.folds=K: every model's scores on every fold."""
        return self.folder / "folds.csv"


@dataclass(frozen=True)
class EvaluationFiles:
    """What `evaluate` writes: evaluate/."""

    folder: Path

    @property
    def folds(self) -> Path:
        """One row per fold: its test tracks and segments, accuracies and macro-F1."""
        return self.folder / "folds.csv"

    @property
    def summary(self) -> Path:
        """Per metric: mean, standard deviation over folds, 95 % interval; the protocol."""
        return self.folder / "summary.json"

    @property
    def assignments(self) -> Path:
        """Which tracks (segments, for a leaky split) were tested in which fold."""
        return self.folder / "fold_assignments.csv"

    @property
    def confusion(self) -> Path:
        """The confusion matrix of tracks pooled over all folds."""
        return self.folder / "confusion_matrix.png"

    @property
    def figure(self) -> Path:
        """Accuracy per fold, with the mean and its interval."""
        return self.folder / "folds.png"


@dataclass(frozen=True)
class BenchFiles:
    """What `bench` writes: bench/."""

    folder: Path

    @property
    def speed(self) -> Path:
        return self.folder / "speed.csv"

    @property
    def parity(self) -> Path:
        return self.folder / "parity.csv"

    @property
    def scaling(self) -> Path:
        return self.folder / "scaling.csv"

    @property
    def scale(self) -> Path:
        """The scale probe's table (bench.scale); the probe's corpora and runs are beside it."""
        return self.folder / "scale.csv"

    @property
    def learning(self) -> Path:
        """The learning probe's table (bench.learning); its runs are beside it, its datasets under
        bench.learning_root."""
        return self.folder / "learning.csv"

    @property
    def schedulers(self) -> Path:
        return self.folder / "schedulers.csv"

    @property
    def figure(self) -> Path:
        return self.folder / "scaling.png"

    @property
    def training(self) -> Path:
        """Fit seconds per training method and row count (bench.training_rows)."""
        return self.folder / "training.csv"

    @property
    def training_figure(self) -> Path:
        return self.folder / "training.png"

    @property
    def tuning(self) -> Path:
        """Grid-search wall time per worker count (bench.tuning)."""
        return self.folder / "tuning.csv"

    @property
    def new_worker(self) -> Path:
        """First result of a new worker on the configured cluster, nothing vs caches primed."""
        return self.folder / "new_worker.csv"

    @property
    def mp3(self) -> Path:
        """End to end on 44.1 kHz stereo MP3, the package against the study's method (bench.mp3_clips)."""
        return self.folder / "mp3.csv"

    @property
    def mp3_decode(self) -> Path:
        """The package's decode path against libsndfile's own decode and librosa.load, same MP3 files."""
        return self.folder / "mp3_decode.csv"

    @property
    def mp3_parity(self) -> Path:
        return self.folder / "mp3_parity.csv"

    @property
    def record(self) -> Path:
        return self.folder / "bench.json"

    @property
    def long_files(self) -> Path:
        """The long audio files of the memory probe (a clip repeated), kept for the next run."""
        return self.folder / "long-files"


@dataclass(frozen=True)
class OutputLayout:
    """The output folder of a run; README's "What a run writes" in code."""

    root: Path

    @classmethod
    def of(cls, cfg: Any) -> OutputLayout:
        """The layout of `cfg.output.dir`, as an absolute path."""
        return cls(Path(str(cfg.output.dir)).expanduser().resolve())

    # --- validate, extract -----------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def tracks(self) -> Path:
        """The corpus's usable tracks with their metadata (label, split, artist, ...): what splits read."""
        return self.root / "tracks.parquet"

    @property
    def skipped(self) -> Path:
        """The tracks the corpus lists but cannot use (no label, file missing), with the reason."""
        return self.root / "skipped.parquet"

    @property
    def validation(self) -> Path:
        return self.root / "validation.parquet"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def errors(self) -> Path:
        return self.root / "errors.parquet"

    @property
    def error_parts(self) -> Path:
        """Per-batch error parts; errors.parquet is merged from them at the end of every extract."""
        return self.root / ".errors"

    @property
    def table_cache(self) -> Path:
        """The columns of data.tracks that a corpus reads, kept while the file is unchanged."""
        return self.root / ".cache" / "tracks"

    @property
    def hash_parts(self) -> Path:
        """Content hashes of the decoded audio, written per batch by extract in its one decode and
        merged into one part once its batches are done."""
        return self.root / ".hashes"

    # --- train, tune, compare --------------------------------------------------------------
    @property
    def model(self) -> ModelFiles:
        return ModelFiles(self.root / "model")

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def confusion_matrix(self) -> Path:
        return self.root / "confusion_matrix.png"

    @property
    def tune(self) -> Path:
        return self.root / "tune"

    @property
    def tune_model(self) -> ModelFiles:
        return ModelFiles(self.tune / "model")

    @property
    def tune_metrics(self) -> Path:
        return self.tune / "metrics.json"

    @property
    def cv_results(self) -> Path:
        return self.tune / "cv_results.csv"

    @property
    def cv_figure(self) -> Path:
        return self.tune / "cv_results.png"

    @property
    def best_params(self) -> Path:
        return self.tune / "best_params.json"

    @property
    def evaluation(self) -> EvaluationFiles:
        return EvaluationFiles(self.root / "evaluate")

    def comparison(self, split: str) -> ComparisonFiles:
        return ComparisonFiles(self.root / "compare" / split)

    def comparisons(self) -> dict[str, ComparisonFiles]:
        """Every split `compare` has written, by name."""
        found = sorted((self.root / "compare").glob("*/comparison.json"))
        return {path.parent.name: ComparisonFiles(path.parent) for path in found}

    # --- report, predict, bench ------------------------------------------------------------
    @property
    def report(self) -> Path:
        """The report page, and its figures beside it under the names the page gives them."""
        return self.root / "report"

    @property
    def report_page(self) -> Path:
        return self.report / "index.html"

    @property
    def report_screenshot(self) -> Path:
        """The page's first screen (1280 x 900) as Chromium drew it: the browser test's CI artifact."""
        return self.report / "screenshots" / "first-screen.png"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def predictions_table(self) -> Path:
        return self.predictions / "predictions.csv"

    @property
    def predictions_records(self) -> Path:
        return self.predictions / "predictions.json"

    @property
    def bench(self) -> BenchFiles:
        return BenchFiles(self.root / "bench")

    @property
    def tls_parent(self) -> Path:
        """Where SLURM runs keep their private, temporary `.dask-tls-*` credentials folder."""
        return self.root
