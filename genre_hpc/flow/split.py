"""Train/test splits of the feature rows: by track (default), from published lists, from the corpus's
own split column (FMA's official sides), or the leaky random split of segments that the origin
study used (kept only to show the leak).

Every honest split and fold keeps whole groups on one side; a group is what `connected_groups`
makes of the tracks: copies of one recording, and tracks sharing a `split.group_by` value.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import PredefinedSplit, StratifiedKFold, StratifiedShuffleSplit

from genre_hpc.core.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

LEAK_WARNING = "LEAKY: segments of one track on both sides (the origin study's protocol)"
SPLITS = ("grouped", "predefined", "official", "random_segments")


@dataclass(frozen=True)
class Split:
    """Which rows are trained on and which are held out, and how that was decided."""

    name: str
    description: str
    train_tracks: frozenset[str] = frozenset()
    test_tracks: frozenset[str] = frozenset()
    leaky: bool = False
    test_fraction: float = 0.0  # random_segments only: share of segments held out
    seed: int = 0
    details: dict = field(default_factory=dict)

    def mask(self, rows: pd.DataFrame, side: str) -> np.ndarray:
        """Boolean mask of `rows` (track_id, segment) on `side` ("train" or "test")."""
        if self.name == "random_segments":
            key = f"{self.seed:016d}"[-16:]
            hashes = pd.util.hash_pandas_object(rows[["track_id", "segment"]], index=False, hash_key=key)
            test = (hashes.to_numpy() % 1_000_000) < self.test_fraction * 1_000_000
            return test if side == "test" else ~test
        tracks = self.test_tracks if side == "test" else self.train_tracks
        return rows.track_id.isin(tracks).to_numpy()

    def label(self) -> str:
        """How the split is named next to every number it produced."""
        return f"{self.name} split ({LEAK_WARNING})" if self.leaky else f"{self.name} split"

    def summary(self) -> dict:
        info = {"name": self.name, "description": self.description, "leaky": self.leaky, **self.details}
        if not self.leaky:
            info.update(train_tracks=len(self.train_tracks), test_tracks=len(self.test_tracks))
        return info


def make_split(tracks: pd.DataFrame, spec: DictConfig) -> Split:
    """The split `split.*` names; `tracks` has track_id, label and a duplicate `group` per track."""
    if spec.name == "grouped":
        return _grouped(tracks, spec)
    if spec.name == "predefined":
        return _with_straddling(_predefined(tracks, spec), tracks)
    if spec.name == "official":
        return _with_straddling(_official(tracks, spec), tracks)
    if spec.name == "random_segments":
        return Split(
            name="random_segments",
            description=f"random {spec.test_fraction:.0%} of segments, seed {spec.seed}; {LEAK_WARNING}",
            leaky=True,
            test_fraction=float(spec.test_fraction),
            seed=int(spec.seed),
            details={"test_fraction": spec.test_fraction, "seed": spec.seed},
        )
    raise ConfigError("split", f"unknown split {spec.name!r}", f"use split={' | '.join(SPLITS)}")


def connected_groups(track_ids: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """The group of each track: tracks that share a value of any key (a content hash, an artist)
    are one group, transitively (connected components), named after its first track_id.

    `keys` are aligned with `track_ids`; a missing value joins nothing.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(track_ids)
    rows, cols, offset = [np.arange(n)], [np.arange(n)], n
    for key in keys:
        codes, uniques = pd.factorize(pd.Series(key).reset_index(drop=True))
        has = codes >= 0
        rows.append(np.flatnonzero(has))
        cols.append(codes[has] + offset)
        offset += len(uniques)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    names = pd.Series(track_ids.to_numpy(), index=track_ids.index)
    return names.groupby(component[:n]).transform("min")


