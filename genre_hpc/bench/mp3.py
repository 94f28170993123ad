"""bench's MP3 probe: the package end to end (decode + features) against the origin study's method
(librosa.load + its per-chunk features), and the package's decode against libsndfile's own, on the
same 44.1 kHz stereo MP3 files (FMA's format).

Per clip cost is the marginal cost between a run over the first `small` and over the first `large`
files, (t_large - t_small) / (large - small), so a fixed cost per run (warm-up, first-call caches)
is not counted per clip. The methods compared take turns file by file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from genre_hpc.core.errors import ConfigError
from genre_hpc.flow import audio, demo, features, reference
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import track_features

REFERENCE = "reference (origin study's method: librosa.load + per-chunk features)"
PACKAGE = "genre-hpc (audio.iter_segments + track features)"
LIBSNDFILE = "libsndfile (soundfile.read, float32, as decoded)"
DECODE_PATH = "genre-hpc decode path (audio.iter_segments: mono, 22,050 Hz segments)"
LIBROSA_LOAD = "librosa.load (mono, resampled)"


def mp3_corpus(root: Path, n: int, *, seconds: float, seed: int) -> list[str]:
    """`n` demo clips as 44.1 kHz stereo MP3 under `root`/<seconds>s (written once, kept; one folder per
    length, as demo.generate keeps what it finds), genres interleaved."""
    per_genre = math.ceil(n / len(demo.GENRES))
    paths = demo.generate(root / f"{seconds:g}s", n_per_genre=per_genre, seconds=seconds, sample_rate=44100,
                          seed=seed, fmt="mp3", channels=2)  # fmt: skip
    by_rank = sorted(paths, key=lambda p: (int(p.name.split(".")[1]), p.parent.name))
    return [str(p) for p in by_rank[:n]]


def marginal(
    methods: dict[str, Callable[[str], object]], paths: list[str], counts: tuple[int, int], repeats: int
) -> tuple[pd.DataFrame, dict[str, list[object]]]:
    """Per method, the best of `repeats` runs over the first `small` and the first `large` paths,
    and the marginal seconds per file between them; and what each method returned for the `large`
    files (the last run).

    The methods take turns file by file (each file by every method, then the next file), so a
    change of the machine's load within a run falls on all of them alike: on a shared machine
    their ratio holds where their seconds do not."""
    small, large = counts
    best = {(name, n): math.inf for name in methods for n in counts}
    returned: dict[str, list[object]] = {}
    for _ in range(repeats):
        for n in counts:
            spent = dict.fromkeys(methods, 0.0)
            outputs: dict[str, list[object]] = {name: [] for name in methods}
            for path in paths[:n]:
                for name, method in methods.items():
                    started = time.perf_counter()
                    outputs[name].append(method(path))
                    spent[name] += time.perf_counter() - started
            for name in methods:
                best[name, n] = min(best[name, n], spent[name])
            returned = outputs
    rows = []
    for name in methods:
        per_file = (best[name, large] - best[name, small]) / (large - small)
        rows.append({"method": name, "clips_small": small, "clips_large": large,
                     "seconds_small": best[name, small], "seconds_large": best[name, large],
                     "s_per_clip": per_file})  # fmt: skip
    return pd.DataFrame(rows), returned


def time_mp3(
    paths: list[str], counts: tuple[int, int], params: FeatureParams, *, repeats: int, block_segments: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """(end-to-end table, decode table, the package's values, the reference's) on the same MP3 files.

    End to end: `speedup` is the reference's marginal seconds per clip over each method's. Decode:
    `ratio_vs_libsndfile` is each decoder's over libsndfile's own decode of the same files (to
    44.1 kHz stereo float32; the package also mixes to mono, resamples and cuts segments).
    """
    import librosa

    small, large = counts
    if not 0 <= small < large <= len(paths):
        problem = f"{list(counts)} must be two clip counts, the first smaller"
        raise ConfigError("bench.mp3_clips", problem, "e.g. [10, 50]")
    seconds = sf.info(paths[0]).duration

    def ours(path: str) -> np.ndarray:
        return track_features(path, params=params, block_segments=block_segments)[params.names()].to_numpy()

    def theirs(path: str) -> np.ndarray:
        return reference.load_track_features(path, params=params)

    segmenting = {"sample_rate": params.sample_rate, "segment_samples": params.segment_samples,
                  "min_samples": params.min_samples, "block_segments": block_segments}  # fmt: skip

    def decode(path: str) -> None:
        for _ in audio.iter_segments(path, **segmenting):
            pass

    def libsndfile(path: str) -> None:
        sf.read(path, dtype="float32")

    def load(path: str) -> None:
        librosa.load(path, sr=params.sample_rate, mono=True)

    # warm-up: numba (both extractors), the libraries' first calls, the files into the page cache
    features.warm_up()
    for warm in (ours, theirs, load):
        warm(paths[0])
    for path in paths[:large]:
        libsndfile(path)
    decoders = {DECODE_PATH: decode, LIBSNDFILE: libsndfile, LIBROSA_LOAD: load}
    decoding, _ = marginal(decoders, paths, counts, max(repeats, 3))  # a decode is cheap: best of 3 at least
    base = float(decoding.s_per_clip[decoding.method == LIBSNDFILE].iloc[0])
    decoding["ratio_vs_libsndfile"] = decoding.s_per_clip / base
    end_to_end, values = marginal({REFERENCE: theirs, PACKAGE: ours}, paths, counts, repeats)
    end_to_end["speedup"] = float(end_to_end.s_per_clip.iloc[0]) / end_to_end.s_per_clip
    for table in (decoding, end_to_end):
        table["s_per_30s_audio"] = table.s_per_clip / seconds * 30.0
    return end_to_end, decoding, np.vstack(values[PACKAGE]), np.vstack(values[REFERENCE])
