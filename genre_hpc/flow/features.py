"""Pure feature functions: a stack of equal-length audio segments in, one row of features per segment out.

Everything spectral comes from ONE short-time Fourier transform of the stacked segments
(`spectrogram`: librosa's values, in C order), which a caller also hands to `estimate_tuning`.
Definitions follow librosa's defaults (n_fft 2048, hop 512, 128 mel bands, centred frames) so
that each value equals what the matching librosa feature function returns for that segment on
its own; the unit tests hold the functions to that. Where librosa's own implementation is slow
(bandwidths, rolloff, zero crossings, RMS, the tempogram, the tuning's pitch track, mel and
chroma filter banks rebuilt per call, deltas, reductions along a middle axis) the same
definition is computed in fewer passes. Two features are defined differently on purpose:
HPSS runs on the mel spectrogram (see `_hpss_rms`), and chroma uses one tuning per track, the
median of the per-segment estimates that librosa would make (see `estimate_tuning`).

Nothing here imports librosa: its windows, filter banks and operators come from flow/banks, and
its few per-call steps (MFCC, dB, onset strength, normalisation, the tempo pick) are written out
below, so that a new worker's first track does not wait about 1.3 s for librosa's modules.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import scipy.fft
import scipy.sparse

from genre_hpc.flow import banks, medians
from genre_hpc.flow.params import FeatureParams


def estimate_tuning(
    segments: np.ndarray | None = None, *, params: FeatureParams, magnitude: np.ndarray | None = None
) -> float:
    """Tuning offset (fractions of a chroma bin) for a whole track, from one block of its segments.

    librosa's chroma re-estimates the tuning on every call, so the origin study's chroma of
    one track used a different tuning in every chunk. Here each segment gets exactly that
    per-chunk estimate, and the track uses their median: one tuning per track, robust to a
    chunk whose estimate strays. Pass the block's `magnitude` (`spectrogram`) when the caller
    has it, so that the block is transformed once for the tuning and the features.
    """
    if magnitude is None:
        if segments is None:
            raise ValueError("estimate_tuning needs the segments or their magnitude spectrogram")
        magnitude = spectrogram(segments, params=params)
    return float(np.median(segment_tunings(magnitude * magnitude, params)))


def spectrogram(segments: np.ndarray, *, params: FeatureParams) -> np.ndarray:
    """|librosa.stft(y)| of each segment [shape=(n_segments, 1 + n_fft/2, frames)], float32: what
    `compute` and `estimate_tuning` accept as `magnitude=`.

    The same values as librosa's (centred frames, zero padding, the FFT in float64 rounded to
    complex64), but in C order: librosa returns Fortran order, with the segments innermost, and
    every per-segment product and per-frame reduction downstream then strides across memory
    (the mel product alone copies each segment). One segment at a time keeps the float64
    frames in cache.
    """
    y = np.ascontiguousarray(np.atleast_2d(segments), dtype=np.float32)
    n_fft, hop = params.n_fft, params.hop_length
    n_frames = 1 + y.shape[-1] // hop
    padded = np.pad(y, ((0, 0), (n_fft // 2, n_fft // 2)))
    # librosa.util.frame: (segments, n_fft, frames) views of the padded signal
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop][:, :n_frames]
    frames = frames.transpose(0, 2, 1)
    window = banks.hann(n_fft)[:, None]
    out = np.empty((len(y), 1 + n_fft // 2, n_frames), dtype=np.float32)
    for i in range(len(y)):
        spectrum = scipy.fft.rfft(window * frames[i], axis=-2)
        np.abs(spectrum.astype(np.complex64), out=out[i])
    return out


def segment_tunings(power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """`librosa.estimate_tuning(S=power[i])` for each segment i, as chroma_stft calls it.

    Same pitch track (piptrack: threshold 0.1 of the frame's peak, 150-4000 Hz, parabolic
    peak interpolation) and the same histogram (librosa.pitch_tuning), but the peak search
    only visits the bins in that band (a third of the spectrum), the interpolation only the
    peaks, and the histograms of all segments are one count.
    """
    sr, n_fft = params.sample_rate, params.n_fft
    freqs = banks.fft_frequencies(sr=sr, n_fft=n_fft)
    inside = np.flatnonzero((freqs >= _TUNING_FMIN) & (freqs < min(_TUNING_FMAX, sr / 2)))
    lo, hi = int(inside[0]), int(inside[-1]) + 1  # lo >= 1 and hi < n_bins: neighbours exist
    band = power[:, lo - 1 : hi + 1, :]
    # local maxima of the spectrum after zeroing what is below 0.1 of each frame's peak
    kept = band * (band > 0.1 * _max_over_bins(power)[:, None, :])
    seg, b, t = np.nonzero((kept[:, 1:-1] > kept[:, :-2]) & (kept[:, 1:-1] >= kept[:, 2:]))
    centre, below, above = band[seg, b + 1, t], band[seg, b, t], band[seg, b + 2, t]
    # parabolic interpolation of each peak (librosa's _pi_stencil computes it in float64)
    curve = above.astype(np.float64) + below - 2.0 * centre
    slope = (above.astype(np.float64) - below) / 2.0
    shift = np.divide(-slope, curve, out=np.zeros_like(slope), where=np.abs(slope) < np.abs(curve))
    pitch = (b + lo + shift) * (float(sr) / n_fft)
    mag = centre + (0.5 * ((above - below) / 2) * shift).astype(np.float32)
    found = pitch > 0
    seg, pitch, mag = seg[found], pitch[found], mag[found]
    # piptrack keeps the peaks at or above the median magnitude of its segment's peaks
    n = power.shape[0]
    ends = np.searchsorted(seg, np.arange(n + 1))
    threshold = np.zeros(n, dtype=mag.dtype)
    for i in np.flatnonzero(ends[1:] > ends[:-1]):  # a segment without pitched peaks: none kept
        threshold[i] = np.median(mag[ends[i] : ends[i + 1]])
    keep = mag >= threshold[seg]
    seg, pitch = seg[keep], pitch[keep]
    # librosa.pitch_tuning(resolution=0.01): the residual's histogram peak, for all segments at once
    residual = np.mod(12 * banks.hz_to_octs(pitch), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, 101)
    # np.histogram's bin of a value is the last edge at or below it (the last bin is closed)
    bins = np.minimum(np.searchsorted(edges, residual, side="right") - 1, len(edges) - 2)
    counts = np.bincount(seg * (len(edges) - 1) + bins, minlength=n * (len(edges) - 1))
    estimates = edges[counts.reshape(n, -1).argmax(axis=1)]
    # a segment without pitched peaks: librosa warns and says 0.0
    return np.where(np.bincount(seg, minlength=n) > 0, estimates, 0.0)


def _max_over_bins(x: np.ndarray) -> np.ndarray:
    """x.max(axis=-2) of a (..., bins, frames) array; numpy's reduction along a middle axis is ~10x
    slower than these halvings, each an elementwise maximum of contiguous blocks."""
    while x.shape[-2] > 1:
        half = x.shape[-2] // 2
        top = np.maximum(x[..., :half, :], x[..., half : 2 * half, :])
        if x.shape[-2] % 2:
            np.maximum(top[..., :1, :], x[..., 2 * half :, :], out=top[..., :1, :])
        x = top
    return x[..., 0, :]


_TUNING_FMIN, _TUNING_FMAX = 150.0, 4000.0  # piptrack's defaults, which chroma_stft relies on


def warm_up() -> None:
    """Run every code path once, so numba's JIT (librosa's and ours) is paid before real work.

    Call it once per new process, e.g. ``client.run(warm_up)`` on every Dask worker; a process
    with a copy of the primed cache (infra/jitcache) loads the compiled code instead of compiling.
    """
    params = FeatureParams()
    noise = np.random.default_rng(0).standard_normal((2, params.segment_samples)).astype(np.float32)
    magnitude = spectrogram(noise, params=params)
    tuning = estimate_tuning(magnitude=magnitude, params=params)
    compute(noise, params=params, tuning=tuning, magnitude=magnitude)


def compute(
    segments: np.ndarray,
    *,
    params: FeatureParams,
    tuning: float | None = None,
    magnitude: np.ndarray | None = None,
) -> np.ndarray:
    """Features of each segment.

    Parameters
    ----------
    segments : np.ndarray [shape=(n_segments, n_samples)], float
        Mono audio at ``params.sample_rate``, one segment per row, all of one length.
    params : FeatureParams
        Analysis settings.
    tuning : float or None
        Tuning for chroma in fractions of a bin; estimated from `segments` when None.
    magnitude : np.ndarray or None
        ``spectrogram(segments)``, when the caller already has it (e.g. for `estimate_tuning`).

    Returns
    -------
    np.ndarray [shape=(n_segments, len(params.names()))], float32
        Columns in the order of ``params.names()``.

    Examples
    --------
    >>> p = FeatureParams()
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(p.segment_samples) / p.sample_rate)
    >>> compute(tone[None, :], params=p).shape
    (1, 174)
    """
    y = np.ascontiguousarray(np.atleast_2d(segments), dtype=np.float32)
    sr, n_fft, hop = params.sample_rate, params.n_fft, params.hop_length

    spec = spectrogram(y, params=params) if magnitude is None else magnitude  # (n, 1 + n_fft/2, frames)
    if spec.shape != (len(y), 1 + n_fft // 2, 1 + y.shape[-1] // hop):
        raise ValueError(f"magnitude has shape {spec.shape}, not that of spectrogram(segments)")
    power = spec * spec
    if tuning is None:
        tuning = float(np.median(segment_tunings(power, params)))
    n_frames = spec.shape[-1]

    freqs = banks.fft_frequencies(sr=sr, n_fft=n_fft).astype(np.float32)
    shape = np.empty((5, *power.shape[::2]), dtype=np.float32)
    _spectral_shape(spec, freqs, np.float32(0.85), shape)
    centroid, bw2, bw3, bw4, rolloff = shape
    mel = _melspectrogram(power, sr, n_fft, params.n_mels)
    mel_db = _power_to_db(mel, amin=1e-10)
    # librosa.feature.mfcc(S=mel_db): the orthonormal DCT-II over the bands, its first coefficients
    mfcc = scipy.fft.dct(mel_db, axis=-2, type=2, norm="ortho")[:, : params.n_mfcc, :]
    rms = _rms(y, n_fft, hop, n_frames)
    harmonic, percussive = _hpss_rms(mel, rms, params)
    flux = _onset_strength(mel_db, n_fft=n_fft, hop=hop)
    crossings = _crossings(y)

    frame_level = [
        _zero_crossing_rate(y, crossings, n_fft, hop, n_frames),
        rms,
        centroid,
        _delta(centroid, order=1),
        _delta(centroid, order=2),
        bw2,
        bw3,
        bw4,
        rolloff,
        flux,
        _chroma(power, sr, n_fft, tuning),
        mfcc,
        _delta(mfcc, order=1),
        _delta(mfcc, order=2),
        harmonic,
        percussive,
        # dB of the linear spectrogram, as librosa.amplitude_to_db(S) per frame over all bins
        _mean_db(power, amin=1e-10),
        mel_db.mean(axis=-2),
    ]
    # one (segments, series, frames) array: two reductions instead of two per series
    series = np.concatenate([x.reshape(len(y), -1, n_frames) for x in frame_level], axis=1, dtype=np.float32)
    stats = np.stack([series.mean(axis=-1), series.var(axis=-1)], axis=-1).reshape(len(y), -1)
    # librosa.zero_crossings counts the first sample as a crossing (pad=True)
    zero_crossings = crossings.sum(axis=-1) + 1
    return np.column_stack([stats, zero_crossings, _tempo(flux, sr, hop)]).astype(np.float32)


def _delta(x: np.ndarray, *, order: int) -> np.ndarray:
    """librosa.feature.delta(x, order=order) along frames, as one matrix product.

    librosa fits polynomials at both edges of every series on every call (np.polyfit); the
    filter is linear, so its matrix (the responses to each frame alone) is built once per
    segment length and applied in float64 (at least librosa's precision).
    """
    return (x.astype(np.float64) @ _delta_operator(x.shape[-1], order)).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _delta_operator(n_frames: int, order: int) -> np.ndarray:
    # row k is the delta of a series that is 1 at frame k and 0 elsewhere
    operator = banks.delta_operator(n_frames, order)
    operator.flags.writeable = False
    return operator


def _power_to_db(power: np.ndarray, *, amin: float, top_db: float = 80.0) -> np.ndarray:
    """librosa.power_to_db per segment: its `top_db` floor is relative to each segment's peak,
    where librosa's own call on a stack would take the peak of the whole stack."""
    db = 10.0 * np.log10(np.maximum(amin, power))  # librosa.power_to_db(ref=1.0, top_db=None)
    return np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - top_db)


