"""The layers contract: which part of genre_hpc may import which, read from every module's imports.

The data flow runs one way and the cluster is built in one place (README, "Development"); this
test keeps the code that way. It reads imports with `ast`, deferred ones inside functions
included, so a stage importing another stage, the data flow importing the infrastructure, or
an import cycle fails here with the offending line named.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import REPO

PACKAGE = REPO / "genre_hpc"  # the source tree these tests ship with, installed or not

# The data flow in order: a flow module may import only modules listed before it.
FLOW_ORDER = (
    # what a row is
    "schema", "params",
    # corpus and audio
    "audio", "metadata", "demo", "corpus", "validation",
    # features
    "banks", "median_kernels", "medians", "features", "reference", "track", "parity",
    # dataset
    "dataset",
    # model
    "split", "trainset", "sampling", "crossval", "metrics", "shares", "moments", "model", "kernel_svm",
    "lineup",
    # report
    "plots", "page", "headline", "report",
)  # fmt: skip

# Which layer may import which; a layer not listed for itself may not import its own modules.
LAYERS: dict[str, set[str]] = {
    "root": set(),  # genre_hpc/__init__.py: the version, nothing else
    "core": {"root", "core"},  # errors, atomic writer, output layout, versions
    "flow": {"root", "core", "flow"},  # the data flow, in FLOW_ORDER
    "infra": {"root", "core", "flow", "infra"},  # config, manifest, tasks, cluster, progress
    "bench": {"root", "core", "flow", "infra", "bench"},  # the probes: they build clusters to time them
    "stages": {"root", "core", "flow", "infra", "bench"},  # never another stage
    "cli": {"root", "core", "flow", "infra", "bench", "stages", "cli"},
}

# Stages are handed a client: how it was built is none of their business.
FORBIDDEN = {"stages": ("infra.cluster",)}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # the package module it resolves to
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported} (line {self.line})"


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package in folder `root`, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports(root: Path, package: str) -> list[Import]:
    """Every import of a package module by a package module, at any depth of the code."""
    known = modules(root, package)
    found = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against the importing module's package
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # `from a import b` imports the module a.b if there is one, else a name of a
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                module = _closest(target, known)
                if module is not None and module != name:
                    found.append(Import(name, module, node.lineno))
    return found


def _closest(target: str, known: dict[str, Path]) -> str | None:
    """`target`, or the longest package module it lies in (`import genre_hpc.flow.x.y` -> flow.x)."""
    parts = target.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def layer(module: str) -> str | None:
    """The layer of a dotted module name: its folder under the package, `root` or `cli`."""
    parts = module.split(".")[1:]
    if not parts:
        return "root"
    if parts[0] in ("cli", "__main__"):
        return "cli"
    return parts[0] if parts[0] in ("core", "flow", "infra", "bench", "stages") else None


def _flow_step(module: str) -> str | None:
    """`x` for pkg.flow.x (and pkg.flow.x.y); None for the flow package itself."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 else None


def violations(root: Path, package: str, flow_order: tuple[str, ...] = FLOW_ORDER) -> list[str]:
    """Every module in no layer, every import that breaks the contract, and every cycle, as lines."""
    known = modules(root, package)
    problems = [
        f"{name} is in no layer: put it in core/, flow/, infra/, bench/ or stages/"
        for name in known
        if layer(name) is None
    ]
    flow_modules = {_flow_step(name) for name in known if layer(name) == "flow"} - {None}
    if flow_modules != set(flow_order):
        problems.append(
            f"flow modules {sorted(flow_modules)} differ from FLOW_ORDER {sorted(flow_order)}: "
            "give every flow module its place in the data flow"
        )
    edges = imports(root, package)
    for edge in edges:
        source, target = layer(edge.importer), layer(edge.imported)
        if source is None or target is None:
            continue  # reported above
        relative = edge.imported.removeprefix(f"{package}.")
        if target not in LAYERS[source]:
            problems.append(f"{edge}: the {source} layer may not import the {target} layer")
        elif any(relative.startswith(bad) for bad in FORBIDDEN.get(source, ())):
            problems.append(f"{edge}: {source} modules receive a client and never build one")
        elif source == target == "flow":
            importer, imported = _flow_step(edge.importer), _flow_step(edge.imported)
            ranked = importer in flow_order and imported in flow_order  # else reported above
            if ranked and flow_order.index(imported) >= flow_order.index(importer):
                problems.append(
                    f"{edge}: the data flow runs {' -> '.join(flow_order)}; "
                    f"{imported} is not before {importer}"
                )
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(edges)]
    return problems


