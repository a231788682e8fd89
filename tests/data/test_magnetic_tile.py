"""The real magnetic-tile dataset (../shared/data/magnetic_tile): import, manifest, gates, split.

Variable image sizes, grayscale JPEG, and four empty masks that the manifest gate must report (as warnings by
default: the images are anomalous, only their defect is too faint to outline).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iadbench.cli import main
from iadbench.data.manifest import read_table
from tests.conftest import TINY, copy_gx, tree_digest

SOURCE = Path(
    os.environ.get("IADBENCH_MAGNETIC_TILE", Path(__file__).resolve().parents[3] / "shared/data/magnetic_tile")
)
pytestmark = [
    pytest.mark.slow(seconds=13),
    pytest.mark.skipif(not (SOURCE / "tile").is_dir(), reason=f"real data not found at {SOURCE}"),
]
DEFECT_MAP = "blowhole=structural,break=structural,crack=structural,fray=structural,uneven=surface"


def test_magnetic_tile_through_the_data_stages(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    copy_gx(tmp_path)  # the gates' suites
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], check=True)
    before = tree_digest(SOURCE)
    args = ["import", str(SOURCE), "--name", "magnetic_tile", "--background", "without", "--defect-map", DEFECT_MAP]
    assert main(args) == 0
    assert tree_digest(SOURCE) == before
    from iadbench.annotation.workflow import import_steps

    added = [Path("data/raw/magnetic_tile"), Path("annotation/exports/magnetic_tile.json")]
    printed = capsys.readouterr().out
    assert all(f"  {line}\n" in printed for line in import_steps("magnetic_tile", added, ["tile"])), printed
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({**TINY, "data": {"dataset": "magnetic_tile", "image_size": 64}})
    )
    for verb in (["--quiet", "manifest"], ["gate", "manifest"], ["categories"], ["gate", "categories"], ["split"],
                 ["gate", "split"], ["summary"]):  # fmt: skip
        assert main(verb) == 0, verb
    manifest = read_table(Path("data/manifest.csv"))
    assert len(manifest) == 762 + 190 + 392
    assert manifest["width"].nunique() > 10 and set(manifest["channels"]) == {1} and set(manifest["format"]) == {"JPEG"}
    gate = json.loads(Path("reports/gates/manifest.json").read_text())
    empty = [v for v in gate["violations"] if "marks at least one pixel" in v["rule"]]
    assert gate["success"] and len(empty) == 4 and all(v["severity"] == "warning" for v in empty)
    summary = json.loads(Path("reports/data_summary.json").read_text())
    assert summary["images"] == {"total": 1344, "train": 762, "validation": 175, "test": 407}
    assert summary["masks"]["empty"] == 4
    imported = tree_digest(Path("data/raw/magnetic_tile"))
    assert imported.pop("import.json") and imported == before  # a verbatim copy plus the import record
