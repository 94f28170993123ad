import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_hpc.flow import demo


def test_demo_corpus_has_gtzan_layout_and_format(tmp_path):
    paths = demo.generate(tmp_path, n_per_genre=2, seconds=4.0, seed=3)
    assert len(paths) == 20
    assert sorted(p.name for p in (tmp_path / "reggae").iterdir()) == ["reggae.00000.wav", "reggae.00001.wav"]
    info = sf.info(paths[0])
    assert (info.samplerate, info.channels, info.frames) == (22050, 1, 4 * 22050)
    audio, _ = sf.read(paths[0])
    assert 0.5 < np.max(np.abs(audio)) <= 0.81  # normalised, not clipped


def test_demo_corpus_is_deterministic_per_seed(tmp_path):
    def digest(root, seed):
        demo.generate(root, n_per_genre=1, seconds=2.0, seed=seed)
        return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))}

    first = digest(tmp_path / "a", 0)
    assert first == digest(tmp_path / "b", 0)
    assert first != digest(tmp_path / "c", 1)


def test_a_corpus_of_another_synthesis_version_is_written_again(tmp_path):
    [path] = demo.generate(tmp_path, n_per_genre=1, seconds=2.0, genres=("jazz",))
    original = path.read_bytes()
    path.write_bytes(b"a clip of an older demo")
    demo.generate(tmp_path, n_per_genre=1, seconds=2.0, genres=("jazz",))
    assert path.read_bytes() == b"a clip of an older demo"  # same version: kept
    (tmp_path / demo.VERSION_FILE).write_text("1\n")
    demo.generate(tmp_path, n_per_genre=1, seconds=2.0, genres=("jazz",))
    assert path.read_bytes() == original


def test_genres_differ_in_what_features_measure():
    def centroid(y):
        spectrum = np.abs(np.fft.rfft(y))
        return (spectrum * np.fft.rfftfreq(y.size, 1 / 22050)).sum() / spectrum.sum()

    def mean_centroid(genre):
        rngs = [np.random.default_rng(i) for i in range(4)]
        return np.mean([centroid(demo.synthesize(genre, r, seconds=3.0, sample_rate=22050)) for r in rngs])

    # distorted guitars and cymbals make metal far brighter than strings and piano
    assert mean_centroid("metal") > 1.8 * mean_centroid("classical")


def _log_spectrum(y: np.ndarray) -> np.ndarray:
    frames = y[: len(y) // 2048 * 2048].reshape(-1, 2048) * np.hanning(2048)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    return np.log(power[1:].reshape(64, 16).sum(axis=1) + 1e-9)  # 64 bands of 172 Hz


@pytest.mark.parametrize("genre", demo.GENRES)
def test_the_halves_of_a_song_are_closer_than_two_songs_of_its_genre(genre):
    """A song's identity (key, timbre, mix) is shared by all its segments: what makes the
    random-segment split leak, as it does on real music."""
    halves = []
    for i in range(6):
        y = demo.synthesize(genre, np.random.default_rng([7, i]), seconds=12.0, sample_rate=22050)
        halves.append((_log_spectrum(y[: y.size // 2]), _log_spectrum(y[y.size // 2 :])))
    within = np.mean([np.linalg.norm(a - b) for a, b in halves])
    between = np.mean(
        [np.linalg.norm(halves[i][0] - halves[j][1]) for i in range(6) for j in range(6) if i != j]
    )
    assert within < 0.85 * between, (within, between)


@pytest.mark.parametrize("genre", ["disco", "rock", "hiphop", "reggae"])
def test_the_drums_beat_at_the_songs_tempo(genre):
    """Cymbals, snares and strummed chords make the high-frequency energy periodic at the song's
    beat (or half or a multiple of it): the onset and zero-crossing traces of the report show beats."""
    for i in range(3):
        beat_s = demo._Song(genre, np.random.default_rng(i), 22050).beat
        y = demo.synthesize(genre, np.random.default_rng(i), seconds=10.0, sample_rate=22050)
        high = np.diff(y)  # drums live high, sustained tones low
        hop = 128
        frames = np.abs(high[: high.size // hop * hop].reshape(-1, hop)).mean(axis=1)
        flux = np.maximum(np.diff(frames), 0)
        flux -= flux.mean()
        ac = np.correlate(flux, flux, "full")[flux.size - 1 :]
        # the beat and the bar stand out among all lags of 0.2 to 3 s
        lag = [round(k * beat_s * 22050 / hop) for k in (0.5, 1, 2, 4)]
        at_beat = max(ac[max(0, lg - 1) : lg + 2].max() for lg in lag)
        others = ac[round(0.2 * 22050 / hop) : round(3 * 22050 / hop)]
        assert at_beat > 0.6 * others.max() and at_beat > 4 * np.median(np.abs(others)), (genre, i)


def test_the_fma_generator_can_cap_the_distinct_clips_of_a_genre(tmp_path):
    from genre_hpc.flow.metadata import fma_path

    made = demo.generate_fma(tmp_path, genres=2, artists_per_genre=3, tracks_per_artist=2, seconds=1.0,
                             distinct=2)  # fmt: skip
    table = pd.read_csv(made.tracks, index_col=0, header=[0, 1])
    clips: dict[str, set[bytes]] = {}
    for track_id, genre in table[("track", "genre_top")].dropna().items():
        path = made.audio / fma_path(track_id)
        if track_id not in (made.missing_file, made.no_audio):
            clips.setdefault(genre, set()).add(path.read_bytes())
    assert {genre: len(c) for genre, c in clips.items()} == {"Rock": 2, "Old-Time / Historic": 2}
    assert (made.audio / fma_path(made.no_audio)).read_bytes().startswith(b"ID3")
    assert not (made.audio / fma_path(made.missing_file)).exists()


def test_clips_can_be_written_as_fma_holds_its_audio_44k_stereo_mp3(tmp_path):
    [path] = demo.generate(tmp_path, n_per_genre=1, seconds=2.0, genres=("jazz",), sample_rate=44100,
                           fmt="mp3", channels=2)  # fmt: skip
    assert path.name == "jazz.00000.mp3"
    info = sf.info(path)
    assert (info.format, info.samplerate, info.channels) == ("MP3", 44100, 2)
    left, right = sf.read(path, dtype="float32")[0].T
    assert not np.allclose(left, right, atol=1e-3)  # two channels to mix, not one copied
    with pytest.raises(ValueError, match="fmt"):
        demo.generate(tmp_path, n_per_genre=1, seconds=2.0, fmt="aiff")
