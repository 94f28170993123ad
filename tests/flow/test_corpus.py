from pathlib import Path

import pytest

from genre_hpc.core.errors import CorpusError
from genre_hpc.flow.corpus import scan

EXTS = (".wav", ".au", ".flac", ".ogg", ".mp3")


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_scan_reads_genre_folders_into_stable_relative_ids(tmp_path):
    _touch(tmp_path / "jazz" / "jazz.00001.wav")
    _touch(tmp_path / "blues" / "blues.00000.au")
    _touch(tmp_path / "blues" / "live" / "set.00003.MP3")  # nested and upper-case suffix
    _touch(tmp_path / "blues" / "notes.txt")
    _touch(tmp_path / "blues" / ".hidden.wav")
    _touch(tmp_path / "loose.wav")  # no genre folder: no label to learn from
    tracks = scan(tmp_path, extensions=EXTS)
    assert tracks.track_id.tolist() == [
        "blues/blues.00000.au",
        "blues/live/set.00003.MP3",
        "jazz/jazz.00001.wav",
    ]
    assert tracks.label.tolist() == ["blues", "blues", "jazz"]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in tracks.path)
    assert tracks.size_bytes.tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root, "holds no audio files"),
        (lambda root: (_touch(root / "a.wav"), root / "a.wav")[1], "is a file"),
        (lambda root: (_touch(root / "rock" / "readme.txt"), root)[1], "holds no audio files"),
    ],
    ids=["missing", "empty", "file", "no-audio"],
)
def test_unusable_root_is_one_clear_error_naming_the_key(tmp_path, setup, message):
    with pytest.raises(CorpusError, match=message) as info:
        scan(setup(tmp_path), extensions=EXTS)
    assert "data.root" in str(info.value)


def test_within_read_once_a_corpus_is_read_once_until_its_table_changes(tmp_path, monkeypatch):
    import pandas as pd
    from omegaconf import OmegaConf

    from genre_hpc.flow import corpus, metadata

    for n in (2, 139):
        _touch(tmp_path / "audio" / metadata.fma_path(n))
    table = tmp_path / "tracks.csv"
    frame = pd.DataFrame(index=pd.Index([2, 139], name="track_id"),
                         columns=pd.MultiIndex.from_tuples(metadata.FMA_COLUMNS))  # fmt: skip
    frame[("track", "genre_top")] = ["Rock", "Jazz"]
    frame[("set", "subset")] = "small"
    frame.to_csv(table)
    cfg = OmegaConf.create({"data": {"kind": "fma", "root": str(tmp_path / "audio"), "tracks": str(table),
                                     "subset": "small"}})  # fmt: skip
    reads = []
    real = metadata.read_fma_table
    monkeypatch.setattr(metadata, "read_fma_table", lambda path: reads.append(path) or real(path))

    corpus.load(cfg), corpus.load(cfg)
    assert len(reads) == 2  # outside read_once: every load reads
    with corpus.read_once():
        first = corpus.load(cfg)
        first.tracks.drop(index=first.tracks.index, inplace=True)  # a caller's change stays its own
        again = corpus.load(cfg)
        assert len(reads) == 3 and list(again.tracks.label) == ["Rock", "Jazz"]
        frame[("track", "genre_top")] = ["Rock", None]  # the table is rewritten: read again
        frame.to_csv(table)
        changed = corpus.load(cfg)
        assert len(reads) == 4 and list(changed.tracks.label) == ["Rock"]
    corpus.load(cfg)
    assert len(reads) == 5
