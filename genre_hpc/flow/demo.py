"""Generates a synthetic, GTZAN-shaped corpus of songs: ROOT/<genre>/<genre>.000NN.wav, mono, 22,050 Hz
(or, on request, MP3 in stereo at any rate, as FMA holds its audio).

Each clip is a song with an identity of its own, drawn once from its seed and shared by all its
segments: key, mode, tempo, swing, chord progression, drum pattern, bass line, the timbre of each
instrument, distortion and the mix. A genre is a distribution over those identities (a `Style`),
and neighbouring genres overlap as real ones do (rock/metal share distortion and power chords,
disco/pop tempo and four-on-the-floor, blues/jazz/country swing and dominant chords). So a model
that learns a song's identity from its segments scores well on a leaky split and worse on held-out
songs, as on GTZAN. Plain numpy synthesis: drums from noise and swept sines, pitched instruments
from wavetables of harmonics with envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from scipy import signal

from genre_hpc.core.atomic import atomic_path, write_text

GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)  # fmt: skip

# Changes with the synthesis: a corpus written by another version is written again, not mixed.
DEMO_VERSION = "3"
VERSION_FILE = ".demo-version"

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "blues": (0, 3, 5, 6, 7, 10),
    "pentatonic_major": (0, 2, 4, 7, 9),
    "pentatonic_minor": (0, 3, 5, 7, 10),
}

# Drum patterns on a 16-step bar: (kick, snare, hi-hat) steps; "ride" hats ring longer.
DRUMS = {
    "backbeat": ((0, 8, 10), (4, 12), tuple(range(0, 16, 2))),
    "four_floor": ((0, 4, 8, 12), (4, 12), (2, 6, 10, 14)),
    "double_kick": (tuple(range(16)), (4, 12), (0, 4, 8, 12)),
    "shuffle": ((0, 8), (4, 12), (0, 2, 4, 6, 8, 10, 12, 14)),
    "ride": ((0, 10), (7, 14), (0, 4, 6, 8, 12, 14)),
    "one_drop": ((8,), (8,), (2, 6, 10, 14)),
    "boom_bap": ((0, 7, 10), (4, 12), tuple(range(0, 16, 2))),
    "train": ((0, 8), (2, 4, 6, 10, 12, 14), (0, 4, 8, 12)),
    "none": ((), (), ()),
}


@dataclass(frozen=True)
class Style:
    """A genre as ranges and choices that each of its songs draws from."""

    tempo: tuple[float, float]  # beats per minute
    swing: tuple[float, float]  # 0 straight, 1 full triplet swing
    scales: tuple[str, ...]  # the key's mode, for chords and bass
    lead_scale: str | None  # the melody's scale, None: the key's mode
    progressions: tuple[tuple[int, ...], ...]  # chord roots per bar, as scale degrees
    sevenths: float  # share of songs with four-note chords
    drums: tuple[str, ...]
    bass: tuple[str, ...]  # root, root_fifth, walking, octave, eighths, sub, reggae, long
    comp: tuple[str, ...]  # how chords are played: pad, strum, stab, offbeat, power, arp
    lead: tuple[float, float]  # melody notes per beat
    brightness: tuple[float, float]  # harmonic rolloff of the pitched instruments
    distortion: tuple[float, float]
    register: tuple[int, int]  # MIDI note of the key's root (bass octave)
    drum_level: tuple[float, float]
    comp_level: tuple[float, float] = (0.4, 0.9)  # the chord instrument in the mix


STYLES: dict[str, Style] = {
    "blues": Style((64, 100), (0.45, 0.9), ("mixolydian",), "blues",
                   ((0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), (0, 3, 0, 0, 3, 3, 0, 0, 4, 3, 0, 0)),
                   0.8, ("shuffle", "backbeat"), ("walking", "root_fifth"), ("strum", "stab"),
                   (0.5, 1.5), (0.5, 0.78), (0.05, 0.4), (38, 47), (0.35, 0.75)),
    "classical": Style((54, 120), (0.0, 0.0), ("major", "minor", "harmonic_minor"), None,
                       ((0, 3, 4, 0), (0, 5, 3, 4), (0, 1, 4, 0), (0, 4, 5, 3)),
                       0.3, ("none",), ("long", "root"), ("pad", "arp"),
                       (0.5, 2.0), (0.2, 0.55), (0.0, 0.0), (40, 52), (0.0, 0.0)),
    "country": Style((88, 140), (0.0, 0.4), ("major", "mixolydian"), "pentatonic_major",
                     ((0, 3, 4, 0), (0, 0, 3, 4), (0, 3, 0, 4)),
                     0.15, ("train", "backbeat"), ("root_fifth",), ("strum", "arp"),
                     (1.0, 2.0), (0.55, 0.8), (0.0, 0.12), (40, 50), (0.35, 0.7)),
    "disco": Style((110, 132), (0.0, 0.15), ("minor", "dorian", "major"), None,
                   ((0, 3), (0, 5, 3, 4), (1, 4), (0, 6, 5, 4)),
                   0.6, ("four_floor",), ("octave",), ("stab", "offbeat", "pad"),
                   (0.5, 1.5), (0.4, 0.7), (0.0, 0.12), (38, 47), (0.55, 0.9)),
    "hiphop": Style((76, 102), (0.1, 0.55), ("minor", "dorian", "phrygian"), None,
                    ((0, 0), (0, 5), (0, 3), (0, 6)),
                    0.5, ("boom_bap", "backbeat"), ("sub",), ("pad", "stab"),
                    (0.0, 0.8), (0.3, 0.6), (0.0, 0.25), (33, 42), (0.75, 1.0), (0.2, 0.5)),
    "jazz": Style((92, 190), (0.5, 1.0), ("dorian", "major", "mixolydian"), None,
                  ((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4)),
                  1.0, ("ride", "shuffle"), ("walking",), ("stab", "pad"),
                  (1.0, 2.5), (0.3, 0.6), (0.0, 0.05), (38, 48), (0.2, 0.5)),
    "metal": Style((118, 200), (0.0, 0.0), ("phrygian", "minor", "harmonic_minor"), None,
                   ((0, 0, 1, 0), (0, 5, 6, 0), (0, 3, 1, 0)),
                   0.0, ("double_kick", "backbeat"), ("eighths",), ("power",),
                   (0.5, 3.0), (0.68, 0.9), (0.45, 1.0), (30, 42), (0.7, 1.0), (0.8, 1.3)),
    "pop": Style((90, 130), (0.0, 0.12), ("major",), None,
                 ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4)),
                 0.2, ("backbeat", "four_floor"), ("root", "octave"), ("pad", "strum", "arp"),
                 (1.0, 2.0), (0.35, 0.65), (0.0, 0.15), (40, 50), (0.5, 0.8)),
    "reggae": Style((62, 92), (0.1, 0.45), ("major", "minor", "mixolydian"), None,
                    ((0, 3), (0, 4, 3, 0), (0, 5, 3, 4)),
                    0.2, ("one_drop", "four_floor"), ("reggae",), ("offbeat",),
                    (0.3, 1.0), (0.4, 0.7), (0.0, 0.12), (36, 45), (0.5, 0.8)),
    "rock": Style((98, 152), (0.0, 0.1), ("minor", "mixolydian", "major"), "pentatonic_minor",
                  ((0, 5, 3, 4), (0, 3, 4, 3), (0, 6, 5, 6)),
                  0.0, ("backbeat", "four_floor"), ("eighths", "root"), ("power", "strum"),
                  (0.5, 2.0), (0.6, 0.88), (0.25, 0.85), (36, 45), (0.6, 0.9), (0.6, 1.1)),
}  # fmt: skip

# Each trait of a song (tempo, swing, harmony, register, drums, bass, comping, melody,
# distortion, sound) comes from a neighbouring genre with this probability, as genres borrow.
BORROW = 0.07
NEIGHBOURS = {
    "blues": ("jazz", "country", "rock"),
    "classical": ("jazz",),
    "country": ("blues", "pop", "rock"),
    "disco": ("pop", "hiphop"),
    "hiphop": ("reggae", "pop", "disco"),
    "jazz": ("blues", "classical"),
    "metal": ("rock",),
    "pop": ("disco", "rock", "country"),
    "reggae": ("hiphop", "pop"),
    "rock": ("metal", "pop", "blues"),
}

TABLE = 2048  # wavetable length


# What `generate` writes per format: (soundfile's format, its subtype or None for the default).
FORMATS = {"wav": ("WAV", "PCM_16"), "mp3": ("MP3", None)}


def clip_path(root: Path, genre: str, index: int, fmt: str = "wav") -> Path:
    return root / genre / f"{genre}.{index:05d}.{fmt}"


def generate(
    root: str | Path,
    *,
    n_per_genre: int = 10,
    seconds: float = 30.0,
    sample_rate: int = 22050,
    seed: int = 0,
    genres: tuple[str, ...] = GENRES,
    fmt: str = "wav",
    channels: int = 1,
) -> list[Path]:
    """Write the corpus under `root` (clips of this version are kept) and return every clip's path.

    `fmt="mp3", channels=2, sample_rate=44100` writes clips as FMA holds its audio (44.1 kHz stereo
    MP3; each song's second channel a slightly delayed, quieter copy of the first: see `stereo`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / VERSION_FILE
    current = marker.exists() and marker.read_text().strip() == DEMO_VERSION
    paths = []
    for g, genre in enumerate(genres):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_genre):
            path = clip_path(root, genre, i, fmt)
            paths.append(path)
            if current and path.exists():
                continue
            rng = np.random.default_rng([seed, g, i])
            audio = synthesize(genre, rng, seconds=seconds, sample_rate=sample_rate)
            if channels == 2:
                audio = stereo(audio, sample_rate)
            with atomic_path(path) as tmp:  # a killed generator never leaves a half-written clip
                sf.write(tmp, audio, sample_rate, subtype=FORMATS[fmt][1], format=FORMATS[fmt][0])
    write_text(marker, DEMO_VERSION + "\n")
    return paths


