"""The workflow's command lines, from one place: `import`, `annotate push` and `annotate pull` print them, and a test
checks that the annotator guide (annotation/README.md) and the README show the same lines.
"""

from __future__ import annotations

from pathlib import Path


def import_steps(name: str, added: list[Path], products: list[str]) -> list[str]:
    """After ``iadbench import``: commit the DVC files, push the data to the remote, run the pipeline on it."""
    tracked = [f"{p.as_posix()}.dvc" for p in added] + sorted({f"{p.parent.as_posix()}/.gitignore" for p in added})
    return [
        f"git add {' '.join(tracked)}",
        f'git commit -m "import {name}"',
        "dvc push",
        f"dvc exp run -S 'data.datasets=[{name}]' -S 'data.products=[{','.join(products)}]'",
    ]


def push_steps(name: str) -> list[str]:
    """After ``iadbench annotate push``: label in the browser, follow progress, pull (merging) when a sitting ends."""
    return [f"iadbench annotate status --dataset {name}", f"iadbench annotate pull --dataset {name}"]


def pull_steps(name: str, masks: bool = True) -> list[str]:
    """After ``iadbench annotate pull``: commit the export's (and, when it wrote masks, the masks') DVC files, push
    them, rebuild what reads categories and masks (no model retrains: models read neither).
    """
    if not masks:
        return [f"git add annotation/exports/{name}.json.dvc", f'git commit -m "{name} labels"', "dvc push",
                "dvc repro"]  # fmt: skip
    return [
        f"git add annotation/exports/{name}.json.dvc annotation/masks/{name}.dvc annotation/masks/.gitignore",
        f'git commit -m "{name} labels and masks"',
        "dvc push",
        "dvc repro",
    ]


def sandbox_steps(name: str) -> list[str]:
    """After ``iadbench annotate push --sandbox``: try the interface, then pull into annotation/sandbox/ to look."""
    return [
        f"iadbench annotate status --dataset {name} --sandbox",
        f"iadbench annotate pull --dataset {name} --sandbox",
    ]
