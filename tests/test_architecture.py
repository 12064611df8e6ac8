"""The package's layout: data flows one way (no import circle) and each module says what it owns.

Imports are read from the source (every ``import`` statement, also those inside functions, which
Python runs later but which still tie two modules together), so the test needs no TensorFlow.
docs/architecture.md draws the flow these tests hold the code to.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kwsnb"
MAX_LINES = 600  # a longer module holds two jobs: split it


def module_files() -> dict[str, Path]:
    """kwsnb's modules by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the kwsnb modules it imports (``from kwsnb import x`` counts as kwsnb.x when x
    is a module, else as kwsnb)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                    + ([base] if base else []))
                if base.split(".")[0] != "kwsnb":
                    continue
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    edges.add(child if child in modules else base)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_import_graph_reads_imports_inside_functions_too(tmp_path):
    modules = module_files()
    graph = import_graph(modules)
    # kwsnb.notebooks.plots imports kwsnb.streaming only inside a function.
    assert "kwsnb.streaming" in graph["kwsnb.notebooks.plots"]
    assert "kwsnb.pipeline" in graph["kwsnb.train.__main__"]


def test_kwsnb_has_no_import_cycle():
    cycle = find_cycle(import_graph(module_files()))
    assert cycle is None, ("kwsnb modules import each other in a circle: "
                           + " -> ".join(cycle) + " (docs/architecture.md: data flows one way)")


# The stages in the order data flows through them (docs/architecture.md); each may import only
# the stages before it. The entry points (pipeline, demo, sweep, every __main__) come last.
STAGES = ["kwsnb.data", "kwsnb.features", "kwsnb.layers", "kwsnb.models", "kwsnb.streaming",
          "kwsnb.train", "kwsnb.tflite", "kwsnb.micro", "kwsnb.evaluate", "kwsnb.notebooks",
          "kwsnb.pipeline", "kwsnb.demo"]
PAIRS = [(lower, higher) for i, lower in enumerate(STAGES) for higher in STAGES[i + 1:]]


def test_every_module_belongs_to_a_stage():
    stray = [name for name in module_files() if name not in ("kwsnb", "kwsnb.sweep")
             and not any(name == s or name.startswith(s + ".") for s in STAGES)]
    assert not stray, (f"modules outside the stages {STAGES}: {stray}; put each in the "
                       "subpackage its data passes through (docs/architecture.md)")


@pytest.mark.parametrize("lower, higher", PAIRS)
def test_a_lower_stage_never_reaches_a_higher_one(lower, higher):
    graph = import_graph(module_files())
    # A package's __main__ is a command-line entry point, above every stage.
    reached, todo = set(), [m for m in graph if (m == lower or m.startswith(lower + "."))
                            and not m.endswith(".__main__")]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph.get(module, ())
    climbed = sorted(m for m in reached if m == higher or m.startswith(higher + "."))
    assert not climbed, f"{lower} reaches {higher} through its imports ({climbed})"


def test_the_litert_runtime_needs_only_the_stream_runner():
    graph = import_graph(module_files())
    assert graph["kwsnb.tflite.runtime"] <= {"kwsnb.streaming", "kwsnb.streaming.runner"}


@pytest.mark.parametrize("name", sorted(module_files()))
def test_every_module_says_in_its_docstring_what_it_owns(name):
    path = module_files()[name]
    if path.name == "__init__.py" and not path.read_text().strip():
        pytest.skip("empty package marker")
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring and len(docstring.split()) >= 4, f"{path} needs a docstring saying what it owns"


def test_no_module_is_longer_than_one_job():
    too_long = {name: len(path.read_text().splitlines())
                for name, path in module_files().items()
                if len(path.read_text().splitlines()) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}; split them by job"
