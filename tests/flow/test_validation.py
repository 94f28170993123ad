"""One decode per file per run: validate reads headers, extract decodes once and hashes that decode."""

import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_hpc.flow import audio, demo, validation
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import batch_features

from ..helpers import write_bad_files


@pytest.fixture
def decodes(monkeypatch):
    """Count the decodes of each file: extract's reading goes through _decode (libsndfile, and the
    audioread fallback from there); the old probe decoded through SoundFile.blocks or the fallback."""
    counts: Counter = Counter()
    decode, fallback = audio._decode, audio._load_fallback

    def counted_decode(path, sample_rate):
        counts[str(path)] += 1
        return decode(path, sample_rate)

    def counted_fallback(path, sample_rate, *, reason):
        counts["fallback"] += 1
        return fallback(path, sample_rate, reason=reason)

    def no_blocks(*args, **kwargs):
        raise AssertionError("a header probe must not read the audio")

    monkeypatch.setattr(audio, "_decode", counted_decode)
    monkeypatch.setattr(audio, "_load_fallback", counted_fallback)
    return counts, no_blocks


def _rows(paths, root):
    return [
        {"track_id": str(p.relative_to(root)), "path": str(p), "label": p.parent.name, "size_bytes": 0}
        for p in paths
    ]


def test_validate_and_extract_decode_each_file_once(tmp_path, decodes, monkeypatch):
    counts, no_blocks = decodes
    demo.generate(tmp_path, n_per_genre=2, seconds=4.0, genres=("rock", "jazz"))
    fma = demo.generate_fma(tmp_path / "fma", genres=2, artists_per_genre=1, tracks_per_artist=2, seconds=4.0)
    write_bad_files(tmp_path)
    paths = (
        sorted(tmp_path.rglob("*.wav")) + sorted(tmp_path.rglob("*.flac")) + sorted(fma.audio.rglob("*.mp3"))
    )
    rows = _rows(paths, tmp_path)

    with monkeypatch.context() as m:
        m.setattr(sf.SoundFile, "blocks", no_blocks)
        m.setattr(sf.SoundFile, "read", no_blocks)
        probed = validation.probe_batch(rows)
    assert sum(counts.values()) == 0
    assert all(r["content_hash"] is None for r in probed)
    good = [r for r in probed if r["error"] is None and not r["track_id"].startswith("bad/")]
    assert {r["format"] for r in good} == {"WAV", "MP3"} and all(r["duration_s"] > 3.9 for r in good)
    assert (
        len(good) == 4 + 5
    )  # the clips (one MP3 lacks a genre_top, not audio); the no-audio MP3 is an error

    batch = [(r["track_id"], r["path"], r["label"], 0) for r in rows]
    result = batch_features(batch, params=FeatureParams(), block_segments=10, stage="extract")
    counts.pop("fallback", None)  # text.wav: libsndfile refuses it, inside its one _decode
    assert set(counts) == {str(p) for p in paths}
    assert set(counts.values()) == {1}, counts
    assert set(result.hashes) == {t for t, *_ in batch} - {e["track_id"] for e in result.errors}


def test_the_hash_of_the_one_decode_finds_copies_across_names_and_containers(tmp_path):
    demo.generate(tmp_path, n_per_genre=2, seconds=4.0, genres=("rock",))
    source = tmp_path / "rock" / "rock.00000.wav"
    shutil.copy(source, tmp_path / "rock" / "copy.wav")
    samples, rate = sf.read(source, dtype="int16")
    sf.write(tmp_path / "rock" / "same.flac", samples, rate)  # the same samples in another container
    paths = sorted((tmp_path / "rock").iterdir())
    batch = [(r["track_id"], r["path"], r["label"], 0) for r in _rows(paths, tmp_path)]
    hashes = batch_features(batch, params=FeatureParams(), block_segments=10, stage="extract").hashes
    assert hashes["rock/copy.wav"] == hashes["rock/rock.00000.wav"] == hashes["rock/same.flac"]
    assert hashes["rock/rock.00001.wav"] != hashes["rock/rock.00000.wav"]

    table = validation.with_duplicates(
        pd.DataFrame({"track_id": list(hashes), "content_hash": list(hashes.values())}).reindex(
            columns=[c for c in validation.COLUMNS if c != "duplicate_of"]
        )
    )
    summary = validation.summarize(table)
    assert summary["duplicates"] == [["rock/copy.wav", "rock/rock.00000.wav", "rock/same.flac"]]
    assert np.isclose(summary["duplicate_files"], 3)


def test_a_summary_names_the_first_groups_of_identical_audio_and_counts_them_all():
    ids = [f"g/{n:03d}.wav" for n in range(50)]
    table = validation.with_duplicates(
        pd.DataFrame({"track_id": ids, "content_hash": [f"h{n // 2:02d}" for n in range(50)]}).reindex(
            columns=[c for c in validation.COLUMNS if c != "duplicate_of"]
        )
    )
    summary = validation.summarize(table)
    assert summary["duplicate_groups"] == 25 and summary["duplicate_files"] == 50
    assert summary["duplicates"] == [ids[n : n + 2] for n in range(0, 2 * validation.LISTED_GROUPS, 2)]
    assert table.duplicate_of.notna().sum() == 25  # every copy is still in the table
