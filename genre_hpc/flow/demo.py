"""Generates a synthetic, GTZAN-shaped corpus: ROOT/<genre>/<genre>.000NN.wav, mono, 22,050 Hz.

Each genre is a recipe (tempo, pitch register, timbre, drums, noise); every clip draws its
own values around the recipe from a seed, so clips of one genre differ and genres overlap a
little, and the same seed always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from genre_hpc.core.atomic import atomic_path

GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    tempo: float  # beats per minute
    root_hz: float  # lowest note of the melody
    partials: int  # harmonics per note: more is brighter
    rolloff: float  # amplitude of partial k is rolloff**k
    notes_per_beat: int
    scale: tuple[int, ...]  # semitone steps the melody draws from
    kick: float  # drum levels
    snare: float
    hihat: float
    noise: float  # broadband hiss/distortion level
    offbeat: bool = False  # reggae's skank: chords on the off-beats


RECIPES: dict[str, Recipe] = {
    "blues": Recipe(80, 110, 6, 0.6, 1, (0, 3, 5, 6, 7, 10), 0.4, 0.3, 0.1, 0.01),
    "classical": Recipe(70, 262, 3, 0.4, 2, (0, 2, 4, 5, 7, 9, 11), 0.0, 0.0, 0.0, 0.002),
    "country": Recipe(110, 196, 5, 0.5, 2, (0, 2, 4, 7, 9), 0.4, 0.4, 0.2, 0.01),
    "disco": Recipe(124, 165, 4, 0.5, 2, (0, 3, 5, 7, 10), 0.9, 0.5, 0.6, 0.02),
    "hiphop": Recipe(90, 73, 3, 0.3, 1, (0, 3, 7), 1.0, 0.7, 0.3, 0.02),
    "jazz": Recipe(140, 147, 4, 0.45, 3, (0, 2, 3, 5, 7, 9, 10, 11), 0.2, 0.2, 0.5, 0.005),
    "metal": Recipe(170, 82, 12, 0.85, 4, (0, 1, 3, 5, 7, 8), 0.8, 0.6, 0.5, 0.2),
    "pop": Recipe(118, 330, 4, 0.4, 2, (0, 2, 4, 5, 7, 9), 0.7, 0.5, 0.3, 0.01),
    "reggae": Recipe(76, 123, 5, 0.5, 2, (0, 2, 4, 7, 9), 0.6, 0.5, 0.2, 0.01, True),
    "rock": Recipe(130, 110, 8, 0.7, 2, (0, 3, 5, 7, 10), 0.8, 0.7, 0.4, 0.08),
}


def clip_path(root: Path, genre: str, index: int) -> Path:
    return root / genre / f"{genre}.{index:05d}.wav"


def generate(
    root: str | Path,
    *,
    n_per_genre: int = 10,
    seconds: float = 30.0,
    sample_rate: int = 22050,
    seed: int = 0,
    genres: tuple[str, ...] = GENRES,
) -> list[Path]:
    """Write the corpus under `root` (existing clips are kept) and return every clip's path."""
    root = Path(root)
    paths = []
    for g, genre in enumerate(genres):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_genre):
            path = clip_path(root, genre, i)
            paths.append(path)
            if path.exists():
                continue
            rng = np.random.default_rng([seed, g, i])
            audio = synthesize(RECIPES[genre], rng, seconds=seconds, sample_rate=sample_rate)
            with atomic_path(path) as tmp:  # a killed generator never leaves a half-written clip
                sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    return paths


