"""Typed records of the per-cell files that several stages read: ``reports/thresholds/<model>/<product>.json``
(written by the thresholds stage; read by evaluate and the report) and ``reports/evaluate/<model>/<product>.json``
(written by evaluate; read by the metrics stage, the report and the benchmarks).

The field order is the files' key order, so a record written with :meth:`to_json` is the file byte for byte. A file
missing a field (an older format, a hand edit) is refused with its path and the fields it lacks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from iadbench.errors import InputError
from iadbench.evaluation.cells import json_ready

R = TypeVar("R", bound="_Record")


class _Record:
    KIND = "record"

    @classmethod
    def read(cls: type[R], path: Path) -> R:
        """The record in ``path``; an :class:`InputError` names the file when it is absent, not JSON or incomplete."""
        if not path.is_file():
            raise InputError(path, f"{cls.KIND} file not found", "run its stage first (dvc repro)")
        return cls.parse(path.read_text(), path)

    @classmethod
    def parse(cls: type[R], text: str, path: Path | str) -> R:
        """The record in ``text`` (read from ``path``, which the errors name: a file of the workspace or of a
        commit).
        """
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(path, "not valid JSON", str(exc)) from exc
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        missing = [n for n in names if n not in doc]
        if missing:
            raise InputError(path, f"not a {cls.KIND} file of this version", f"missing {', '.join(missing)}; rerun "
                             "its stage (dvc repro)")  # fmt: skip
        return cls(**{n: doc[n] for n in names})

    def to_json(self) -> dict[str, Any]:
        """The JSON document (NaN and inf as null)."""
        return json_ready(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ThresholdsRecord(_Record):
    """Every rule fitted on one cell's validation split (rule → :class:`~iadbench.metrics.curves.FittedThreshold`)."""

    KIND = "thresholds"

    model: str
    product: str
    dataset: str | None
    split_fingerprint: str  # the split the thresholds were fitted on (evaluate refuses another)
    validation: dict[str, int]  # images, good, anomalous (and pixels, defect_pixels, empty_mask_excluded)
    image: dict[str, dict[str, Any]]
    image_notes: list[str]
    pixel: dict[str, dict[str, Any]] | None  # None: the model writes no maps
    pixel_notes: list[str]

    def level(self, level: str) -> dict[str, dict[str, Any]]:
        """The rules fitted at ``level`` (image or pixel); empty when none."""
        return (self.image if level == "image" else self.pixel) or {}


@dataclass(frozen=True)
class EvaluateRecord(_Record):
    """One cell on its test split: threshold-free metrics and the figures at every rule, per level."""

    KIND = "evaluate"

    model: str
    product: str
    dataset: str | None
    split_fingerprint: str
    image_score: str  # map_max | model | unknown (from the predict record)
    test: dict[str, Any]  # images, good, anomalous, anomalous_with_mask, mask_sources, mask_sources_excluded
    rule_used: dict[str, dict[str, str | None]]  # level -> rule -> the rule that stood in (good-only) or None
    notes: list[str]
    image: dict[str, Any]  # threshold-free metrics, and "at": rule -> figures
    pixel: dict[str, Any] | None  # None: no maps
    weights: dict[str, Any]
    versions: dict[str, str]
    training: dict[str, Any]  # epochs, epochs_rule, epochs_full (from the predict record; empty for SegAD setups)

    def used(self, rule: str) -> str | None:
        """The rule behind ``rule``'s figures: pixel level where the cell has maps, else image level."""
        return (self.rule_used["pixel"] or self.rule_used["image"]).get(rule)
