"""The ``src/iadbench`` modules a DVC stage's command can import, and which of them its ``deps`` do not cover.

DVC reruns a stage when one of its ``deps`` changes, so a module the command imports but the stage does not list
leaves results stale after a code change. The closure is computed statically from the source (``ast``), so imports
inside functions (the lazy ones) count as well as those at the top of a module:

- the roots are the console script's module (:data:`ENTRY_POINT`, ``[project.scripts]``), the top-level imports
  of :mod:`iadbench.cli` and of every verb's module (each is imported to build the parser), :mod:`iadbench.stages`
  and the verb's own module in :mod:`iadbench.stages` (``iadbench gate NAME`` adds ``iadbench.gates.NAME``, which
  :func:`iadbench.gates.load` imports by name);
- from each module every ``import iadbench...`` / ``from iadbench... import x`` anywhere in it is followed (``x`` when
  it is a submodule), and a package's ``__init__`` with it (Python runs it first);
- modules named on a ``# deps-exempt: MODULE — why`` line of ``dvc.yaml`` are left out (at most five).

A dep covers a module when it is the module's file or a folder above it. ``python -m iadbench.depsclosure`` prints
every stage's missing deps; ``tests/test_depsclosure.py`` fails on any.

:func:`code_fingerprints` hashes, per verb that shapes the results, the files of that closure (what its stages'
``src/`` deps cover): the report compares a study's fingerprints, taken from its baseline commit, with today's, to
say whether the code behind the study's numbers changed since.
"""

from __future__ import annotations

import ast
import hashlib
import re
import shlex
from collections.abc import Callable
from functools import cache
from pathlib import Path

import yaml

PACKAGE = "iadbench"
SRC = Path(__file__).resolve().parents[1]  # src/
EXEMPT_LINE = re.compile(r"^\s*#\s*deps-exempt:\s*([\w.]+)\s+[—-]+\s+(\S.*)$")
MAX_EXEMPT = 5
ENTRY_POINT = "iadbench.warm"  # `iadbench` = iadbench.warm:main (pyproject.toml; a test checks they agree)
ALWAYS_CALLED = ("main", "build_parser")  # functions of iadbench.cli every verb runs
# the modules on dvc.yaml's `# deps-exempt:` lines (a test checks that they agree): they cannot change a result
EXEMPT_MODULES = frozenset({"iadbench", "iadbench.cli", "iadbench.errors", "iadbench.warm", "iadbench.resources"})
# the verbs whose outputs the headline numbers are computed from (data, models, maps, thresholds, evaluation, tables)
NUMBER_VERBS = ("synthesize", "manifest", "categories", "split", "train", "predict", "segad-features", "segad",
                "thresholds", "evaluate", "metrics")  # fmt: skip


def module_file(module: str) -> Path | None:
    """The source file of ``iadbench.x.y`` (``x/y.py`` or ``x/y/__init__.py``), or None when there is none."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST, module: str) -> set[str]:
    """The ``iadbench`` modules an AST imports (relative imports resolved against ``module``)."""
    found: set[str] = set()
    is_package = module_file(module) is not None and module_file(module).name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            found.add(target)
            for alias in node.names:  # `from iadbench.metrics import counts` imports a submodule
                if module_file(f"{target}.{alias.name}") is not None:
                    found.add(f"{target}.{alias.name}")
    return {m for m in found if module_file(m) is not None}


@cache
def _module_imports(module: str) -> frozenset[str]:
    path = module_file(module)
    return frozenset(_imports(ast.parse(path.read_text(), str(path)), module))


def _with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(roots: set[str], exempt: set[str] = frozenset()) -> set[str]:
    """Every module reachable from ``roots`` through imports (parents' ``__init__`` included), minus ``exempt``."""
    seen: set[str] = set()
    todo = [p for r in roots for p in _with_parents(r)]
    while todo:
        module = todo.pop()
        if module in seen or module in exempt or module_file(module) is None:
            continue
        seen.add(module)
        for imported in _module_imports(module):
            todo.extend(_with_parents(imported))
    return seen


def _top_level_imports(module: str) -> set[str]:
    path = module_file(module)
    tree = ast.parse(path.read_text(), str(path))
    return _imports(ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
                               type_ignores=[]), module)  # fmt: skip


