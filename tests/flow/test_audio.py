import numpy as np
import pytest
import soundfile as sf

from genre_hpc.core.errors import AudioError
from genre_hpc.flow import audio

from ..helpers import SR, write_bad_files

SEG = 3 * SR


def _segments(path, **kwargs):
    options = {"sample_rate": SR, "segment_samples": SEG, "min_samples": SR // 2, **kwargs}
    return list(audio.iter_segments(path, **options))


def _tone(seconds, sr=SR, freq=440.0):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.mark.parametrize(
    "name, fmt", [("a.wav", "WAV"), ("a.au", "AU"), ("a.flac", "FLAC"), ("a.ogg", "OGG"), ("a.mp3", "MP3")]
)
def test_every_supported_format_decodes_to_whole_segments(tmp_path, name, fmt):
    sf.write(tmp_path / name, _tone(7.0), SR, format=fmt)
    blocks = _segments(tmp_path / name)
    assert [b.first for b in blocks] == [0]
    assert blocks[0].samples.shape == (2, SEG)  # 7 s: two 3-s segments, the 1-s tail dropped
    assert blocks[0].samples.dtype == np.float32


def test_stereo_44k_is_mixed_to_mono_and_resampled(tmp_path):
    left, right = _tone(6.0, sr=44100, freq=440), _tone(6.0, sr=44100, freq=440)
    sf.write(tmp_path / "s.flac", np.stack([left, right]).T, 44100)
    (block,) = _segments(tmp_path / "s.flac")
    assert block.samples.shape == (2, SEG)
    spectrum = np.abs(np.fft.rfft(block.samples[0]))
    peak_hz = np.argmax(spectrum) * SR / SEG
    assert abs(peak_hz - 440) < 1.0  # still 440 Hz after resampling


def test_long_file_comes_in_bounded_blocks_equal_to_the_whole(tmp_path):
    y = np.random.default_rng(0).uniform(-0.5, 0.5, SR * 40).astype(np.float32)
    sf.write(tmp_path / "long.wav", y, SR, subtype="FLOAT")
    blocks = _segments(tmp_path / "long.wav", block_segments=4)
    assert [b.first for b in blocks] == [0, 4, 8, 12]
    assert [len(b.samples) for b in blocks] == [4, 4, 4, 1]  # 13 whole segments in 40 s
    joined = np.concatenate([b.samples.ravel() for b in blocks])
    np.testing.assert_array_equal(joined, y[: 13 * SEG])


def test_track_shorter_than_a_segment_is_one_shorter_segment(tmp_path):
    sf.write(tmp_path / "short.wav", _tone(1.5), SR)
    (block,) = _segments(tmp_path / "short.wav")
    assert block.samples.shape == (1, int(1.5 * SR))


def test_every_bad_input_raises_a_readable_reason(tmp_path):
    expected = write_bad_files(tmp_path)
    for name, reason in expected.items():
        with pytest.raises(AudioError, match=reason):
            _segments(tmp_path / "bad" / name)


def _music(seconds, sr, channels, seed=0):
    """A tone with noise (MP3 encoders use their bit reservoir on it), channels slightly different."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))
    if channels == 1:
        return left.astype(np.float32)
    right = 0.3 * np.sin(2 * np.pi * 660 * t) + 0.1 * rng.standard_normal(len(t))
    return np.stack([left, right], axis=1).astype(np.float32)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", ["MP3", "FLAC", "OGG"])
def test_compressed_input_decodes_to_the_samples_librosa_load_gives(tmp_path, fmt, channels, rate):
    import librosa

    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, _music(7.0, rate, channels), rate, format=fmt)
    blocks = _segments(path, block_segments=1)  # streamed: one segment per block
    ours = np.concatenate([b.samples.ravel() for b in blocks])
    theirs, _ = librosa.load(path, sr=SR, mono=True)
    assert len(ours) == 2 * SEG
    np.testing.assert_allclose(ours, theirs[: len(ours)], rtol=0, atol=1e-6)


def test_mp3_decodes_without_a_line_on_stderr(tmp_path, capfd):
    # read block by block through soundfile's own reads, this file made libmpg123 print
    # "part2_3_length (...) too large for available bit count" to the process's stderr
    sf.write(tmp_path / "m.mp3", _music(20.0, SR, 1), SR, format="MP3")
    capfd.readouterr()
    blocks = _segments(tmp_path / "m.mp3")
    assert sum(len(b.samples) for b in blocks) == 6
    assert capfd.readouterr().err == ""


def test_corrupt_or_truncated_mp3_is_still_an_error_row(tmp_path):
    from genre_hpc.flow.params import FeatureParams
    from genre_hpc.flow.track import batch_features

    sf.write(tmp_path / "m.mp3", _music(20.0, SR, 1), SR, format="MP3")
    data = bytearray((tmp_path / "m.mp3").read_bytes())
    (tmp_path / "truncated.mp3").write_bytes(bytes(data[: len(data) // 3]))
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(b ^ 0xFF for b in data[middle : middle + 2000])
    (tmp_path / "corrupt.mp3").write_bytes(bytes(data))
    batch = [(name, str(tmp_path / name), "rock", 0) for name in ("m.mp3", "truncated.mp3", "corrupt.mp3")]
    result = batch_features(batch, params=FeatureParams(), block_segments=4, stage="extract")
    assert set(result.frame.track_id) == {"m.mp3"}
    reasons = {row["track_id"]: row["error"] for row in result.errors}
    assert reasons.keys() == {"truncated.mp3", "corrupt.mp3"}
    assert reasons["truncated.mp3"].startswith("truncated: the header declares 20.00 s")
    assert "corrupt" in reasons["corrupt.mp3"]