def _grouped(tracks: pd.DataFrame, spec: DictConfig) -> Split:
    n_classes = tracks.label.nunique()
    groups = tracks.get("group", tracks.track_id)
    # split whole groups (a track, every copy of one recording, every track of one group_by
    # value), stratified by each group's first label; then every track follows its group, so no
    # group straddles the two sides
    by_group = tracks.assign(group=groups).groupby("group", sort=True).label.first()
    per_label = by_group.value_counts()
    # a genre of one group cannot be on both sides: it is trained on, and named as untested
    train_only = sorted(per_label.index[per_label < 2])
    splittable = by_group[~by_group.isin(train_only)]
    n_split = n_classes - len(train_only)
    if n_classes < 2 or n_split < 1:
        raise DatasetError(
            f"{n_classes} genre(s) in {len(by_group)} groups of tracks, none with 2 groups: a classifier "
            "needs at least 2 genres, and a held-out side at least 2 tracks of one genre, in data.root"
            + (f" (groups join tracks of one split.group_by={_group_by(spec)})" if _group_by(spec) else "")
        )
    n_test = int(round(spec.test_fraction * len(splittable)))
    # every splittable genre gets a group on each side, whatever the fraction says
    n_test = min(max(n_test, n_split), len(splittable) - n_split)
    if n_test != int(round(spec.test_fraction * len(splittable))):
        log.warning(
            "split: %d groups are too few for split.test_fraction=%s to hold out one of each of %d "
            "genres; holding out %d groups", len(splittable), spec.test_fraction, n_split, n_test,
        )  # fmt: skip
    if n_split == 1:  # one genre to split: nothing to stratify
        test_groups = set(splittable.sample(n=n_test, random_state=spec.seed).index)
    else:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=spec.seed)
        _, test_idx = next(splitter.split(np.zeros(len(splittable)), splittable.to_numpy()))
        test_groups = set(splittable.index[test_idx])
    is_test = groups.isin(test_groups).to_numpy()
    duplicates = int(groups.duplicated(keep=False).sum())
    absent = sorted(set(tracks.label) - set(tracks.label[is_test]))
    if absent:
        log.warning(
            "split: the test side has no track of %s (fewer than 2 groups%s): trained on, not tested",
            ", ".join(absent), f" of split.group_by={_group_by(spec)}" if _group_by(spec) else "",
        )  # fmt: skip
    return Split(
        name="grouped",
        train_tracks=frozenset(tracks.track_id[~is_test]),
        test_tracks=frozenset(tracks.track_id[is_test]),
        description=(
            f"held-out tracks: {spec.test_fraction:.0%} stratified by genre, seed {spec.seed}; no "
            "track, and no copy of the same audio, has segments on both sides"
            + _by(spec)
            + (f"; not on the test side (fewer than 2 groups): {', '.join(absent)}" if absent else "")
        ),
        seed=int(spec.seed),
        details={
            "test_fraction": spec.test_fraction,
            "seed": spec.seed,
            # with group_by, a group is also an artist's tracks: not duplicates, so named apart
            ("tracks_in_shared_groups" if _group_by(spec) else "tracks_in_duplicate_groups"): duplicates,
            "group_by": _group_by(spec),
            "groups": int(groups.nunique()),
            **_sides(tracks, is_test),
        },
    )


def _sides(tracks: pd.DataFrame, is_test: np.ndarray, on_train: np.ndarray | None = None) -> dict:
    """The genres each side lacks, as every split's summary names them."""
    on_train = ~is_test if on_train is None else on_train
    labels = set(tracks.label)
    return {
        "labels_absent_from_test": sorted(labels - set(tracks.label[is_test])),
        "labels_absent_from_training": sorted(labels - set(tracks.label[on_train])),
    }


def _official(tracks: pd.DataFrame, spec: DictConfig) -> Split:
    """The corpus's own sides (FMA's ('set', 'split')): train on `train_on`, test on `test_on`."""
    if "split" not in tracks.columns or tracks.split.isna().all():
        raise DatasetError(
            "split=fma reads the corpus's split column, and these tracks have none: use data=fma, or "
            "data=table with data.columns.split (then run validate or extract once to record it)"
        )
    train_on, test_on = {str(s) for s in spec.train_on}, {str(s) for s in spec.test_on}
    train = frozenset(tracks.track_id[tracks.split.isin(train_on)])
    test = frozenset(tracks.track_id[tracks.split.isin(test_on)])
    values = sorted(tracks.split.dropna().astype(str).unique())
    if not train or not test:
        raise DatasetError(
            f"split=fma: {len(train)} train and {len(test)} test tracks; the split column holds "
            f"{values}: set split.train_on and split.test_on to its values"
        )
    unassigned = len(tracks) - len(train) - len(test)
    if unassigned:
        log.warning("split: %d tracks are on neither side (split column not in %s)",
                    unassigned, sorted(train_on | test_on))  # fmt: skip
    return Split(
        name="official",
        train_tracks=train,
        test_tracks=test,
        description=(
            f"the corpus's own sides ({spec.source}): trained on {sorted(train_on)}, tested on "
            f"{sorted(test_on)}"
        ),
        seed=int(spec.seed),
        details={
            "source": spec.source,
            "on_neither_side": unassigned,
            "group_by": _group_by(spec),
            "sides": {str(k): int(v) for k, v in tracks.split.value_counts().items()},
        },  # fmt: skip
    )


