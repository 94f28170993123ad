"""What `pip install genre-hpc` (a wheel, not the editable install the tests run from) ships."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from genre_hpc.infra.config import STAGES

from ..helpers import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_the_wheel_lists_every_package_of_the_source_tree():
    # An editable install finds any folder under genre_hpc/, so a package missing from this list
    # passes every other test and is absent only from a real install: genre_hpc.bench was, and
    # `genre-hpc bench` failed with ModuleNotFoundError after `pip install .`.
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    source = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "genre_hpc").rglob("__init__.py")
    }
    assert source - set(setuptools["packages"]) == set(), "add these to [tool.setuptools] packages"
    mapped = set(setuptools.get("package-dir", {}))
    assert set(setuptools["packages"]) - source == mapped == {"genre_hpc.conf"}
    assert (REPO / setuptools["package-dir"]["genre_hpc.conf"] / "__init__.py").is_file()


INSTALLED = """
import importlib, pathlib, pkgutil, sys
import genre_hpc
where = pathlib.Path(genre_hpc.__file__).parent
assert where.parent == pathlib.Path(sys.argv[1]), f"imported from {where}, not the wheel"
names = [m.name for m in pkgutil.walk_packages([str(where)], "genre_hpc.")]
for name in names:
    if name != "genre_hpc.__main__":  # it runs the command
        importlib.import_module(name)
# the editable install's finder would serve a module the wheel lacks from the source tree
strays = [n for n, m in sys.modules.items() if n.startswith("genre_hpc") and getattr(m, "__file__", None)
          and pathlib.Path(sys.argv[1]) not in pathlib.Path(m.__file__).parents]
assert not strays, f"imported from outside the wheel: {strays}"
print(*names)
"""


@pytest.mark.slow  # 25 s; what the wheel holds does not depend on the versions installed
def test_a_wheel_installs_a_genre_hpc_that_runs_from_its_own_files(tmp_path: Path) -> None:
    # Every other test runs from the editable install, which finds any file of the source tree: a
    # module or config the wheel leaves out is missing only from a user's `pip install genre-hpc`.
    # from the tracked files alone: setuptools would reuse what an earlier build left in build/
    if not (REPO / ".git").exists():
        pytest.skip("builds the wheel from git's tracked files: needs a git checkout")
    pytest.importorskip("pip", reason="builds the wheel with pip")
    tree = tmp_path / "tree"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (REPO / name).is_file():  # a file deleted but not yet committed is not in the tree
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tree / name)
    # build isolation fetches setuptools from the package index (or pip's cache)
    pip("wheel", "-q", "--no-deps", str(tree), "-w", str(tmp_path / "dist"))
    (wheel,) = (tmp_path / "dist").glob("genre_hpc-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    source = {
        *(str(p.relative_to(REPO)) for p in (REPO / "genre_hpc").rglob("*.py")),
        *(
            f"genre_hpc/conf/{p.relative_to(REPO / 'conf')}"
            for p in (REPO / "conf").rglob("*")
            if p.is_file()
        ),
    }
    source = {name for name in source if "__pycache__" not in name}
    assert source - shipped == set(), "the wheel lacks these: git add them, or see [tool.setuptools]"

    site = tmp_path / "site"
    pip("install", "-q", "--no-deps", "--target", str(site), str(wheel))
    # outside the repository, the wheel's genre_hpc first on the path (ahead of the editable finder)
    env = {**os.environ, "PYTHONPATH": str(site)}

    def installed(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    modules = {
        ".".join(Path(name).with_suffix("").parts).removesuffix(".__init__")
        for name in source
        if name.endswith(".py")
    }
    assert set(installed("-c", INSTALLED, str(site)).split()) == modules - {"genre_hpc"}
    out = tmp_path / "out"
    for stage in STAGES:  # every stage's config composes from the shipped YAML
        assert f"stage: {stage}" in installed("-m", "genre_hpc", stage, f"output.dir={out}", "--cfg", "job")
    installed(
        "-m", "genre_hpc", "demo-data", f"output.dir={out}", "data.demo.n_per_genre=1", "data.demo.seconds=3"
    )
    assert len(list((out / "demo-corpus").rglob("*.wav"))) == 10


def pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
