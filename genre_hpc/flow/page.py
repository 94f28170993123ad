"""The report page's building blocks: its figures under OUT/report/, tables with whole counts, the shell."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genre_hpc.core.atomic import write_bytes

# columns that count things, by their exact names (a "mean over folds" is no count): whole numbers,
# whatever dtype they arrive in (scikit-learn's classification report gives `support` as a float)
COUNTS = frozenset(
    {"support", "tracks", "segments", "folds", "files", "workers"}
    | {f"{side}{sep}{what}" for side in ("test", "train") for sep in "_ " for what in ("tracks", "segments")}
)
LEAK_NOTE = " <b class=leak>LEAKY split: segments of one track on both sides</b>"

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:0.5em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.3em;margin:0.3em 0}h2{margin:1.2em 0 0.4em}h3{margin:0.6em 0 0.3em;font-size:1em}"
    "img{max-width:100%}figure{margin:0.4em 0}figcaption{font-size:0.8em;color:#555}"
    "table.data{border-collapse:collapse;font-size:0.85em}caption{font-size:0.85em;text-align:left;color:#555}"
    "table.data td,table.data th{padding:2px 8px;border-bottom:1px solid #ddd}"
    ".leak{color:#b00}.score{font-size:1.05em}"
    "#headline{border-bottom:2px solid #ccc;padding-bottom:0.5em}"
    "#headline-figure{font-size:1.6em;margin:0.2em 0}#headline .what{margin:0.2em 0 0.6em;max-width:60em}"
    ".pair{display:grid;grid-template-columns:1fr 1fr;gap:1.5em;align-items:start}.pair img{width:100%}"
    ".grid{display:grid;grid-template-columns:repeat(3,1fr);gap:0.5em}.small img{max-width:560px}"
    "details{margin:0.4em 0}summary{cursor:pointer;color:#145}"
)


def leak_note(leaky: bool) -> str:
    """The warning every number of a leaky split stands beside."""
    return LEAK_NOTE if leaky else ""


@dataclass(frozen=True)
class Page:
    """The report folder, and how the page shows a figure or a table in it."""

    folder: Path

    def img(self, name: str, alt: str) -> str:
        """A figure already written to the report folder under `name`."""
        alt = html.escape(alt)
        return f'<figure><img src="{html.escape(name)}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'

    def copy(self, source: Path, prefix: str, alt: str, *, name: str | None = None) -> str:
        """A figure another stage wrote, copied beside the page (which must stand alone) as
        `prefix + (name or its own name)`."""
        target = f"{prefix}{name or source.name}"
        write_bytes(self.folder / target, source.read_bytes(), durable=False)
        return self.img(target, alt)

    @staticmethod
    def table(frame: pd.DataFrame, *, caption: str = "") -> str:
        """A table of scores to 3 decimals and counts as whole numbers; a value not measured (NaN,
        None: compare's CPU seconds of a fit spread over the cluster) shows as a dash."""
        frame = frame.copy()
        for column in frame.columns:
            if column in COUNTS:
                frame[column] = pd.to_numeric(frame[column]).round().astype("Int64")
            elif frame[column].dtype == object:  # to_html's na_rep leaves these alone
                frame[column] = frame[column].where(frame[column].notna(), "–")
        text = frame.to_html(
            index=False, border=0, classes="data", float_format=lambda v: f"{v:.3f}", na_rep="–"
        )
        if caption:
            text = text.replace(">", f"><caption>{html.escape(caption)}</caption>", 1)
        return text

    def prune(self, document: str) -> list[Path]:
        """Delete the figures beside the page that `document` does not show: left by an earlier
        report of this folder (a section since gone or moved), they would pass for this run's."""
        shown = set(re.findall(r'<img src="([^"]+)"', document))
        stale = [path for path in self.folder.glob("*.png") if html.escape(path.name) not in shown]
        for path in stale:
            path.unlink()
        return stale

    @staticmethod
    def document(sections: list[str]) -> str:
        """The whole page: the sections in order, under one style."""
        return (
            "<!doctype html><html><head><meta charset=utf-8><title>genre-hpc report</title>"
            f"<style>{STYLE}</style></head><body><h1>genre-hpc report</h1>{''.join(sections)}</body></html>\n"
        )