def stereo(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, 2): the song left, and right 0.5 ms later at 0.8 of its level (the two channels
    differ, as a mix's do, so an encoder codes both and a decoder mixes two different signals)."""
    delay = round(0.0005 * sample_rate)
    right = np.zeros_like(mono)
    right[delay:] = 0.8 * mono[: len(mono) - delay]
    return np.stack([mono, right], axis=1)


def synthesize(genre: str, rng: np.random.Generator, *, seconds: float, sample_rate: int) -> np.ndarray:
    """One song of `genre`, its identity drawn from `rng`; peak-normalised to 0.8, float32."""
    return _Song(genre, rng, sample_rate).render(seconds)


class _Song:
    """One song's identity, drawn once, and its rendering."""

    def __init__(self, genre: str, rng: np.random.Generator, sr: int) -> None:
        u = rng.uniform
        own = STYLES[genre]
        self.rng, self.sr, self.style = rng, sr, own

        def style() -> Style:
            """The genre's own style, or for this one trait a neighbour's: genres borrow."""
            if u() < BORROW:
                neighbours = NEIGHBOURS[genre]
                return STYLES[neighbours[rng.integers(len(neighbours))]]
            return own

        self.beat = 60.0 / u(*style().tempo)
        self.swing = u(*style().swing)
        harmony = style()
        self.scale = SCALES[harmony.scales[rng.integers(len(harmony.scales))]]
        self.lead_scale = SCALES[harmony.lead_scale] if harmony.lead_scale else self.scale
        self.progression = harmony.progressions[rng.integers(len(harmony.progressions))]
        self.chord_size = 4 if u() < harmony.sevenths else 3
        register = style().register
        self.root = int(rng.integers(register[0], register[1] + 1))
        drums = style()
        self.drums = DRUMS[drums.drums[rng.integers(len(drums.drums))]]
        bass = style().bass
        self.bass = bass[rng.integers(len(bass))]
        comp = style().comp
        self.comp = comp[rng.integers(len(comp))]
        self.lead_rate = u(*style().lead)
        self.distortion = u(*style().distortion)
        style = style()  # the sound of the rest, as one
        # timbres: a rolloff from the genre, then this song's own tilt of each harmonic
        bright = u(*style.brightness)
        self.comp_table = _table(bright, rng, odd=u() < 0.3)
        self.lead_table = _table(min(0.95, bright * u(0.85, 1.15)), rng, odd=u() < 0.3)
        self.bass_table = _table(u(0.2, 0.6), rng, odd=False, n=6)
        self.levels = {
            "drums": u(*drums.drum_level),
            "bass": u(0.5, 1.0),
            "comp": u(*style.comp_level),
            "lead": u(0.3, 0.8) if self.lead_rate > 0.05 else 0.0,
        }
        self.kick_hz = (u(90, 160), u(40, 60), u(0.08, 0.3))  # start, end, decay (s)
        self.snare = (u(150, 260), u(0.06, 0.2), u(0.3, 0.8))  # tone Hz, decay, noise share
        self.hat_decay = u(0.015, 0.06) if self.drums is not DRUMS["ride"] else u(0.15, 0.35)
        self.attack = u(0.002, 0.01) if self.comp != "pad" else u(0.08, 0.4)
        self.decay = u(0.15, 0.8) if self.comp != "pad" else u(1.5, 4.0)
        self.vibrato = (u(4.5, 6.5), u(0.0, 0.006))  # rate Hz, depth (share of frequency)
        self.echo = (u(0.02, 0.12), u(0.0, 0.4))  # delay (s), feedback: the room
        self.hiss = u(0.0005, 0.006)
        # the recording and mastering: a tilt of the whole spectrum, dark to bright, that has
        # nothing to do with the genre (real corpora mix decades of studios and home recordings)
        self.tilt = (u(800, 6000), u(-0.8, 0.8))  # corner Hz, <0 darker, >0 brighter
        self._tones: dict[tuple, np.ndarray] = {}

    # --- time ----------------------------------------------------------------------------
    def step_time(self, bar: int, step: int) -> float:
        """Onset of 16th `step` of `bar`, swung: off-beat 8ths move towards the triplet."""
        t = (bar * 16 + step) * self.beat / 4
        if step % 4 == 2:
            t += self.swing * self.beat / 6
        elif step % 2 == 1:
            t += self.swing * self.beat / 12
        return t + self.rng.normal(0.0, 0.004)  # a human hand

    def chord(self, bar: int) -> list[int]:
        """MIDI notes of the chord of `bar`, stacked thirds of the key's mode, an octave over the bass."""
        degree = self.progression[bar % len(self.progression)]
        notes = [self.root + 12 + _degree(self.scale, degree + 2 * k) for k in range(self.chord_size)]
        if self.comp == "power":
            base = self.root + 12 + _degree(self.scale, degree)
            return [base, base + 7, base + 12]
        return notes

    # --- rendering -------------------------------------------------------------------------
    def render(self, seconds: float) -> np.ndarray:
        n = int(round(seconds * self.sr))
        bars = int(np.ceil(seconds / (4 * self.beat))) + 1
        buses = {name: np.zeros(n + self.sr, dtype=np.float64) for name in self.levels}
        self._drums(buses["drums"], bars)
        self._bass(buses["bass"], bars)
        self._comp(buses["comp"], bars)
        if self.levels["lead"]:
            self._lead(buses["lead"], bars)
        if self.distortion > 0.02:  # the guitar through an amp: soft clipping, harder with more drive
            drive = 1.0 + 25.0 * self.distortion
            comp = buses["comp"]
            buses["comp"] = np.tanh(drive * comp / max(np.max(np.abs(comp)), 1e-9)) / np.tanh(drive)
            if self.distortion > 0.5:
                buses["lead"] = np.tanh(drive * buses["lead"]) / np.tanh(drive)
        mix = sum(self.levels[k] * _normalise(bus) for k, bus in buses.items())[:n]
        delay, feedback = self.echo
        lag = int(delay * self.sr)
        for k in (1, 2, 3):  # a few early reflections: the room this song was recorded in
            if feedback > 0 and lag * k < n:
                mix[lag * k :] += feedback**k * mix[: n - lag * k]
        mix = _tilt(mix, self.sr, *self.tilt)
        mix += self.hiss * self.rng.standard_normal(n)
        if self.drums is DRUMS["none"]:  # orchestral dynamics: a slow swell over the piece
            t = np.arange(n) / self.sr
            mix *= 0.6 + 0.4 * np.sin(2 * np.pi * t / self.rng.uniform(8, 20) + self.rng.uniform(0, 6.3))
        return (0.8 * mix / max(np.max(np.abs(mix)), 1e-9)).astype(np.float32)

    def _drums(self, out: np.ndarray, bars: int) -> None:
        sr, rng = self.sr, self.rng
        kick_start, kick_end, kick_decay = self.kick_hz
        t = np.arange(int(0.5 * sr)) / sr
        sweep = kick_end + (kick_start - kick_end) * np.exp(-t / 0.03)
        kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / kick_decay)
        tone_hz, snare_decay, noise_share = self.snare
        ts = t[: int(0.4 * sr)]
        snare = np.exp(-ts / snare_decay) * (
            noise_share * rng.standard_normal(ts.size) + (1 - noise_share) * np.sin(2 * np.pi * tone_hz * ts)
        )
        th = t[: int(min(0.5, 6 * self.hat_decay) * sr)]
        hat = np.diff(rng.standard_normal(th.size + 1)) * np.exp(-th / self.hat_decay)  # bright noise
        kicks, snares, hats = self.drums
        for bar in range(bars):
            fill = bar % 4 == 3  # every fourth bar a variation, as drummers play
            for step in kicks:
                _add(out, self.step_time(bar, step), sr, kick * rng.uniform(0.8, 1.0))
            for step in snares:
                _add(out, self.step_time(bar, step), sr, snare * rng.uniform(0.6, 1.0))
            if fill and snares:
                for step in (13, 14, 15):
                    _add(out, self.step_time(bar, step), sr, snare * rng.uniform(0.3, 0.6))
            for step in hats:
                _add(out, self.step_time(bar, step), sr, 0.5 * hat * rng.uniform(0.5, 1.0))

    def _bass(self, out: np.ndarray, bars: int) -> None:
        q = self.beat  # a quarter note
        for bar in range(bars):
            degree = self.progression[bar % len(self.progression)]
            root = self.root + _degree(self.scale, degree)
            fifth = root + 7
            if self.bass == "root":
                notes = [(0, root, 2 * q), (8, root, 2 * q)]
            elif self.bass == "root_fifth":
                notes = [(0, root, q), (4, fifth - 12, q), (8, root, q), (12, fifth - 12, q)]
            elif self.bass == "walking":
                walk = [root + _degree(self.scale, k) - _degree(self.scale, 0) for k in range(4)]
                notes = [(4 * k, walk[k], q) for k in range(4)]
            elif self.bass == "octave":
                notes = [(2 * k, root + 12 * (k % 2), q / 2) for k in range(8)]
            elif self.bass == "eighths":
                notes = [(2 * k, root, q / 2) for k in range(8)]
            elif self.bass == "sub":
                notes = [(0, root, 3 * q), (10, root, q)]
            elif self.bass == "reggae":
                notes = [(2, root, q / 2), (6, fifth - 12, q / 2), (8, root, q), (14, root + 12, q / 4)]
            else:  # long: a held note per bar (cellos)
                notes = [(0, root, 4 * q)]
            for step, note, length in notes:
                tone = self._tone(self.bass_table, note, length, attack=0.005, decay=length * 2)
                _add(out, self.step_time(bar, step), self.sr, tone)

    def _comp(self, out: np.ndarray, bars: int) -> None:
        q = self.beat
        for bar in range(bars):
            notes = self.chord(bar)
            if self.comp == "pad":
                hits = [(0, 4 * q)]
            elif self.comp == "strum":
                hits = [(0, q), (6, q / 2), (8, q), (12, q / 2), (14, q / 2)]
            elif self.comp == "stab":
                hits = [(int(s), q / 3) for s in self.rng.choice([2, 3, 6, 7, 10, 11, 14], 3, replace=False)]
            elif self.comp == "offbeat":
                hits = [(2, q / 3), (6, q / 3), (10, q / 3), (14, q / 3)]
            elif self.comp == "power":
                hits = [(2 * k, q / 2) for k in range(8)]
            else:  # arp: one chord note per 8th
                for k in range(8):
                    tone = self._tone(self.comp_table, notes[k % len(notes)], q, self.attack, self.decay)
                    _add(out, self.step_time(bar, 2 * k), self.sr, tone)
                continue
            for step, length in hits:
                start = self.step_time(bar, step)
                for j, note in enumerate(notes):  # a strum: strings a few ms apart
                    tone = self._tone(self.comp_table, note, length, self.attack, self.decay)
                    _add(out, start + 0.006 * j, self.sr, tone / len(notes))

    def _lead(self, out: np.ndarray, bars: int) -> None:
        scale, rng = self.lead_scale, self.rng
        position = len(scale)  # a random walk over two octaves of the melody's scale
        # notes of a 16th, 8th, quarter or half: phrases that fit the bar
        steps_per_note = int(2 ** np.clip(np.round(np.log2(4 / max(self.lead_rate, 0.25))), 0, 3))
        for bar in range(bars):
            for step in range(0, 16, steps_per_note):
                if rng.uniform() < 0.2:  # phrasing: some rests
                    continue
                position = int(np.clip(position + rng.integers(-2, 3), 0, 2 * len(scale)))
                note = self.root + 24 + _degree(scale, position)
                length = steps_per_note * self.beat / 4
                tone = self._tone(self.lead_table, note, length, 0.01, length * 1.5, vibrato=True)
                _add(out, self.step_time(bar, step), self.sr, tone)

    def _tone(
        self,
        table: np.ndarray,
        midi: float,
        length: float,
        attack: float,
        decay: float,
        vibrato: bool = False,
    ) -> np.ndarray:
        """One note from a wavetable: attack, exponential decay, a short release at its end."""
        key = (id(table), midi, length, attack, decay, vibrato)
        if key not in self._tones:  # a song plays the same notes over and over: render each once
            self._tones[key] = self._render_tone(table, midi, length, attack, decay, vibrato)
        return self._tones[key]

    def _render_tone(
        self, table: np.ndarray, midi: float, length: float, attack: float, decay: float, vibrato: bool
    ) -> np.ndarray:
        sr = self.sr
        n = max(int(length * sr), 16)
        freq = 440.0 * 2 ** ((midi - 69) / 12)
        t = np.arange(n) / sr
        if vibrato and self.vibrato[1] > 0:
            rate, depth = self.vibrato
            phase = freq * (t + depth * (1 - np.cos(2 * np.pi * rate * t)) / (2 * np.pi * rate))
        else:
            phase = freq * t
        wave = table[((phase % 1.0) * TABLE).astype(np.int64)]
        env = np.minimum(t / attack, 1.0) * np.exp(-t / decay)
        release = min(n, int(0.01 * sr))
        env[-release:] *= np.linspace(1.0, 0.0, release)
        return wave * env