def _with_straddling(split: Split, tracks: pd.DataFrame) -> Split:
    """A split drawn from lists or the corpus cannot move tracks: count the groups (copies of one
    recording, an artist under split.group_by) it puts on both sides, and say so."""
    groups = tracks.get("group", tracks.track_id)
    side = pd.Series(np.where(tracks.track_id.isin(split.test_tracks), "test", None), index=tracks.index)
    side[tracks.track_id.isin(split.train_tracks)] = "train"
    both = int((side.dropna().groupby(groups[side.notna()]).nunique() > 1).sum())
    if both:
        log.warning("split: %d groups (copies of one recording, or one split.group_by value) are on "
                    "both sides of the %s split", both, split.name)  # fmt: skip
    sides = _sides(tracks, side.eq("test").to_numpy(), side.eq("train").to_numpy())
    if sides["labels_absent_from_training"]:
        log.warning(
            "split: the training side of the %s split has no track of %s: the model cannot name them, "
            "so their test tracks count as wrong",
            split.name, ", ".join(sides["labels_absent_from_training"]),
        )  # fmt: skip
    if sides["labels_absent_from_test"]:
        log.warning("split: the test side of the %s split has no track of %s: trained on, not tested",
                    split.name, ", ".join(sides["labels_absent_from_test"]))  # fmt: skip
    return replace(split, details={**split.details, "groups_on_both_sides": both, **sides})


def _group_by(spec: DictConfig) -> str | None:
    value = OmegaConf.select(spec, "group_by", default=None)
    return None if value is None else str(value)


def _by(spec: DictConfig) -> str:
    column = _group_by(spec)
    return f", nor two tracks of one {column}" if column else ""


def _predefined(tracks: pd.DataFrame, spec: DictConfig) -> Split:
    listed = read_lists(spec)
    known = sorted(set(tracks.track_id))
    # an entry matches a track by its path, its path without the extension (GTZAN ships .au,
    # most copies .wav), its file name, or its file name without the extension; the last three
    # only where they are unique in the corpus
    keys = [
        lambda t: t,
        lambda t: str(Path(t).with_suffix("")),
        lambda t: Path(t).name,
        lambda t: Path(t).stem,
    ]
    lookups = []
    for key in keys:
        names = pd.Series({t: key(t) for t in known}, dtype=object)
        unique = names[~names.duplicated(keep=False)]
        lookups.append((key, dict(zip(unique.to_numpy(), unique.index, strict=True))))

    def resolve(entry: str) -> str | None:
        for key, lookup in lookups:
            if key(entry) in lookup:
                return lookup[key(entry)]
        return None

    listed["track_id"] = listed.file.map(resolve)
    missing = listed[listed.track_id.isna()].file.tolist()
    if missing:
        log.warning(
            "split: %d listed files are not in the dataset (missing or undecodable), skipped: %s",
            len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""),
        )  # fmt: skip
    found = listed.dropna(subset=["track_id"])
    train_sides = set(spec.train_on)
    train = frozenset(found[found.split.isin(train_sides)].track_id)
    test = frozenset(found[found.split == "test"].track_id)
    if not train or not test:
        raise DatasetError(
            f"split=predefined: {len(train)} train and {len(test)} test tracks of the lists are in "
            "the dataset; both need some (check split.lists against data.root)"
        )
    return Split(
        name="predefined",
        train_tracks=train,
        test_tracks=test,
        description=f"file lists ({spec.source}); trained on {sorted(train_sides)}, tested on test",
        details={"missing_from_dataset": missing, "listed": len(listed), "source": spec.source},
    )


def read_lists(spec: DictConfig) -> pd.DataFrame:
    """The lists as (file, split): one text file per split, one corpus-relative path per line.

    A relative path that is not found from the working directory is looked up among the lists
    shipped in conf/split/ (gtzan_filtered/...).
    """
    frames = []
    for side, given in spec.lists.items():
        path = Path(str(given)).expanduser()
        shipped = Path(str(resources.files("genre_hpc.conf"))) / "split" / str(given)
        if not path.exists() and not path.is_absolute() and shipped.exists():
            path = shipped
        if not path.exists():
            raise ConfigError(
                f"split.lists.{side}", f"{path} does not exist", "give a list of files per line"
            )
        names = [line.strip() for line in path.read_text().splitlines()]
        frames.append(
            pd.DataFrame({"file": [n for n in names if n and not n.startswith("#")], "split": side})
        )
    return pd.concat(frames, ignore_index=True)


def grouped_folds(
    groups: np.ndarray, labels: np.ndarray, *, n_splits: int, seed: int
) -> tuple[PredefinedSplit, str]:
    """k cross-validation folds of whole groups (tracks, copies of one recording, tracks of one
    split.group_by value: TrainingData.tracks.group), stratified by each group's label, as
    scikit-learn's cv= takes them (tune's folds of the training rows), and what the folds lack."""
    rows = pd.DataFrame({"group": groups, "label": labels})
    fold, note = _group_folds(
        rows, n_splits=n_splits, seed=seed, key="search.cv_folds", what="training groups"
    )
    return PredefinedSplit(rows.group.map(fold).to_numpy()), note


