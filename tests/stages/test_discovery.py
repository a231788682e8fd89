"""The verbs are the modules of ``iadbench.stages``: discovered, light to import, and each one a `dvc.yaml` stage
command or a user verb."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from iadbench import stages
from iadbench.cli import build_parser, main
from iadbench.depsclosure import parse_command

PROJECT = Path(__file__).resolve().parents[2]
USER_VERBS = {"annotate", "import", "infer", "models", "recommend", "study"}


def test_every_dvc_stage_command_is_a_discovered_verb_and_every_verb_is_a_stage_or_a_user_verb():
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    used = {parse_command(stage.get("do", stage)["cmd"])[0] for stage in spec.values()}  # foreach: its template
    verbs = set(stages.module_names())
    assert used <= verbs
    assert verbs - used == USER_VERBS
    assert stages.verb_of("gate_docs") == "gate-docs" and stages.verb_of("import_") == "import"


def test_building_the_parser_imports_no_heavy_library():
    """Every command imports every verb's module (the parser): their top levels must stay light."""
    code = ("import sys; from iadbench.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'lightning', 'anomalib', 'PIL', 'sklearn', "
            "'great_expectations', 'matplotlib', 'pydantic') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_new_module_is_a_new_verb(tmp_path, monkeypatch, capsys):
    (tmp_path / "hello_world.py").write_text(
        'HELP = "say hello"\n\n\ndef add_arguments(parser):\n    parser.add_argument("--name", default="you")\n\n\n'
        'def run(args):\n    print(f"hello {args.name}")\n'
    )
    monkeypatch.setattr(stages, "__path__", [*stages.__path__, str(tmp_path)])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "iadbench.stages.hello_world", __import__("hello_world"))
    assert "hello-world" in build_parser().format_help()
    assert main(["hello-world", "--name", "iadbench"]) == 0
    assert capsys.readouterr().out == "hello iadbench\n"


def test_declared_imports_are_importable_modules():
    import importlib.util

    declared = stages.imports()
    assert {"train", "predict", "gate"} <= set(declared)
    for verb, modules in declared.items():
        for module in modules:
            assert importlib.util.find_spec(module) is not None, (verb, module)