def _tilt(y: np.ndarray, sr: int, corner_hz: float, amount: float) -> np.ndarray:
    """Shelve the spectrum above `corner_hz` down (amount < 0) or up (amount > 0) by a one-pole split."""
    a = np.exp(-2 * np.pi * corner_hz / sr)
    low = signal.lfilter([1 - a], [1, -a], y)
    return low + (1 + amount) * (y - low)


def _table(rolloff: float, rng: np.random.Generator, *, odd: bool, n: int = 16) -> np.ndarray:
    """One period of a tone whose k-th harmonic has amplitude rolloff**k, tilted at random."""
    x = np.arange(TABLE) * (2 * np.pi / TABLE)
    amps = rolloff ** np.arange(n) * rng.uniform(0.5, 1.5, n)
    if odd:  # hollow, clarinet-like: the even harmonics quiet
        amps[1::2] *= 0.15
    wave = np.sin(np.outer(np.arange(1, n + 1), x)).T @ amps
    return wave / np.max(np.abs(wave))


def _degree(scale: tuple[int, ...], degree: int) -> int:
    """Semitones above the key's root of scale `degree` (wrapping into the next octaves)."""
    octave, index = divmod(degree, len(scale))
    return 12 * octave + scale[index]


def _add(out: np.ndarray, start_s: float, sr: int, sound: np.ndarray) -> None:
    start = max(int(start_s * sr), 0)
    end = min(start + sound.size, out.size)
    if end > start:
        out[start:end] += sound[: end - start]


