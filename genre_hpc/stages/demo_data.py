"""The demo-data stage: write the synthetic GTZAN-shaped demo corpus to data.demo.root (no cluster)."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from genre_hpc.core.errors import ConfigError
from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow.corpus import resolve_root

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Any, out: OutputLayout) -> list[str]:
    """Generate the demo corpus (existing clips are kept) and return its folder."""
    if cfg.data.root is not None:
        raise ConfigError("data.root", "is set; demo-data writes to data.demo.root", "unset data.root")
    root = resolve_root(cfg)
    log.info("demo-data: corpus ready in %s", root)
    return [str(root)]
