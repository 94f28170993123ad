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
