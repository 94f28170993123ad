"""The MP3 decode path of another commit against this tree's, on the same files, file by file in turns.

Loads `genre_hpc/flow/audio.py` as it was at `--before` (git show) beside this tree's, and times per
file, one core: each decode path (decode, mix to mono, resample to 22,050 Hz, segments) and
libsndfile's own decode (soundfile.read, float32); with `--end-to-end`, the package's features on
each decode path and the origin study's method (librosa.load + per-chunk features), too. Taking
turns file by file keeps the ratios on a loaded machine, where seconds do not hold:

    genre-hpc bench output.dir=/tmp/b bench.extraction=false 'bench.mp3_clips=[1,2]'   # writes the clips
    python tools/mp3_before_after.py /tmp/b/bench-corpus-mp3/30s --before 6974aac --end-to-end 20

`--features-before COMMIT` adds the package end to end with `genre_hpc/flow/features.py` as it was at
COMMIT (and this tree's decode path), in the same turns.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import soundfile as sf
from threadpoolctl import threadpool_limits

from genre_hpc.flow import audio, features, reference, track
from genre_hpc.flow.params import FeatureParams
from genre_hpc.flow.track import track_features


def old_module(commit: str, name: str = "audio") -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{commit}:genre_hpc/flow/{name}.py"], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parent).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / f"{name}_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def in_turns(methods: dict, paths: list[str], repeats: int) -> dict[str, float]:
    """Best of `repeats` total seconds per method, every file through every method before the next."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        spent = dict.fromkeys(methods, 0.0)
        for path in paths:
            for name, method in methods.items():
                started = time.perf_counter()
                method(path)
                spent[name] += time.perf_counter() - started
        best = {name: min(best.get(name, float("inf")), s) for name, s in spent.items()}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of genre folders of MP3 clips")
    parser.add_argument("--before", default="6974aac")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N", help="also end to end on N clips")
    parser.add_argument("--features-before", metavar="COMMIT", help="also with features.py at COMMIT")
    args = parser.parse_args()
    paths = sorted(str(p) for p in Path(args.folder).glob("*/*.mp3"))
    before = old_module(args.before)
    params = FeatureParams()
    segmenting = {"sample_rate": params.sample_rate, "segment_samples": params.segment_samples,
                  "min_samples": params.min_samples, "block_segments": 10}  # fmt: skip
    now_decode = audio._decode

    def package(decode, feature_module=features):
        def run(path: str) -> None:
            audio._decode, track.features = decode, feature_module
            try:
                track_features(path, params=params, block_segments=10)
            finally:
                audio._decode, track.features = now_decode, features

        return run

    with threadpool_limits(1):
        for path in paths:
            sf.read(path)  # into the page cache
        decoders = {
            f"decode path at {args.before}": lambda p: list(before.iter_segments(p, **segmenting)),
            "decode path now": lambda p: list(audio.iter_segments(p, **segmenting)),
            "libsndfile (soundfile.read, float32)": lambda p: sf.read(p, dtype="float32"),
        }
        spent = in_turns(decoders, paths, args.repeats)
        base = spent["libsndfile (soundfile.read, float32)"]
        print(f"decode, {len(paths)} files, best of {args.repeats}: ms per file, against libsndfile")
        for name, seconds in spent.items():
            print(f"| {name} | {1000 * seconds / len(paths):.1f} | {seconds / base:.2f} |")
        if args.end_to_end:
            features.warm_up()
            chosen = paths[: args.end_to_end]
            methods = {
                "reference (librosa.load + per-chunk features)": lambda p: reference.load_track_features(
                    p, params=params
                ),
                f"genre-hpc, decode path at {args.before}": package(before._decode),
                "genre-hpc now": package(now_decode),
            }
            if args.features_before:
                old_features = old_module(args.features_before, "features")
                old_features.warm_up()
                methods[f"genre-hpc, features at {args.features_before}"] = package(now_decode, old_features)
            for method in methods.values():
                method(chosen[0])  # warm-up
            spent = in_turns(methods, chosen, 1)
            base = spent["reference (librosa.load + per-chunk features)"]
            print(f"end to end, {len(chosen)} clips: s per clip, speedup over the reference")
            for name, seconds in spent.items():
                print(f"| {name} | {seconds / len(chosen):.3f} | {base / seconds:.1f}x |")


if __name__ == "__main__":
    sys.exit(main())
