"""Every src/iadbench module a stage's command can import is among its dvc.yaml deps (issue: trust DVC)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iadbench import depsclosure as dc

PROJECT = Path(__file__).resolve().parents[1]
DVC_YAML = PROJECT / "dvc.yaml"


def test_every_stage_lists_its_import_closure():
    report = dc.stage_report(DVC_YAML)
    assert {"check_params", "train", "predict", "metrics", "report", "gate_manifest"} <= set(report)
    missing = {stage: r["missing"] for stage, r in report.items() if r["missing"]}
    assert not missing, "deps missing from dvc.yaml (python -m iadbench.depsclosure): " + repr(missing)
    extra = {stage: r["extra"] for stage, r in report.items() if r["extra"]}
    assert not extra, "source deps no import reaches (a change there reruns the stage for nothing): " + repr(extra)


def test_a_source_dep_no_import_reaches_is_reported(tmp_path):
    """The precision check can fail: give the thresholds stage a dep on the studies package, which it never imports."""
    text = DVC_YAML.read_text()
    anchor = "  thresholds: &thresholds"
    deps = text.index("    deps:\n", text.index(anchor)) + len("    deps:\n")
    broken = tmp_path / "dvc.yaml"
    broken.write_text(text[:deps] + "      - src/iadbench/studies\n" + text[deps:])
    report = dc.stage_report(broken)
    assert report["thresholds"]["extra"] == ["src/iadbench/studies"]
    assert report["thresholds_segad"]["extra"] == ["src/iadbench/studies"]  # the YAML anchor carries it over


def test_exemptions_are_few_named_and_real():
    exempt = dc.exemptions(DVC_YAML)
    assert 0 < len(exempt) <= dc.MAX_EXEMPT
    for module, why in exempt.items():
        assert dc.module_file(module) is not None, module
        assert len(why) > 10, f"{module}: say why it cannot change a result"


def test_a_missing_dep_and_a_lazy_import_are_found(tmp_path):
    """The check can fail: remove the models folder from train's deps; models/dataset.py, which only run.py imports
    and only inside a function, is then reported missing.
    """
    text = DVC_YAML.read_text()
    folder = re.search(r"^      - src/iadbench/models(  #.*)?\n", text, re.MULTILINE)
    assert folder and text.index("  train:") < folder.start() < text.index("  predict:")
    broken = tmp_path / "dvc.yaml"
    broken.write_text(text[: folder.start()] + text[folder.end() :])
    report = dc.stage_report(broken)
    assert "src/iadbench/models/dataset.py" in report["train"]["missing"]
    assert not report["predict"]["missing"]  # only train lost it
    # the lazy import (inside predict_cell) is what brings the drift module to predict
    assert "src/iadbench/data/drift.py" in report["predict"]["imports"]


def test_closure_follows_relative_and_submodule_imports():
    closure = dc.closure({"iadbench.evaluation.thresholds"})
    assert {"iadbench.metrics.curves", "iadbench.evaluation.cells", "iadbench.metrics", "iadbench"} <= closure
    assert "iadbench.models.run" not in closure  # stages import only what they use


@pytest.mark.parametrize(
    ("cmd", "verb", "argv"),
    [
        ("MALLOC_MMAP_THRESHOLD_=1 HF_HUB_OFFLINE=1 iadbench train --model ${item.model} --product x", "train", []),
        ("iadbench --quiet synthesize", "synthesize", []),
        ("iadbench gate maps", "gate", ["maps"]),
    ],
)
def test_commands_parse(cmd, verb, argv):
    assert dc.parse_command(cmd) == (verb, argv)


def test_the_console_script_is_a_root_of_every_stage(tmp_path):
    """``iadbench`` runs :data:`ENTRY_POINT` first (pyproject's script); with its exemption lifted a stage misses it."""
    import tomllib

    scripts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["iadbench"].split(":")[0] == dc.ENTRY_POINT
    assert dc.ENTRY_POINT in dc.verb_roots("metrics", [])
    lifted = tmp_path / "dvc.yaml"
    lifted.write_text(DVC_YAML.read_text().replace("# deps-exempt: iadbench.warm", "# iadbench.warm"))
    assert "src/iadbench/warm.py" in dc.stage_report(lifted)["metrics"]["missing"]


def test_bytecode_beside_a_source_folder_dep_changes_nothing(tmp_path, monkeypatch):
    """A stage that depends on a source folder stays up to date when Python writes ``__pycache__`` into it (as it
    does on every machine without PYTHONDONTWRITEBYTECODE): the project's ``.dvcignore`` leaves bytecode out.
    Without those lines the status names the folder (checked by writing the ignore file without them)."""
    from dvc.repo import Repo

    def status_after_bytecode(ignore: str, root: Path) -> dict:
        root.mkdir()
        monkeypatch.chdir(root)  # DVC resolves a repository's targets from the working directory
        repo = Repo.init(root, no_scm=True)
        (root / ".dvcignore").write_text(ignore)
        (root / "pkg").mkdir()
        (root / "pkg" / "mod.py").write_text("X = 1\n")
        (root / "dvc.yaml").write_text(
            "stages:\n  s:\n    cmd: echo ran > out.txt\n    deps: [pkg]\n    outs: [out.txt]\n"
        )
        repo.reproduce()
        cache = root / "pkg" / "__pycache__"
        cache.mkdir()
        (cache / "mod.cpython-311.pyc").write_bytes(b"\x00bytecode")
        return Repo(root).status()

    project_ignore = (PROJECT / ".dvcignore").read_text()
    assert status_after_bytecode(project_ignore, tmp_path / "project") == {}
    without = "\n".join(line for line in project_ignore.splitlines() if "py" not in line)
    assert status_after_bytecode(without, tmp_path / "without") == {"s": [{"changed deps": {"pkg": "modified"}}]}


def test_the_exempt_modules_are_dvc_yamls():
    assert set(dc.exemptions(DVC_YAML)) == dc.EXEMPT_MODULES


def test_code_fingerprints_change_exactly_for_the_verbs_that_import_the_changed_file():
    def workspace(path: str) -> str | None:
        file = dc.SRC.parent / path
        return file.read_text() if file.is_file() else None

    def edited(path: str) -> str | None:
        text = workspace(path)
        return text + "\n# edited\n" if path == "src/iadbench/models/run.py" else text

    before, after = dc.code_fingerprints(workspace), dc.code_fingerprints(edited)
    assert set(before) == set(dc.NUMBER_VERBS) and before == dc.code_fingerprints(workspace)  # deterministic
    assert {verb for verb in before if before[verb] != after[verb]} == {"train", "predict", "segad-features"}
    # a file the other side lacks (a module imported since its commit) counts as a change
    missing = dc.code_fingerprints(lambda p: None if p.endswith("metrics/curves.py") else workspace(p), ("metrics",))
    assert missing["metrics"] != before["metrics"]
