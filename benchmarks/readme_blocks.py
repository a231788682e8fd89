"""Generated README blocks: text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` comes from artifacts."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def replace_block(name: str, lines: list[str], readme: Path = PROJECT / "README.md") -> bool:
    """Replace the block ``name`` of the README with ``lines``; False (and nothing written) if it has no such block."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1])
    return True


def save_result(name: str, result: dict, home: Path, scratch: Path | None = None) -> Path:
    """Write ``reports/bench/<name>.json``, return to ``home`` and delete the benchmark's ``scratch`` folder."""
    out = PROJECT / "reports/bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    os.chdir(home)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    return out
