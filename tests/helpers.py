"""Helpers the tests share: composed configs, the console command in a fresh process, bad audio files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from hydra import compose, initialize_config_module

from genre_hpc.core.layout import OutputLayout

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SR = 22050


def make_config(stage: str, overrides: list[str]):
    with initialize_config_module(config_module="genre_hpc.conf", version_base="1.3"):
        return compose(config_name=stage, overrides=overrides)


def layout(cfg) -> OutputLayout:
    """The output layout a stage gets from the CLI for `cfg`."""
    return OutputLayout.of(cfg)


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The console command as a user runs it, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "genre_hpc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"genre-hpc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_bad_files(root: Path) -> dict[str, str]:
    """One file of each kind of bad input under root/bad/; returns name -> expected reason word."""
    folder = root / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR * 6) / SR)).astype(np.float32)
    sf.write(folder / "good.wav", tone, SR, subtype="PCM_16")
    data = (folder / "good.wav").read_bytes()
    (folder / "good.wav").unlink()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 3])
    sf.write(folder / "source.flac", tone, SR)
    flac = bytearray((folder / "source.flac").read_bytes())
    (folder / "source.flac").unlink()
    middle = len(flac) // 2
    flac[middle : middle + 2000] = bytes(b ^ 0xFF for b in flac[middle : middle + 2000])
    (folder / "corrupt.flac").write_bytes(bytes(flac))
    (folder / "zero.wav").write_bytes(b"")
    (folder / "text.wav").write_text("these are words, not samples\n" * 20)
    sf.write(folder / "silent.wav", np.zeros(SR * 6, np.float32), SR, subtype="PCM_16")
    sf.write(folder / "tiny.wav", tone[: SR // 10], SR, subtype="PCM_16")
    return {
        "truncated.wav": "truncated",
        "corrupt.flac": "corrupt",
        "zero.wav": "empty file",
        "text.wav": "not a recognised audio format",
        "silent.wav": "silent",
        "tiny.wav": "too short",
    }


def run_stage(module, cfg, client=None):
    """A stage as the CLI runs it: `run(cfg, client, output layout)`."""
    return module.run(cfg, client, OutputLayout.of(cfg))
