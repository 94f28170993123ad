"""Decodes one audio file into mono blocks of whole segments at the analysis sample rate.

Files are read block by block (soundfile) and resampled as a stream (soxr), so memory stays
the same for a 30-s clip and a 3-hour recording. What libsndfile cannot read goes through
audioread (ffmpeg and friends), which loads the whole file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from genre_hpc.core.errors import AudioError

SUPPORTED_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

# Below -80 dBFS everywhere counts as silence: no feature of it says anything about genre.
SILENCE_PEAK = 1e-4

# Frames read from the file at a time; bounded memory whatever the file's length.
_READ_FRAMES = 1 << 16


@dataclass(frozen=True)
class Segments:
    """A block of consecutive segments of one track."""

    first: int  # index of the first segment in the track
    samples: np.ndarray  # (n_segments, segment_length) float32


def iter_segments(
    path: str | Path,
    *,
    sample_rate: int,
    segment_samples: int,
    min_samples: int,
    block_segments: int = 10,
    digest: Any = None,
) -> Iterator[Segments]:
    """Yield the track's whole segments, `block_segments` at a time.

    `digest` (a hashlib object), if given, is fed every decoded sample: the content hash that
    finds copies of one recording comes from this one decode, not from a second pass. It hashes
    the mono audio at `sample_rate`, so one recording in two containers or names hashes the same.

    A trailing part shorter than a segment is dropped, unless the track is shorter than one
    segment: then the whole track (at least `min_samples` long) is the one segment.
    Raises AudioError for a file that is empty, undecodable, silent or too short; a caller
    that has consumed blocks before the error must discard them (silence is only known at
    the end).
    """
    block_samples = segment_samples * block_segments
    parts: list[np.ndarray] = []  # decoded, not yet yielded; joined once a block is complete
    buffered = 0
    first = 0
    total = 0
    peak = 0.0
    for chunk in _decode(Path(path), sample_rate):
        total += chunk.size
        if digest is not None:
            digest.update(np.ascontiguousarray(chunk, dtype=np.float32))  # no copy: it is already
        if chunk.size:
            peak = max(peak, float(chunk.max()), -float(chunk.min()))
        parts.append(chunk)
        buffered += chunk.size
        if buffered < block_samples:
            continue
        pending = np.concatenate(parts)
        while pending.size >= block_samples:
            yield Segments(first, pending[:block_samples].reshape(block_segments, segment_samples))
            first += block_segments
            pending = pending[block_samples:]
        parts, buffered = [pending], pending.size
    pending = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
    if total == 0:
        raise AudioError("no audio: the file decodes to 0 samples")
    if peak < SILENCE_PEAK:
        raise AudioError(f"silent: peak amplitude {peak:.1e} is below -80 dBFS")
    whole = pending.size // segment_samples
    if whole:
        yield Segments(first, pending[: whole * segment_samples].reshape(whole, segment_samples))
    elif first == 0:
        if pending.size < min_samples:
            raise AudioError(
                f"too short: {pending.size / sample_rate:.2f} s of audio, features need at least "
                f"{min_samples / sample_rate:.2f} s (features.min_seconds)"
            )
        yield Segments(0, pending[None, :])


def _decode(path: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks at `sample_rate`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"cannot open: {exc.strerror}") from exc
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        handle = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        yield from _decode_fallback(path, sample_rate, reason=str(exc))
        return
    with handle:
        if handle.frames == 0:
            raise AudioError("no audio: the file has a header but 0 samples")
        _check_not_truncated(handle)
        decoded = 0
        resampler = None
        if handle.samplerate != sample_rate:
            resampler = soxr.ResampleStream(handle.samplerate, sample_rate, 1, dtype="float32")
        try:
            for block in _read_blocks(handle):
                decoded += len(block)
                mono = _to_mono(block)
                yield resampler.resample_chunk(mono) if resampler else mono
        except sf.LibsndfileError as exc:
            raise AudioError(f"truncated or corrupt audio data: {exc}") from exc
        if decoded < 0.99 * handle.frames:
            raise AudioError(
                f"truncated: the header declares {handle.frames / handle.samplerate:.2f} s, "
                f"only {decoded / handle.samplerate:.2f} s decode"
            )
        if resampler:
            yield resampler.resample_chunk(np.empty(0, dtype=np.float32), last=True)


def _read_blocks(handle: sf.SoundFile) -> Iterator[np.ndarray]:
    """The file's frames from its start, (frames, channels) float32 views of one buffer.

    Read straight from libsndfile, not through SoundFile.read/.blocks: those seek to where they
    think the stream is after every call (SoundFile._cdata_io). On MP3 that seek resets libmpg123
    mid-stream, which loses its bit reservoir, prints "part2_3_length too large" on stderr for
    the next frame and decodes that frame wrong (differences up to 4e-2 against sf.read of the
    same file). One seek to frame 0 first, as sf.read and librosa.load do, gives their samples
    bit for bit (libsndfile's MP3 decoder starts differently otherwise, by one float32 ulp).
    """
    if handle.seekable():
        handle.seek(0)
    read = _direct_read(handle)
    # one buffer, warm in cache, for every block: each block is a view, valid until the next one
    block = np.empty((_READ_FRAMES, handle.channels), dtype=np.float32)
    while (n := read(block)) > 0:
        yield block[:n]


def _direct_read(handle: sf.SoundFile) -> Callable[[np.ndarray], int]:
    """`read(block) -> frames`: libsndfile's sf_readf_float into `block`, libsndfile's errors raised.

    soundfile has kept its cffi handles (`_snd`, `_ffi`, `SoundFile._file`) since 0.7; should a
    release drop them, SoundFile.read is used (same samples, except MP3's reset frames above).
    """
    lib, ffi, native = getattr(sf, "_snd", None), getattr(sf, "_ffi", None), getattr(handle, "_file", None)
    if lib is None or ffi is None or native is None:
        return lambda block: len(handle.read(out=block))

    def read(block: np.ndarray) -> int:
        n = lib.sf_readf_float(native, ffi.cast("float *", block.ctypes.data), len(block))
        code = lib.sf_error(native)
        if code:
            raise sf.LibsndfileError(code)
        return int(n)

    return read


def _to_mono(block: np.ndarray) -> np.ndarray:
    """A new mono float32 array of a (frames, channels) block: librosa's channel mean, cheaper.

    numpy's mean over the short channel axis of a C-ordered block runs a reduction per frame
    (~30 ms per 30-s stereo clip); adding whole columns into one array is one pass (~2 ms), and
    gives the same float32 values as librosa's `to_mono` (columns summed in order, then divided).
    """
    channels = block.shape[1]
    if channels == 1:
        return block[:, 0].copy()
    mono = np.add(block[:, 0], block[:, 1])
    for c in range(2, channels):
        mono += block[:, c]
    mono /= np.float32(channels)
    return mono


def _check_not_truncated(handle: sf.SoundFile) -> None:
    """libsndfile trims a WAV/AIFF/AU whose data chunk runs past the end of the file and notes
    it in its log as `data : <declared> (should be <present>)`; such a file was cut short."""
    for line in handle.extra_info.splitlines():
        name, _, rest = line.partition(":")
        if name.strip().lower() in ("data", "ssnd") and "(should be" in rest:
            declared = rest.split("(should be")[0].strip()
            present = rest.split("(should be")[1].strip(" )")
            raise AudioError(
                f"truncated: the header declares {declared} bytes of audio, the file holds {present}"
            )


def _decode_fallback(path: Path, sample_rate: int, *, reason: str) -> Iterator[np.ndarray]:
    """Decode with audioread (ffmpeg, GStreamer, ...) what libsndfile refuses."""
    yield _load_fallback(path, sample_rate, reason=reason)[0]


def _load_fallback(path: Path, sample_rate: int | None, *, reason: str) -> tuple[np.ndarray, int]:
    """The whole file through audioread, mono, at `sample_rate` (None: the file's own)."""
    import librosa  # deferred: only this path needs it, and it costs time to import

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns that it falls back; we know
            samples, rate = librosa.load(path, sr=sample_rate, mono=True, dtype=np.float32)
    except Exception as exc:  # audioread raises a zoo of backend-specific types
        # nothing but libsndfile can read it: librosa < 1.0 tried every audioread backend and
        # raises NoBackendError, librosa >= 1.0 has no audioread fallback and re-raises libsndfile's
        if type(exc).__name__ == "NoBackendError" or isinstance(exc, sf.SoundFileError):
            raise AudioError(f"cannot decode: not a recognised audio format ({reason})") from exc
        raise AudioError(
            f"cannot decode: libsndfile said '{reason}'; audioread said "
            f"'{type(exc).__name__}: {exc}'".replace("\n", " ")
        ) from exc
    return samples, int(rate)


@dataclass(frozen=True)
class Probe:
    """What one file's header says: format, rate, channels and duration."""

    format: str
    sample_rate: int
    channels: int
    duration_s: float


def probe(path: str | Path) -> Probe:
    """Read the file's header, not its audio: extract decodes each file once, and hashes it then.

    Every supported extension is a libsndfile format, so a file libsndfile cannot open is
    reported here as not decodable; extract still tries it (its audioread fallback) and records
    the outcome in errors.parquet.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(f"cannot open: {exc.strerror}") from exc
    if size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        with sf.SoundFile(path) as handle:
            _check_not_truncated(handle)
            info = (handle.format, handle.samplerate, handle.channels, handle.frames)
    except sf.LibsndfileError as exc:
        raise AudioError(f"cannot decode: not a recognised audio format ({exc})") from exc
    if info[3] == 0:
        raise AudioError("no audio: the file has a header but 0 samples")
    return Probe(info[0], info[1], info[2], info[3] / info[1])
