"""What `pip install genre-hpc` (a wheel, not the editable install the tests run from) ships."""

from __future__ import annotations

import pytest

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