def synthesize(recipe: Recipe, rng: np.random.Generator, *, seconds: float, sample_rate: int) -> np.ndarray:
    """One clip of `recipe`, peak-normalised to 0.8, float32."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    tempo = recipe.tempo * rng.uniform(0.92, 1.08)
    beat = 60.0 / tempo
    root_hz = recipe.root_hz * 2 ** (rng.integers(-3, 4) / 12)

    # melody: one note per step, drawn from the scale over two octaves
    step = beat / recipe.notes_per_beat
    n_steps = int(np.ceil(seconds / step)) + 1
    degrees = rng.choice(recipe.scale, size=n_steps) + 12 * rng.integers(0, 2, size=n_steps)
    step_idx = np.minimum((t / step).astype(int), n_steps - 1)
    freq = root_hz * 2 ** (degrees[step_idx] / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    envelope = np.exp(-3.0 * (t % step) / step)
    melody = sum(recipe.rolloff**k * np.sin((k + 1) * phase) for k in range(recipe.partials))
    if recipe.offbeat:  # silence the melody on the beat, keep it on the off-beat
        melody = melody * ((t % beat) > beat / 2)
    signal = 0.5 * melody * envelope

    # a sustained bass drone on the root gives every genre a harmonic floor
    signal += 0.2 * np.sin(2 * np.pi * root_hz / 2 * t)
    signal += recipe.kick * _drum(t, beat, 0.0, 2, rng, sample_rate, freq=55.0, decay=0.12)
    signal += recipe.snare * _drum(t, beat, 1.0, 2, rng, sample_rate, freq=None, decay=0.08)
    signal += recipe.hihat * 0.5 * _drum(t, beat / 2, 0.0, 1, rng, sample_rate, freq=None, decay=0.02)
    if recipe.noise > 0.05:  # distortion: clip the mix hard
        signal = np.tanh(signal * (1 + 20 * recipe.noise))
    signal += recipe.noise * rng.uniform(0.5, 1.5) * rng.standard_normal(n)
    signal *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)  # slow swell
    return (0.8 * signal / max(np.max(np.abs(signal)), 1e-9)).astype(np.float32)


def _drum(
    t: np.ndarray,
    period: float,
    offset_beats: float,
    every: int,
    rng: np.random.Generator,
    sample_rate: int,
    *,
    freq: float | None,
    decay: float,
) -> np.ndarray:
    """Hits every `every` periods from `offset_beats`: a decaying tone (kick) or noise."""
    since = (t - offset_beats * period) % (every * period)
    env = np.exp(-since / decay) * (t >= offset_beats * period)
    if freq is None:
        return env * rng.standard_normal(t.size)
    return env * np.sin(2 * np.pi * freq * since)


# The FMA-shaped demo: FMA's genre names, each played by one of the recipes above.
# "Old-Time / Historic" early: a genre name with a slash must stay one hive folder.
FMA_GENRES: dict[str, str] = {
    "Rock": "rock", "Old-Time / Historic": "blues", "Hip-Hop": "hiphop", "Jazz": "jazz",
    "Classical": "classical", "Electronic": "disco",
}  # fmt: skip
# An artist's side of FMA's official split (artist-disjoint); the first artist of each genre is tested.
FMA_SIDES = ("test", "training", "validation", "training", "training")


@dataclass(frozen=True)
class FmaCorpus:
    """Where generate_fma wrote the audio folder and tracks.csv, and the faults it planted."""

    audio: Path
    tracks: Path
    no_genre_top: int  # a track id whose genre_top is empty (its file exists)
    missing_file: int  # a track id listed with a genre but no file
    no_audio: int  # a track id whose file holds no audio (as fma_small's 099134 does)


def generate_fma(
    root: str | Path,
    *,
    genres: int = 4,
    artists_per_genre: int = 5,
    tracks_per_artist: int = 3,
    seconds: float = 6.0,
    sample_rate: int = 22050,
    seed: int = 0,
) -> FmaCorpus:
    """An FMA-shaped corpus under `root`: MP3 clips as audio/<id[:3]>/<id:06d>.mp3 and
    fma_metadata/tracks.csv with FMA's three-row header; existing clips are kept.

    Track k of an artist is in subset small, medium, large (k mod 3), so the subsets nest as
    FMA's do; each artist's tracks share a split side. Three more tracks carry FMA's faults:
    one without genre_top, one whose file is missing, one whose file holds no audio.
    """
    from genre_hpc.flow.metadata import FMA_COLUMNS, FMA_SUBSETS, fma_path

    if not 1 <= genres <= len(FMA_GENRES):
        raise ValueError(f"genres must be 1..{len(FMA_GENRES)}, not {genres}")
    root = Path(root)
    audio, tracks_csv = root / "audio", root / "fma_metadata" / "tracks.csv"
    rows = []  # (track id, genre_top, artist id, split, subset, recipe)
    for g, genre in enumerate(list(FMA_GENRES)[:genres]):
        for a in range(artists_per_genre):
            artist = 1 + g * artists_per_genre + a
            for k in range(tracks_per_artist):
                side = FMA_SIDES[a % len(FMA_SIDES)]
                rows.append((genre, artist, side, FMA_SUBSETS[k % 3], FMA_GENRES[genre]))
    faults = [(None, 9000, "training", "small", "rock"), ("Rock", 9001, "training", "medium", None),
              ("Rock", 9002, "training", "small", "")]  # fmt: skip
    ids = [2 + 137 * n for n in range(len(rows) + len(faults))]
    table = pd.DataFrame(index=pd.Index(ids, name="track_id"), columns=pd.MultiIndex.from_tuples(FMA_COLUMNS))
    for track_id, (genre, artist, side, subset, recipe) in zip(ids, rows + faults, strict=True):
        table.loc[
            track_id, [("track", "genre_top"), ("artist", "id"), ("set", "split"), ("set", "subset")]
        ] = [genre, artist, side, subset]
        table.loc[track_id, [("album", "id"), ("artist", "name"), ("track", "duration")]] = [
            artist * 10,
            f"Artist {artist}",
            int(seconds),
        ]
        path = audio / fma_path(track_id)
        if recipe is None or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            if recipe:
                rng = np.random.default_rng([seed, track_id])
                clip = synthesize(RECIPES[recipe], rng, seconds=seconds, sample_rate=sample_rate)
                sf.write(tmp, clip, sample_rate, format="MP3")
            else:  # an ID3 tag and nothing after it
                tmp.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00")
    tracks_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(tracks_csv) as tmp:
        table.to_csv(tmp)
    return FmaCorpus(audio, tracks_csv, *ids[len(rows) :])
