"""One source for the workflow's commands: the hints the CLI prints are the lines the guide and the README show."""

from pathlib import Path

import pytest

from iadbench.annotation.workflow import import_steps, pull_steps, push_steps

PROJECT = Path(__file__).resolve().parents[2]
ADDED = [Path("data/raw/magnetic_tile"), Path("annotation/exports/magnetic_tile.json")]
STEPS = {
    "import": import_steps("magnetic_tile", ADDED, ["tile"]),
    "push": push_steps("magnetic_tile"),
    "pull": pull_steps("magnetic_tile"),
    "pull_masks": pull_steps("my_part", masks=True),
}


@pytest.mark.parametrize(
    "doc, kinds", [("annotation/README.md", ("import", "push", "pull", "pull_masks")), ("README.md", ("import",))]
)
def test_the_docs_show_the_lines_the_cli_prints(doc, kinds):
    text = (PROJECT / doc).read_text()
    missing = [line for kind in kinds for line in STEPS[kind] if line not in text]
    assert not missing, f"{doc} does not show {missing} (annotation/workflow.py is the source)"


def test_the_steps_name_the_files_import_wrote():
    assert STEPS["import"][0] == ("git add data/raw/magnetic_tile.dvc annotation/exports/magnetic_tile.json.dvc "
                                  "annotation/exports/.gitignore data/raw/.gitignore")  # fmt: skip
    assert STEPS["import"][-1] == "dvc exp run -S 'data.datasets=[magnetic_tile]' -S 'data.products=[tile]'"
