"""manifest.json: what produced an output folder (config, versions, counts) and how long each stage took."""

from __future__ import annotations

import json
import resource
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from genre_hpc.core.atomic import write_json
from genre_hpc.core.layout import OutputLayout
from genre_hpc.core.versions import versions
from genre_hpc.flow.schema import FEATURE_VERSION


def read(out: OutputLayout) -> dict[str, Any]:
    """The manifest so far (empty before any stage has recorded itself)."""
    return json.loads(out.manifest.read_text()) if out.manifest.exists() else {}


def update(out: OutputLayout, stage: str, record: dict[str, Any], *, config: dict[str, Any]) -> None:
    """Merge one stage's record into manifest.json (written atomically)."""
    manifest = read(out)
    manifest.update({"feature_version": FEATURE_VERSION, "versions": versions(), "config": config})
    manifest.setdefault("stages", {})[stage] = record
    write_json(out.manifest, manifest)


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data for manifests (interpolations resolved, Hydra's own keys left out)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


class StageTimer:
    """Times one stage from its start and records it, with its wall time, in manifest.json."""

    def __init__(self, out: OutputLayout, cfg: DictConfig) -> None:
        self.out = out
        self.cfg = cfg
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    @property
    def seconds(self) -> float:
        """Wall seconds since the stage started."""
        return time.perf_counter() - self.started

    def finish(self, stage: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record `record` as `stage` (its `wall_seconds` set, unless the stage set it) and return it."""
        record.setdefault("wall_seconds", self.seconds)
        # the driver's own cost: what grows with the number of tracks when the workers do the rest
        record.setdefault("driver_cpu_seconds", time.process_time() - self.cpu_started)
        record.setdefault("driver_peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
        update(self.out, stage, record, config=plain(self.cfg))
        return record
