"""The demo-data stage: write the synthetic demo corpus to data.demo.root (no cluster): GTZAN-shaped
genre folders, or with data=fma an FMA-shaped corpus (MP3 by id, tracks.csv, FMA's faults)."""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig

from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.corpus import demo_fma, resolve_root
from genre_hpc.flow.demo import GENRES

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Any, out: OutputLayout) -> list[str]:
    """Generate the demo corpus (existing clips are kept) and return its folder."""
    if cfg.data.root is not None:
        raise ConfigError("data.root", "is set; demo-data writes to data.demo.root", "unset data.root")
    if cfg.data.kind == "fma":
        made = demo_fma(cfg)
        log.info(
            "demo-data: FMA-shaped corpus ready: data.root=%s data.tracks=%s (track %d has no genre_top, "
            "%d no file, %d no audio)",
            made.audio, made.tracks, made.no_genre_top, made.missing_file, made.no_audio,
        )  # fmt: skip
        return [str(made.audio), str(made.tracks)]
    started, cpu = time.perf_counter(), time.process_time()
    root = resolve_root(cfg)
    spec = cfg.data.demo
    # the synthesis budget is 10 s of one core per 100 clips of 30 s; clips already there cost nothing
    log.info(
        "demo-data: corpus ready in %s (%d genres x %d clips of %.0f s; %.1f s wall, %.1f s CPU)",
        root, len(GENRES), spec.n_per_genre, spec.seconds, time.perf_counter() - started,
        time.process_time() - cpu,
    )  # fmt: skip
    return [str(root)]
