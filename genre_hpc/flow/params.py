"""The settings of the feature set (`features.*`) and their checks; no numerics, so config stays light."""

from __future__ import annotations

from dataclasses import dataclass

from genre_hpc.core.errors import ConfigError
from genre_hpc.flow.schema import feature_names


@dataclass(frozen=True)
class FeatureParams:
    """Analysis settings; `conf/features/default.yaml` holds the values a run uses."""

    sample_rate: int = 22050
    segment_seconds: float = 3.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 20
    hpss_kernel_frames: int = 31
    hpss_kernel_bands: int = 9
    min_seconds: float = 0.5

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def min_samples(self) -> int:
        return int(round(self.min_seconds * self.sample_rate))

    def names(self) -> list[str]:
        return feature_names(n_mfcc=self.n_mfcc)

    def check(self) -> None:
        """Raise ConfigError naming the `features.*` key that cannot work."""
        if self.sample_rate < 8000:
            raise ConfigError("features.sample_rate", f"{self.sample_rate} Hz is too low", "use 22050")
        if self.hop_length <= 0 or self.n_fft <= 0 or self.hop_length > self.n_fft:
            raise ConfigError("features.hop_length", "needs 0 < hop_length <= n_fft")
        # delta features use a 9-frame window, so a segment needs at least 9 frames
        min_frames_samples = 9 * self.hop_length
        if self.min_samples < min_frames_samples:
            raise ConfigError(
                "features.min_seconds",
                f"{self.min_seconds} s is shorter than 9 analysis frames",
                f"use at least {min_frames_samples / self.sample_rate:.2f}",
            )
        if self.segment_seconds < self.min_seconds:
            raise ConfigError(
                "features.segment_seconds",
                f"{self.segment_seconds} s is shorter than features.min_seconds",
                "use 3.0 for GTZAN-style 3-s segments",
            )
        for key in ("n_mels", "n_mfcc", "hpss_kernel_frames", "hpss_kernel_bands"):
            if getattr(self, key) < 1:
                raise ConfigError(f"features.{key}", "must be a positive integer")
        for key in ("hpss_kernel_frames", "hpss_kernel_bands"):
            # a median of an even count has no middle value: librosa's median filter takes the
            # upper one, an average the mean of both; an odd kernel leaves no such choice
            size = getattr(self, key)
            if size % 2 == 0:
                raise ConfigError(f"features.{key}", f"{size} is even", "use an odd size, e.g. 31 or 9")
        if self.n_mfcc > self.n_mels:
            raise ConfigError("features.n_mfcc", "cannot exceed features.n_mels")