def verb_roots(verb: str, argv: list[str]) -> set[str]:
    """What ``iadbench <verb> ...`` imports: the console script's module, :mod:`iadbench.cli`'s top level and the
    functions every verb runs, the top level of every verb's module (the parser imports them all), and the verb's
    own module whole (the other verbs' ``run`` is never called, so its imports are not followed).
    """
    from iadbench import stages

    path = module_file(f"{PACKAGE}.cli")
    tree = ast.parse(path.read_text(), str(path))
    roots = _top_level_imports(f"{PACKAGE}.cli") | {ENTRY_POINT, f"{PACKAGE}.stages"}
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for called in ALWAYS_CALLED:  # what every verb runs: the parser, main
        roots |= _imports(funcs[called], f"{PACKAGE}.cli")
    modules = stages.module_names()
    if verb not in modules:
        raise ValueError(f"iadbench.stages has no module for the verb {verb!r}")
    for module in modules.values():
        roots |= _top_level_imports(module)
    roots.add(modules[verb])
    if verb == "gate":
        roots.add(f"{PACKAGE}.gates.{argv[0]}")
    return roots


def parse_command(cmd: str) -> tuple[str, list[str]]:
    """``(verb, positional arguments)`` of a stage's ``cmd`` (``ENV=x iadbench --quiet train --model m``)."""
    words = shlex.split(cmd)
    words = words[words.index(PACKAGE) + 1 :]
    words = [w for w in words if w not in ("--quiet",)]
    verb, rest = words[0], words[1:]
    positional = []
    for word in rest:
        if word.startswith("--"):
            break
        positional.append(word)
    return verb, positional


def exemptions(dvc_yaml: Path) -> dict[str, str]:
    """``module -> why`` from the ``# deps-exempt:`` lines of ``dvc.yaml``."""
    out = {}
    for line in dvc_yaml.read_text().splitlines():
        if m := EXEMPT_LINE.match(line):
            out[m.group(1)] = m.group(2)
    return out


def relative_file(module: str) -> str:
    """The file of a module relative to the repository (``iadbench.<x>.<y>`` is ``src/iadbench/<x>/<y>.py``)."""
    return module_file(module).relative_to(SRC.parent).as_posix()


def covered(path: str, deps: list[str]) -> bool:
    """A dep covers ``path`` when it is the file or a folder above it."""
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in deps)


def stage_report(dvc_yaml: Path) -> dict[str, dict[str, list[str]]]:
    """Per stage of ``dvc.yaml``: ``imports`` (files of its closure), ``missing`` (those no dep covers) and ``extra``
    (source deps that cover none of them: a change there would rerun the stage for nothing).
    """
    spec = yaml.safe_load(dvc_yaml.read_text())["stages"]
    exempt = set(exemptions(dvc_yaml))
    out = {}
    for name, stage in spec.items():
        stage = stage.get("do", stage)  # a foreach stage: its template (the same command and deps for every item)
        cmd = stage["cmd"]  # YAML merge keys (<<: *anchor) are resolved by the loader
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps") or []]
        verb, argv = parse_command(cmd)
        modules = closure(verb_roots(verb, argv), exempt)
        if f"{PACKAGE}.cli" not in exempt:  # the verb's function only, not every verb's imports (verb_roots)
            modules.add(f"{PACKAGE}.cli")
        files = sorted(relative_file(m) for m in modules)
        sources = [d for d in deps if d.startswith(f"{SRC.name}/")]
        out[name] = {
            "imports": files,
            "missing": [f for f in files if not covered(f, deps)],
            "extra": [d for d in sources if not any(covered(f, [d]) for f in files)],
        }
    return out


def code_fingerprints(read: Callable[[str], str | None], verbs: tuple[str, ...] = NUMBER_VERBS) -> dict[str, str]:
    """Per verb, the md5 of the source its stages' results depend on: every file of the verb's import closure but
    :data:`EXEMPT_MODULES` (what the stage's ``src/`` deps cover), each as ``path NUL text NUL``, in path order.

    Args:
        read: a repository-relative path's text (the workspace, or a commit's through ``git show``); None where the
            file does not exist there, which hashes as absent.
        verbs: the verbs to fingerprint (default :data:`NUMBER_VERBS`).

    Returns:
        ``{verb: md5 hex digest}``. The closure is today's: a module imported since the other side's commit is a
        file that side lacks, so it differs.

    """
    out = {}
    for verb in verbs:
        digest = hashlib.md5()
        for path in sorted(relative_file(m) for m in closure(verb_roots(verb, []), set(EXEMPT_MODULES))):
            text = read(path)
            digest.update(f"{path}\0{'<absent>' if text is None else text}\0".encode())
        out[verb] = digest.hexdigest()
    return out


def main() -> int:
    """Print each stage's missing and extra source deps; exit 1 when any."""
    report = stage_report(Path("dvc.yaml"))
    bad = 0
    for name, r in report.items():
        for kind in ("missing", "extra"):
            if r[kind]:
                bad += 1
                print(f"{name}: {len(r[kind])} {kind}: " + " ".join(r[kind]))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
