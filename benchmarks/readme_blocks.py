"""Generated README blocks: text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` comes from artifacts."""

from __future__ import annotations

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
