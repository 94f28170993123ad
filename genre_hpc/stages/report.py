"""The report stage: one HTML page of the run in output.dir, drawn by flow/report.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from genre_hpc.core.layout import OutputLayout
from genre_hpc.flow import report
from genre_hpc.infra import manifest

log = logging.getLogger(__name__)


def run(cfg: DictConfig, client: Any, out: OutputLayout) -> Path:
    """Write OUT/report/index.html from what the run left in output.dir (no cluster needed)."""
    page = report.write(out, manifest.read(out))
    log.info("report: %s", page)
    return page
