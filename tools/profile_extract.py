"""Per-step cost of extracting one 30-s clip: cProfile of `track.track_features`, one step per row.

A step is a function that `track_features`, `features.compute` or `features.estimate_tuning`
calls directly (so no time is counted twice); the figure is its cumulative time per clip, the
minimum over repeats, with one BLAS thread. Works on any commit of genre-hpc, so the same
command profiles the code before and after a change:

    python tools/profile_extract.py --clips 10 --repeats 5
    git archive <commit> genre_hpc | tar -x -C /tmp/old && PYTHONPATH=/tmp/old python tools/profile_extract.py
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

PARENTS = ("track_features", "compute", "estimate_tuning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10, help="demo clips, one per genre first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus", default=None, help="folder of demo clips (made if missing)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from genre_hpc.flow import demo, features, track
    from genre_hpc.flow.params import FeatureParams

    threadpool_limits(1)
    params = FeatureParams()
    root = Path(args.corpus or Path(tempfile.gettempdir()) / "genre-hpc-profile-corpus")
    n_per_genre = -(-args.clips // len(demo.GENRES))
    paths = sorted(demo.generate(root, n_per_genre=n_per_genre, seconds=30.0, seed=0))
    paths = sorted(paths, key=lambda p: (p.stem.split(".")[-1], p.stem))[: args.clips]
    features.warm_up()
    for path in paths:  # caches and page cache, as in a worker's steady state
        track.track_features(str(path), params=params, block_segments=10)

    best: dict[str, float] = {}
    for _ in range(args.repeats):
        profile = cProfile.Profile()
        profile.enable()
        for path in paths:
            track.track_features(str(path), params=params, block_segments=10)
        profile.disable()
        for step, seconds in _steps(pstats.Stats(profile)).items():
            best[step] = min(best.get(step, float("inf")), seconds / len(paths))
    total = best.pop("= track_features (whole)")
    print("| step | ms per 30-s clip | share |\n|---|---:|---:|")
    for step, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.001 * total:
            print(f"| {step} | {seconds * 1000:.1f} | {seconds / total:.0%} |")
    rest = sum(s for s in best.values() if s < 0.001 * total)
    print(f"| (other calls, each < 0.1 %) | {rest * 1000:.1f} | {rest / total:.0%} |")
    print(f"| **track_features, whole** | **{total * 1000:.1f}** | 100 % |")


def _steps(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each direct callee of the PARENTS (a parent that is itself a callee
    of another parent is split into its own callees)."""
    raw = stats.stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    parents = {key for key in raw if key[2] in PARENTS and "genre_hpc" in key[0]}
    steps: dict[str, float] = {}
    for callee, (_, _, _, _, callers) in raw.items():
        if callee in parents:
            continue
        for caller, timing in callers.items():
            if caller in parents:
                name = f"{caller[2]} > {_label(callee)}"
                steps[name] = steps.get(name, 0.0) + timing[3]
    whole = [raw[key][3] for key in parents if key[2] == "track_features"]
    steps["= track_features (whole)"] = sum(whole)
    return steps


def _label(key: tuple[str, int, str]) -> str:
    file, _, name = key
    if file == "~":  # a built-in: numpy's methods and the like
        return name.strip("<>")
    module = Path(file).stem
    return f"{module}.{name}"


if __name__ == "__main__":
    main()
