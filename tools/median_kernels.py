"""Rewrites genre_hpc/flow/median_kernels.py from genre_hpc.flow.medians.kernel_source().

Run it from the repository root after changing `medians.KERNEL_SIZES` or `medians.network`;
tests/flow/test_medians.py fails until the file and the source agree.

    python tools/median_kernels.py
"""

from __future__ import annotations

from pathlib import Path

from genre_hpc.flow import medians

TARGET = Path(__file__).resolve().parent.parent / "genre_hpc" / "flow" / "median_kernels.py"

if __name__ == "__main__":
    TARGET.write_text(medians.kernel_source(), encoding="utf-8")
    print(f"wrote {TARGET}")
