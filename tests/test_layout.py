"""The package's shape (issue 22): no import cycle between iadbench modules, no private name imported from another
module, and the library core does not reach up into the pipeline shell."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from iadbench import depsclosure as dc

SRC = Path(__file__).resolve().parents[1] / "src" / "iadbench"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _modules() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _graph() -> dict[str, set[str]]:
    """module -> the iadbench modules it imports anywhere (lazy imports count), parent packages left out."""
    graph = {}
    for module in _modules():
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = {m for m in dc._module_imports(module) if m != module and m not in parents}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_iadbench_modules():
    found = cycles(_graph())
    assert not found, f"import cycles: {found}"


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("iadbench")
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]  # fmt: skip


def test_no_private_name_is_imported_from_another_module():
    found = [hit for path in [*SRC.rglob("*.py"), *BENCHMARKS.glob("*.py")] for hit in _private_imports(path)]
    assert not found, found


def test_the_library_does_not_import_the_shell():
    """Only the shell (``cli``, ``warm``, ``stages``, ``__main__``; ``depsclosure`` reads them) imports the verbs."""
    shell = ("iadbench.cli", "iadbench.warm", "iadbench.stages", "iadbench.depsclosure", "iadbench.__main__")
    found = {m: sorted(i for i in deps if i.startswith(("iadbench.stages", "iadbench.cli")))
             for m, deps in _graph().items() if not m.startswith(shell)}  # fmt: skip
    assert not {m: d for m, d in found.items() if d}


REPO = SRC.parents[1]
CITED = re.compile(
    r"(?<![\w/.-])((?:src/iadbench|tests|benchmarks|tools|docs|gx)/[\w/.-]+?\.(?:py|md|json|yaml|html))\b"
)


def cited_paths(text: str) -> set[str]:
    """Repository files a text names (``src/iadbench/...``, ``tests/...``, ``docs/...``; not generated outputs)."""
    return {m.group(1) for m in CITED.finditer(text)}


def test_the_citation_finder_finds_paths():
    assert cited_paths("see ``tests/models/probe.py`` and docs/metrics.md, not data/split.csv") == {
        "tests/models/probe.py", "docs/metrics.md"}  # fmt: skip


def test_docstrings_and_docs_cite_files_that_exist():
    """A docstring or a page that names a file of this repository names one that is there (renames leave none)."""
    texts = [*SRC.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *BENCHMARKS.glob("*.py"),
             *(REPO / "docs").glob("*.md"), REPO / "README.md", REPO / "dvc.yaml"]  # fmt: skip
    missing = sorted({f"{path} (in {text.relative_to(REPO)})" for text in texts
                      for path in cited_paths(text.read_text()) if not (REPO / path).exists()})  # fmt: skip
    assert not missing, missing