def _normalise(bus: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(bus))
    return bus / peak if peak > 0 else bus


# The FMA-shaped demo: FMA's genre names, each played by one of the styles above.
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
    distinct: int | None = None,
) -> FmaCorpus:
    """An FMA-shaped corpus under `root`: MP3 clips as audio/<id[:3]>/<id:06d>.mp3 and
    fma_metadata/tracks.csv with FMA's three-row header; existing clips are kept.

    Track k of an artist is in subset small, medium, large (k mod 3), so the subsets nest as
    FMA's do; each artist's tracks share a split side. Three more tracks carry FMA's faults:
    one without genre_top, one whose file is missing, one whose file holds no audio. With
    `distinct`, only that many clips per genre are synthesised and encoded (MP3 encoding is
    most of a short clip's cost); later tracks of the genre reuse their bytes in turn, so a
    scale probe of 10^5 tracks builds in minutes (its tracks then share audio in groups).
    """
    from genre_hpc.flow.metadata import FMA_COLUMNS, FMA_SUBSETS, fma_path

    if not 1 <= genres <= len(FMA_GENRES):
        raise ValueError(f"genres must be 1..{len(FMA_GENRES)}, not {genres}")
    root = Path(root)
    audio, tracks_csv = root / "audio", root / "fma_metadata" / "tracks.csv"
    rows = []  # (genre_top, artist id, split, subset, recipe)
    # ids interleave genres, as FMA's do (so a batch of consecutive ids spans several genres)
    for a in range(artists_per_genre):
        for g, genre in enumerate(list(FMA_GENRES)[:genres]):
            artist = 1 + g * artists_per_genre + a
            for k in range(tracks_per_artist):
                side = FMA_SIDES[a % len(FMA_SIDES)]
                rows.append((genre, artist, side, FMA_SUBSETS[k % 3], FMA_GENRES[genre]))
    faults = [(None, 9000, "training", "small", "rock"), ("Rock", 9001, "training", "medium", None),
              ("Rock", 9002, "training", "small", "")]  # fmt: skip
    rows += faults
    # FMA's ids have 6 digits (<id[:3]>/<id:06d>.mp3): spread them, but no wider than that
    step = max(1, min(137, 999_000 // len(rows)))
    ids = [2 + step * n for n in range(len(rows))]
    genre_top, artists, sides, subsets, recipes = zip(*rows, strict=True)
    table = pd.DataFrame(index=pd.Index(ids, name="track_id"), columns=pd.MultiIndex.from_tuples(FMA_COLUMNS))
    table[("track", "genre_top")] = list(genre_top)
    table[("artist", "id")] = list(artists)
    table[("set", "split")] = list(sides)
    table[("set", "subset")] = list(subsets)
    table[("album", "id")] = [artist * 10 for artist in artists]
    table[("artist", "name")] = [f"Artist {artist}" for artist in artists]
    table[("track", "duration")] = int(seconds)
    made: dict[str, list[bytes]] = {}  # recipe -> encoded clips, when `distinct` caps them
    seen: dict[str, int] = {}  # recipe -> its tracks so far, so reuse cycles through the whole pool
    for track_id, recipe in zip(ids, recipes, strict=True):
        seen[recipe] = seen.get(recipe, -1) + 1
        path = audio / fma_path(track_id)
        if recipe is None or path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pool = made.setdefault(recipe, [])
            if not recipe:  # an ID3 tag and nothing after it
                tmp.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00")
            elif distinct and len(pool) >= distinct:
                tmp.write_bytes(pool[seen[recipe] % len(pool)])
            else:
                rng = np.random.default_rng([seed, track_id])
                clip = synthesize(recipe, rng, seconds=seconds, sample_rate=sample_rate)
                sf.write(tmp, clip, sample_rate, format="MP3")
                if distinct:
                    pool.append(tmp.read_bytes())
    tracks_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(tracks_csv) as tmp:
        table.to_csv(tmp)
    return FmaCorpus(audio, tracks_csv, *ids[-len(faults) :])