def cycles(edges: list[Import]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """The shortest way from the group's first module back to itself (breadth first, inside the group)."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for step in sorted(graph[here] & members):
            if step == start:
                path = [here]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if step not in came_from:
                came_from[step] = here
                queue.append(step)
    raise AssertionError(f"{group} is not a cycle")  # Tarjan's groups always are


# --- the contract on genre_hpc ------------------------------------------------------------------


def test_genre_hpc_keeps_its_layers_and_has_no_import_cycle():
    problems = violations(PACKAGE, "genre_hpc")
    assert not problems, "layers contract broken:\n" + "\n".join(problems)


def test_only_the_cli_imports_a_stage():
    importers = {
        e.importer for e in imports(PACKAGE, "genre_hpc") if e.imported.startswith("genre_hpc.stages.")
    }
    assert importers <= {"genre_hpc.cli"}, importers


def test_the_checker_reads_the_package_it_guards():
    found = imports(PACKAGE, "genre_hpc")
    # a deferred import inside a function is seen (config checks the cluster keys in jobqueue.py)
    assert any(str(e).startswith("genre_hpc.infra.config imports genre_hpc.infra.cluster") for e in found)
    assert len({e.importer for e in found}) > 30


# --- the checker itself, on a small made-up package -----------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for relative, text in {"__init__.py": "", "core/__init__.py": "", "flow/__init__.py": "",
                           "infra/__init__.py": "", "stages/__init__.py": "", **files}.items():  # fmt: skip
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FLOW = ("first", "second")
CLEAN = {
    "core/errors.py": "",
    "flow/first.py": "from pkg.core import errors\n",
    "flow/second.py": "from . import first\nfrom ..core.errors import *\n",
    "infra/cluster.py": "import pkg.flow.second\n",
    "stages/train.py": "from pkg.flow import second\nfrom pkg.infra import tasks\n",
    "infra/tasks.py": "",
    "cli.py": "from pkg.stages import train\nfrom pkg.infra.cluster import *\n",
}


def test_the_checker_passes_a_package_that_keeps_the_rules(tmp_path):
    assert violations(_package(tmp_path, CLEAN), "pkg", FLOW) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a stage importing a stage, deferred inside a function
        (
            {"stages/tune.py": "def run():\n    from pkg.stages import train\n"},
            "pkg.stages.tune imports pkg.stages.train (line 2): the stages layer may not import the stages",
        ),
        # a stage building its own cluster
        (
            {"stages/tune.py": "import pkg.infra.cluster\n"},
            "pkg.stages.tune imports pkg.infra.cluster (line 1): stages modules receive a client",
        ),
        # the data flow reaching up into the infrastructure
        (
            {"flow/first.py": "from pkg.infra.tasks import x\n"},
            "pkg.flow.first imports pkg.infra.tasks (line 1): the flow layer may not import the infra layer",
        ),
        # a flow step importing a later one, through a relative import
        (
            {"flow/first.py": "from .second import x\n"},
            "pkg.flow.first imports pkg.flow.second (line 1): the data flow runs first -> second",
        ),
        # a cycle inside the infrastructure, where the layers alone allow both directions
        (
            {
                "infra/tasks.py": "def f():\n    import pkg.infra.cluster\n",
                "infra/cluster.py": "from . import tasks\n",
            },
            "import cycle: pkg.infra.cluster -> pkg.infra.tasks -> pkg.infra.cluster",
        ),
        # a module in no layer
        ({"helpers.py": ""}, "pkg.helpers is in no layer"),
        # a flow module without its place in the order
        ({"flow/third.py": ""}, "differ from FLOW_ORDER"),
    ],
)
def test_the_checker_names_the_import_that_breaks_a_rule(tmp_path, change, message):
    root = _package(tmp_path, {**CLEAN, **change})
    problems = violations(root, "pkg", FLOW)
    assert any(message in problem for problem in problems), problems