def track_folds(tracks: pd.DataFrame, *, n_splits: int, seed: int, key: str) -> tuple[pd.Series, str]:
    """The fold (0 to k-1, or -1: never tested) of every track (`tracks`: track_id, label, group),
    indexed by track_id: whole groups per fold, stratified by genre; `key` is the setting that
    chose k. Also what the folds lack, said in words ("" when nothing)."""
    rows = tracks.assign(group=tracks.get("group", tracks.track_id))
    fold, note = _group_folds(rows, n_splits=n_splits, seed=seed, key=key, what="groups")
    return pd.Series(rows.group.map(fold).to_numpy(), index=rows.track_id.to_numpy(), name="fold"), note


def row_folds(rows: pd.DataFrame, tracks: pd.DataFrame, split: Split, *, n_splits: int, seed: int, key: str
              ) -> tuple[np.ndarray, str]:  # fmt: skip
    """The fold of every feature row (`rows`: track_id, label) and how the folds were drawn.

    Folds follow the split's protocol: whole tracks (and their groups) for an honest split;
    for the leaky random_segments split, segments, so the leak shows in cross-validation too.
    """
    if split.leaky:
        fold = segment_folds(rows.label.to_numpy(), n_splits=n_splits, seed=seed)
        return fold, f"{n_splits}-fold cross-validation of random segments ({LEAK_WARNING})"
    by_track, note = track_folds(tracks, n_splits=n_splits, seed=seed, key=key)
    description = (
        f"{n_splits}-fold cross-validation over whole tracks, stratified by genre; no track and no "
        "group of tracks (copies of one recording"
        + (f", one {split.details['group_by']}" if split.details.get("group_by") else "")
        + ") in two folds"
        + (f"; {note}" if note else "")
    )
    return rows.track_id.map(by_track).to_numpy(), description


def segment_folds(labels: np.ndarray, *, n_splits: int, seed: int) -> np.ndarray:
    """The leaky random_segments protocol's folds: a StratifiedKFold of the segments by `labels`
    (genre names, or their codes in sorted order: both stratify alike)."""
    fold = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[test] = k
    return fold


def _group_folds(
    rows: pd.DataFrame, *, n_splits: int, seed: int, key: str, what: str
) -> tuple[pd.Series, str]:
    """The fold of every group in `rows` (group, label), drawn on the one-row-per-group table, and
    what the folds lack.

    sklearn's StratifiedGroupKFold(shuffle=True) can put every track of a genre into one fold
    (seen here: all 8 jazz tracks of the demo corpus), which leaves that genre out of a
    training fold; folds drawn on the one-row-per-group table are balanced per genre.

    Real metadata has genres of a handful of artists: a genre with fewer groups than folds fills
    as many test folds as it has groups (and trains in every fold, since one fold tests at most
    one of its groups); a genre of one group is trained on in every fold and never tested (-1),
    since testing it would leave a fold's model without it.
    """
    by_group = rows.groupby("group", sort=True).label.first()
    per_label = by_group.value_counts()
    single = sorted(per_label.index[per_label < 2])
    testable = by_group[~by_group.isin(single)]
    if by_group.nunique() < 2 or len(testable) < n_splits:
        raise DatasetError(
            f"{len(testable)} {what} (tracks, or tracks of one recording or split.group_by value) of "
            f"genres with at least 2 of them, fewer than {key}={n_splits}: lower {key} or use more tracks"
        )
    fold = pd.Series(-1, index=by_group.index, dtype=int)
    if testable.value_counts().max() >= n_splits:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # "the least populated class has fewer members than n_splits": said below, by name
            warnings.simplefilter("ignore", UserWarning)
            for k, (_, test) in enumerate(splitter.split(np.zeros(len(testable)), testable.to_numpy())):
                fold[testable.index[test]] = k
    else:  # StratifiedKFold refuses when every genre is smaller than k; deal groups out as it would
        order = testable.sample(frac=1.0, random_state=seed).sort_values(kind="stable")
        fold[order.index] = np.arange(len(order)) % n_splits
    few = per_label[(per_label >= 2) & (per_label < n_splits)]
    notes = []
    if len(few):
        notes.append(
            f"in fewer test folds than {key}={n_splits} (one per group): "
            + ", ".join(f"{label} ({n})" for label, n in sorted(few.items()))
        )
    if single:
        notes.append(f"trained on in every fold, never tested (one group): {', '.join(map(str, single))}")
    note = "; ".join(notes)
    if note:
        log.warning("folds: %s", note)
    return fold, note