def _mean_db(power: np.ndarray, *, amin: float, top_db: float = 80.0) -> np.ndarray:
    """`_power_to_db(power).mean(axis=-2)` with one log per bin: clip in the power domain first.

    The natural log, scaled: numpy's float32 `log` is SIMD code and its `log10` is not (3.7x
    slower here, and the largest single cost of the features before)."""
    peak = _max_over_bins(power).max(axis=-1)[:, None, None]
    floor = np.maximum(np.maximum(peak, amin) * np.float32(10.0 ** (-top_db / 10.0)), amin)
    clipped = np.maximum(power, floor.astype(power.dtype))
    np.log(clipped, out=clipped)
    # a sum along the middle axis: einsum's is ~4x faster than numpy's reduction there
    return np.float32(10.0 / np.log(10.0) / power.shape[-2]) * np.einsum("ift->it", clipped)


def _melspectrogram(power: np.ndarray, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.feature.melspectrogram(S=power): the same filter bank, as a sparse matrix."""
    basis = _mel_basis(sr, n_fft, n_mels)
    return np.stack([basis @ segment for segment in power])


@functools.lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    # librosa builds it on every call (1.6 ms); each FFT bin feeds at most two triangular bands,
    # so 2 % of the dense (n_mels, bins) product is not a multiplication by zero
    return scipy.sparse.csr_array(banks.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


def _chroma(power: np.ndarray, sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """librosa.feature.chroma_stft(S=power, tuning=tuning) with a cached filter bank, and a batched
    matrix product where its einsum copies the spectrogram into another layout first."""
    raw = np.matmul(_chroma_filter(sr, n_fft, float(tuning)), power)
    # librosa.util.normalize(norm=np.inf, axis=-2): each frame over its peak, in float64, where
    # the peak is at least the smallest float32 (a silent frame stays as it is)
    peak = np.max(np.abs(raw).astype(float), axis=-2, keepdims=True)
    peak[peak < np.finfo(raw.dtype).tiny] = 1.0
    normalized = np.empty_like(raw)
    normalized[:] = raw / peak
    return normalized


@functools.lru_cache(maxsize=128)
def _chroma_filter(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    # a track's tuning is a median of librosa's 0.01-wide histogram bins: a few hundred values at
    # most, so a few filter banks serve a whole corpus
    bank = banks.chroma(sr=sr, n_fft=n_fft, tuning=tuning)
    bank.flags.writeable = False  # shared by every call with this tuning
    return bank


@numba.njit(cache=True, nogil=True)
def _spectral_shape(spec, freqs, roll_percent, out):  # pragma: no cover (compiled)
    """Per frame: centroid, bandwidth p=2,3,4 and 85 % rolloff of a magnitude spectrogram.

    The definitions of librosa's spectral_centroid, spectral_bandwidth (norm=True) and
    spectral_rolloff, in three passes over the bins instead of a dozen whole-array passes.
    `spec` is (segments, bins, frames); `out` is (5, segments, frames).
    """
    n, n_bins, n_frames = spec.shape
    tiny = np.finfo(np.float32).tiny
    for i in range(n):
        total = np.zeros(n_frames)
        first = np.zeros(n_frames)
        running = np.zeros(n_frames, dtype=np.float32)  # float32 cumsum, as np.cumsum does
        for f in range(n_bins):
            for t in range(n_frames):
                s = spec[i, f, t]
                total[t] += s
                first[t] += freqs[f] * s
                running[t] += s
        centroid = np.zeros(n_frames)
        for t in range(n_frames):
            # librosa leaves an all-zero frame unnormalised: its centroid and bandwidths are 0
            if total[t] < tiny:
                total[t] = 1.0
            centroid[t] = first[t] / total[t]
        m2 = np.zeros(n_frames)
        m3 = np.zeros(n_frames)
        m4 = np.zeros(n_frames)
        threshold = np.empty(n_frames, dtype=np.float32)
        for t in range(n_frames):
            threshold[t] = roll_percent * running[t]
            running[t] = 0.0
            out[4, i, t] = -1.0
        for f in range(n_bins):
            for t in range(n_frames):
                s = spec[i, f, t]
                d = abs(freqs[f] - centroid[t])
                w = s / total[t]
                d2 = d * d
                m2[t] += w * d2
                m3[t] += w * d2 * d
                m4[t] += w * d2 * d2
                running[t] += s
                if out[4, i, t] < 0.0 and running[t] >= threshold[t]:
                    out[4, i, t] = freqs[f]
        for t in range(n_frames):
            out[0, i, t] = centroid[t]
            out[1, i, t] = np.sqrt(m2[t])
            out[2, i, t] = m3[t] ** (1.0 / 3.0)
            out[3, i, t] = np.sqrt(np.sqrt(m4[t]))


def _frame_starts(n_frames: int, hop: int) -> np.ndarray:
    return np.arange(n_frames) * hop


def _rms(y: np.ndarray, frame_length: int, hop: int, n_frames: int) -> np.ndarray:
    """librosa.feature.rms(y=y) (centred frames, zero padding) from sums of y**2.

    When the hop divides the frame (the defaults: 4 hops), a frame's energy is the sum of the
    energies of its hop-long blocks: one contiguous reduction instead of a running sum over
    every sample (6x faster).
    """
    half = frame_length // 2
    if frame_length % hop == 0 and 2 * hop <= frame_length:
        per_frame = frame_length // hop
        n_blocks = n_frames - 1 + per_frame
        energy = np.zeros((y.shape[0], n_blocks * hop))  # the padded signal, cut after the last frame
        np.square(y, out=energy[:, half : half + y.shape[1]], dtype=np.float64)
        blocks = energy.reshape(y.shape[0], n_blocks, hop).sum(axis=-1)
        total = blocks[:, :n_frames].copy()
        for j in range(1, per_frame):
            total += blocks[:, j : j + n_frames]
        return np.sqrt(total / frame_length).astype(np.float32)
    energy = np.zeros((y.shape[0], y.shape[1] + 2 * half + 1))
    np.cumsum(np.square(y, dtype=np.float64), axis=-1, out=energy[:, half + 1 : half + 1 + y.shape[1]])
    energy[:, half + 1 + y.shape[1] :] = energy[:, half + y.shape[1], None]
    starts = _frame_starts(n_frames, hop)
    mean = (energy[:, starts + frame_length] - energy[:, starts]) / frame_length
    return np.sqrt(np.maximum(mean, 0.0)).astype(np.float32)


def _crossings(y: np.ndarray, threshold: float = 1e-10) -> np.ndarray:
    """(n, samples - 1) bool: a sign change between sample j and j + 1, as librosa.zero_crossings
    sees it (|x| <= threshold counts as 0, and 0 as positive)."""
    negative = np.signbit(y) & (np.abs(y) > np.float32(threshold))
    return negative[:, 1:] != negative[:, :-1]


def _zero_crossing_rate(
    y: np.ndarray, crossings: np.ndarray, frame_length: int, hop: int, n_frames: int
) -> np.ndarray:
    """librosa.feature.zero_crossing_rate: centred frames (edge padding), crossings inside each
    frame over its length, from counts per hop-long block (when the hop divides the frame, as
    in `_rms`) or one running count, instead of a framed copy of the signal."""
    half = frame_length // 2
    starts = _frame_starts(n_frames, hop)
    if frame_length % hop == 0 and 2 * hop <= frame_length:
        per_frame = frame_length // hop
        n_blocks = n_frames - 1 + per_frame
        # 1 where a crossing of the edge-padded signal ends (the constant padding adds none)
        ends = np.zeros((y.shape[0], n_blocks * hop), dtype=np.uint8)
        ends[:, half + 1 : half + y.shape[1]] = crossings
        blocks = ends.reshape(y.shape[0], n_blocks, hop).sum(axis=-1, dtype=np.int64)
        inside = blocks[:, :n_frames].copy()
        for j in range(1, per_frame):
            inside += blocks[:, j : j + n_frames]
        # a frame from s to s + L - 1 holds the crossings that end at s + 1 ... s + L - 1
        inside -= ends[:, starts]
        return (inside / frame_length).astype(np.float32)
    # crossings of the edge-padded signal: the padding is constant, so it adds none
    count = np.zeros((y.shape[0], y.shape[1] + 2 * half), dtype=np.int64)
    np.cumsum(crossings, axis=-1, out=count[:, half + 1 : half + y.shape[1]])
    count[:, half + y.shape[1] :] = count[:, half + y.shape[1] - 1, None]
    # a frame from s to s + L - 1 holds the crossings that end at s + 1 ... s + L - 1
    return ((count[:, starts + frame_length - 1] - count[:, starts]) / frame_length).astype(np.float32)


def _tempo(onset_envelope: np.ndarray, sr: int, hop: int, ac_size: float = 8.0) -> np.ndarray:
    """librosa.feature.tempo(onset_envelope=...) per segment.

    librosa's tempogram autocorrelates every frame's window (an FFT there and back), scales each
    frame by its peak and averages the frames. The peak of an autocorrelation is its lag 0, the
    window's energy, and the inverse FFT is linear: so the frames' power spectra are averaged
    with those weights first, and each segment needs one inverse FFT instead of one per frame.
    One segment at a time keeps the float64 spectra in cache (a quarter faster than the stack).
    The prior and the peak pick are librosa's.
    """
    win_length = int(ac_size * sr) // hop  # librosa.time_to_frames: whole samples, then whole hops
    n_frames = onset_envelope.shape[-1]
    half = win_length // 2
    padded = np.pad(onset_envelope, ((0, 0), (half, half)), mode="linear_ramp", end_values=[0, 0])
    windows = np.lib.stride_tricks.sliding_window_view(padded, win_length, axis=-1)[:, :n_frames]
    hann = banks.hann(win_length)
    n_pad = scipy.fft.next_fast_len(2 * win_length - 1, real=True)
    mean_power = np.empty((len(padded), n_pad // 2 + 1))
    for i in range(len(padded)):
        frames = windows[i] * hann
        spectrum = scipy.fft.rfft(frames, n=n_pad, axis=-1)
        energy = np.einsum("tj,tj->t", frames, frames)
        # librosa.util.normalize(threshold=None) leaves a frame below the smallest float as it is
        weight = 1.0 / (np.where(energy < np.finfo(energy.dtype).tiny, 1.0, energy) * n_frames)
        mean_power[i] = weight @ (spectrum.real**2 + spectrum.imag**2)
    mean = scipy.fft.irfft(mean_power, n=n_pad, axis=-1)[:, :win_length]
    # librosa.feature.tempo(tg=mean): the lag whose autocorrelation, weighted by the prior, is highest
    bpms, logprior = _tempo_prior(win_length, sr, hop)
    return bpms[np.argmax(np.log1p(1e6 * mean) + logprior, axis=-1)]


@functools.lru_cache(maxsize=4)
def _tempo_prior(win_length: int, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    return banks.tempo_log_prior(win_length=win_length, sr=sr, hop_length=hop)


def _onset_strength(mel_db: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """librosa.onset.onset_strength(S=mel_db, n_fft=n_fft, hop_length=hop) per segment: the mean
    over bands of each band's rise since the last frame, delayed by half a frame to centre it."""
    rise = np.maximum(0.0, mel_db[..., 1:] - mel_db[..., :-1])
    envelope = np.mean(rise, axis=-2)
    delay = 1 + n_fft // (2 * hop)
    return np.pad(envelope, [(0, 0), (delay, 0)], mode="constant")[..., : mel_db.shape[-1]]


def _hpss_rms(mel: np.ndarray, rms: np.ndarray, params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Frame RMS of the harmonic and the percussive component.

    Median-filter HPSS (Fitzgerald 2010, librosa's soft masks) on the mel spectrogram
    instead of the full 1025-bin one: 8x fewer bins and a band-wide kernel keep the same
    horizontal/vertical separation for a few percent of librosa's cost. The component's
    share of each frame's energy scales the frame's RMS.
    """
    harm = medians.running_median(mel, params.hpss_kernel_frames, axis=-1)
    perc = medians.running_median(mel, params.hpss_kernel_bands, axis=-2)
    mask_h = _softmask(harm, perc)
    energy = mel.sum(axis=-2)
    share_h = np.divide((mel * mask_h).sum(axis=-2), energy, out=np.full_like(energy, 0.5), where=energy > 0)
    share_h = np.clip(share_h, 0.0, 1.0)
    return rms * np.sqrt(share_h), rms * np.sqrt(1.0 - share_h)


def _softmask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """librosa.util.softmask(x, y, power=2, split_zeros=True), the same arithmetic, without its
    boolean-indexed updates (4x faster): (x/z)^2 / ((x/z)^2 + (y/z)^2) with z = max(x, y), and
    0.5 where both are zero."""
    z = np.maximum(x, y)
    zero = z < np.finfo(z.dtype).tiny
    z[zero] = 1.0
    mask, other = np.square(x / z), np.square(y / z)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 where both are zero, replaced below
        mask /= mask + other
    mask[zero] = 0.5
    return mask
