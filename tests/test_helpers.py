"""The test helpers that decide when a scheduler test fails: a deadline that moves with progress."""

from pathlib import Path

from .helpers import StallDeadline, logged_tracks


def test_a_stall_deadline_moves_with_progress_and_expires_without_it() -> None:
    counts = iter([0, 1, 1, 5, 5, 5])
    deadline = StallDeadline(300, lambda: next(counts))
    assert not deadline.expired(now=0)  # first look: 0 tracks, deadline at 300
    assert not deadline.expired(now=290)  # 1 track: the deadline moves to 590
    assert not deadline.expired(now=580)  # no new track, still before 590
    assert not deadline.expired(now=589)  # 5 tracks: the deadline moves to 889
    assert not deadline.expired(now=880)
    assert deadline.expired(now=890)  # 301 s after the last progress
    assert str(deadline) == "300 s without progress (last at 5)"


def test_logged_tracks_reads_the_last_progress_line(tmp_path: Path) -> None:
    log = tmp_path / "driver.out"
    assert logged_tracks(log) == 0  # no log yet
    log.write_text(
        "[..][genre_hpc.stages.extract][INFO] - extract: 137/196 tracks, 0/2 batches, 0.21 tracks/s\n"
        "[..][genre_hpc.stages.extract][INFO] - extract: task aaa resumed on tls://x:1: 76 of its 98 tracks\n"
        "[..][genre_hpc.stages.extract][INFO] - extract: 181/196 tracks, 1/2 batches, 0.21 tracks/s\n"
    )
    assert logged_tracks(log) == 181
