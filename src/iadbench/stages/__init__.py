"""One module per ``iadbench`` verb: the pipeline shell (each `dvc.yaml` stage's ``cmd`` is one of these verbs;
``annotate``, ``import``, ``models``, ``recommend`` and ``study`` are the user's own).

A verb's module is the code between the command line and the library: it reads ``params.yaml`` (:func:`read_params`),
resolves the artifact paths (:mod:`iadbench.paths`), calls the library (``models``, ``metrics``, ``data``,
``evaluation``, ``segad``) and prints what it wrote. It defines

- ``HELP``: the one-line help of ``iadbench --help``;
- ``run(args)``: the work (heavy imports inside it, so that building the parser stays light);
- optionally ``add_arguments(parser)`` and ``IMPORTS`` (the modules the verb imports before any work: the warm
  worker of :mod:`iadbench.warm` preloads them, ``benchmarks/repro_speed.py`` times them).

:mod:`iadbench.cli` discovers the modules (as :mod:`iadbench.gates` discovers gates): adding a verb is adding a
module. The verb is the module's name with ``_`` read as ``-`` (``gate_docs`` → ``gate-docs``; a trailing ``_``
dropped: ``import_`` → ``import``). A module's top level imports only the standard library and these light
modules, since every command imports every verb's module to build its parser (``tests/test_cli.py`` checks it; the
import closure of a stage counts only its own module's imports: :mod:`iadbench.depsclosure`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType


def read_params(args: argparse.Namespace) -> dict:
    """The validated ``params.yaml`` (``--params``)."""
    from iadbench.params import load_params

    return load_params(args.params)


TORCH_LIBRARIES = ("torch", "lightning", "anomalib.engine")  # what a verb that runs a network imports first


def add_cell_arguments(parser: argparse.ArgumentParser, unit: str = "--model",
                       help_: str = "a registry name (iadbench models lists them)") -> None:  # fmt: skip
    """A (unit, product) cell's two arguments: ``--model`` (or ``--detector``/``--setup``) and ``--product``."""
    parser.add_argument(unit, required=True, help=help_)
    parser.add_argument("--product", required=True)


def verb_of(module_name: str) -> str:
    """``gate_docs`` → ``gate-docs``, ``import_`` → ``import``."""
    return module_name.rstrip("_").replace("_", "-")


def module_names() -> dict[str, str]:
    """Verb -> module name (``iadbench.stages.<name>``), sorted by verb, without importing any of them."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return dict(sorted((verb_of(name), f"{__name__}.{name}") for name in names))


def load(verb: str) -> ModuleType:
    """The module of one verb."""
    return importlib.import_module(module_names()[verb])


def imports() -> dict[str, tuple[str, ...]]:
    """Verb -> the modules it imports before any work (``IMPORTS``; the verbs that declare none are left out)."""
    out = {}
    for verb in module_names():
        declared = getattr(load(verb), "IMPORTS", ())
        if declared:
            out[verb] = tuple(declared)
    return out
