"""flow/banks and the per-call steps of flow/features against librosa's own functions, bit for bit
(the delta operator to the last bit or two): the features stopped importing librosa, and must not
have changed a value by it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf

from genre_hpc.flow import banks, features
from genre_hpc.flow.params import FeatureParams

P = FeatureParams()


@pytest.mark.parametrize("n", [2048, 1024, 513, 344])
def test_hann_is_librosa_s_window(n: int) -> None:
    assert np.array_equal(banks.hann(n), librosa.filters.get_window("hann", n, fftbins=True))


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(22050, 2048, 128), (44100, 1024, 40), (16000, 512, 64)])
def test_mel_bank_is_librosa_s(sr: int, n_fft: int, n_mels: int) -> None:
    assert np.array_equal(
        banks.fft_frequencies(sr=sr, n_fft=n_fft), librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    )
    ours = banks.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


def test_a_mel_bank_with_empty_bands_warns_as_librosa_does() -> None:
    with pytest.warns(UserWarning, match="features.n_mels"):
        ours = banks.mel(sr=22050, n_fft=512, n_mels=256)
    with pytest.warns(UserWarning, match="Empty filters"):
        theirs = librosa.filters.mel(sr=22050, n_fft=512, n_mels=256)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("tuning", [-0.5, -0.125, 0.0, 0.005, 0.37])
@pytest.mark.parametrize(("sr", "n_fft"), [(22050, 2048), (44100, 4096)])
def test_chroma_bank_is_librosa_s(tuning: float, sr: int, n_fft: int) -> None:
    ours = banks.chroma(sr=sr, n_fft=n_fft, tuning=tuning)
    assert np.array_equal(ours, librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning))
    pitches = np.array([27.5, 261.63, 440.0, 4186.0])
    assert np.array_equal(
        banks.hz_to_octs(pitches, tuning=tuning), librosa.hz_to_octs(pitches, tuning=tuning)
    )


@pytest.mark.parametrize("n_frames", [9, 10, 44, 130])
@pytest.mark.parametrize("order", [1, 2])
def test_delta_operator_is_librosa_s_delta_of_each_frame(n_frames: int, order: int) -> None:
    ours = banks.delta_operator(n_frames, order)
    theirs = librosa.feature.delta(np.eye(n_frames), order=order)
    # bit for bit with the lock's scipy (1.17); scipy 1.18 fits the edges with its own polyfit,
    # which differs in the last bit of a few edge weights (~0.06 each, so 1e-15 is a few ulp)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)


def test_delta_operator_refuses_fewer_frames_than_its_width() -> None:
    with pytest.raises(ValueError, match="at least 9 frames"):
        banks.delta_operator(8, 1)


def _segments(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(P.segment_samples) / P.sample_rate
    tone = 0.4 * np.sin(2 * np.pi * 330.0 * t) * (1 + np.sin(2 * np.pi * 2.0 * t))
    y = tone[None, :] + 0.05 * rng.standard_normal((n, P.segment_samples))
    y[-1, : P.segment_samples // 2] = 0.0  # half a segment of digital silence
    return y.astype(np.float32)


def test_per_call_steps_equal_librosa_s_on_each_segment() -> None:
    y = _segments()
    power = features.spectrogram(y, params=P) ** 2
    mel = features._melspectrogram(power, P.sample_rate, P.n_fft, P.n_mels)
    mel_db = features._power_to_db(mel, amin=1e-10)
    mfcc = scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, : P.n_mfcc, :]
    onset = features._onset_strength(mel_db, n_fft=P.n_fft, hop=P.hop_length)
    for i in range(len(y)):
        assert np.array_equal(mel_db[i], librosa.power_to_db(mel[i], amin=1e-10, top_db=80.0))
        assert np.array_equal(mfcc[i], librosa.feature.mfcc(S=mel_db[i], n_mfcc=P.n_mfcc))
        theirs = librosa.onset.onset_strength(
            S=mel_db[i], sr=P.sample_rate, hop_length=P.hop_length, n_fft=P.n_fft
        )
        assert np.array_equal(onset[i], theirs)


def test_chroma_normalisation_and_tempo_pick_equal_librosa_s() -> None:
    y = _segments()
    power = features.spectrogram(y, params=P) ** 2
    chroma = features._chroma(power, P.sample_rate, P.n_fft, 0.0)
    raw = np.matmul(features._chroma_filter(P.sample_rate, P.n_fft, 0.0), power)
    assert (raw[-1].max(axis=0) == 0).any()  # silent frames: left as they are, not divided by 0
    for i in range(len(y)):
        assert np.array_equal(chroma[i], librosa.util.normalize(raw[i], norm=np.inf, axis=-2))
    win_length = int(librosa.time_to_frames(8.0, sr=P.sample_rate, hop_length=P.hop_length))
    tempogram = np.random.default_rng(3).random((4, win_length))
    bpms, logprior = banks.tempo_log_prior(win_length=win_length, sr=P.sample_rate, hop_length=P.hop_length)
    picked = bpms[np.argmax(np.log1p(1e6 * tempogram) + logprior, axis=-1)]
    theirs = librosa.feature.tempo(tg=tempogram[..., None], sr=P.sample_rate, hop_length=P.hop_length)[:, 0]
    assert np.array_equal(picked, theirs)


def test_extracting_a_track_imports_neither_librosa_nor_scipy_signal(tmp_path: Path) -> None:
    """A new worker's first track must not wait for them (about 1.3 s); the audio fallback for files
    libsndfile refuses is the one path that may still import librosa."""
    wav = tmp_path / "tone.wav"
    sf.write(wav, _segments(4).reshape(-1), P.sample_rate)
    code = f"""
import sys
from genre_hpc.flow import features
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import track_features
features.warm_up()
rows = track_features({str(wav)!r}, params=FeatureParams(), block_segments=10)
print(len(rows), [name for name in ("librosa", "scipy.signal") if name in sys.modules])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["4", "[]"]
