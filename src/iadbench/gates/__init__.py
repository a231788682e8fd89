"""Validation gates: Great Expectations 1.x suites over the manifest, categories and split tables.

Each gate is a DVC stage whose JSON result the next stage depends on. A gate validates one or more tables; every
failed expectation becomes one violation per offending row, naming the **file** (the image, mask or product
folder), the **rule** in words, and the values that broke it. Rules of severity ``error`` fail the gate (the stage
exits non-zero, so nothing downstream runs); ``warning`` rules are reported and recorded but let data through.

Great Expectations is imported lazily: it takes several seconds, and only the gate verbs need it.

One module per gate (``manifest``, ``categories``, ``split``, ``maps``), each with a ``DESCRIPTION`` and
``run(params) -> GateResult`` that reads its own files: :func:`available` lists the modules of this package, so a new
gate is one module here (plus its DVC stage ``iadbench gate NAME`` and its test) and the CLI offers it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by the gate modules; the CLI lists the gates without it
    import pandas as pd

ERROR, WARNING = "error", "warning"
FINITE = 3.4e38  # float32's largest: a score, map value or threshold beyond it (or inf, NaN) is no usable number


@dataclass(frozen=True)
class Rule:
    """One expectation on one table, with the words a user reads when it fails."""

    table: str
    rule: str
    expectation: Any  # a great_expectations.expectations.Expectation
    file_column: str | None = None  # column naming the offending file (None: a table-level rule)
    detail_columns: tuple[str, ...] = ()
    severity: str = ERROR


@dataclass(frozen=True)
class Table:
    """A table to validate, and the file it came from (named in table-level violations)."""

    path: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Violation:
    """One row (or one table) that broke one rule."""

    severity: str
    rule: str
    file: str
    detail: str

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.severity.upper()} {self.file}: rule: {self.rule}{tail}"


@dataclass
class GateResult:
    """Outcome of one gate: per-rule summary and every violation."""

    gate: str
    rules: list[dict] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def errors(self) -> list[Violation]:
        """Violations of error severity."""
        return [v for v in self.violations if v.severity == ERROR]

    @property
    def warnings(self) -> list[Violation]:
        """Violations of warning severity."""
        return [v for v in self.violations if v.severity == WARNING]

    @property
    def success(self) -> bool:
        """True when no error-severity rule failed."""
        return not self.errors

    def to_dict(self) -> dict:
        """JSON-ready result with stable ordering."""
        return {
            "gate": self.gate,
            "success": self.success,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "rules": self.rules,
            "violations": [asdict(v) for v in self.violations],
        }

    def write(self, path: Path) -> None:
        """Write the result JSON (also on failure, so the user can read it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")


def _context() -> Any:
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="great_expectations")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _fmt(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return str(value)


def run_gate(gate: str, tables: dict[str, Table], rules: list[Rule]) -> GateResult:
    """Validate each table against its rules with one Great Expectations suite per table."""
    import great_expectations as gx

    context = _context()
    source = context.data_sources.add_pandas(f"{gate}_source")
    result = GateResult(gate=gate)
    for table_name, table in tables.items():
        table_rules = [r for r in rules if r.table == table_name]
        if not table_rules:
            continue
        batch = (
            source.add_dataframe_asset(table_name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": table.frame.reset_index(drop=True)})
        )
        suite = context.suites.add(gx.ExpectationSuite(name=f"{gate}.{table_name}"))
        for rule in table_rules:
            suite.add_expectation(rule.expectation)
        id_columns = sorted(
            {c for r in table_rules for c in ((r.file_column,) if r.file_column else ()) + r.detail_columns}
        )
        outcome = batch.validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": id_columns or None}
        )
        by_id = {r.expectation.id: r for r in table_rules}
        for item in outcome.results:
            rule = by_id[item.expectation_config.id]
            summary = item.result or {}
            result.rules.append(
                {
                    "table": table.path,
                    "rule": rule.rule,
                    "severity": rule.severity,
                    "expectation": item.expectation_config.type,
                    "success": bool(item.success),
                    "unexpected_count": int(summary.get("unexpected_count") or 0),
                }
            )
            if item.success:
                continue
            rows = summary.get("unexpected_index_list") or []
            if rule.file_column is None or not rows:
                observed = summary.get("observed_value")
                detail = f"observed {_fmt(observed)}" if observed is not None else ""
                result.violations.append(Violation(rule.severity, rule.rule, table.path, detail))
                continue
            for row in rows:
                detail = ", ".join(f"{c}={_fmt(row[c])}" for c in rule.detail_columns if c in row)
                result.violations.append(Violation(rule.severity, rule.rule, _fmt(row[rule.file_column]), detail))
    result.violations.sort(key=lambda v: (v.severity != ERROR, v.rule, v.file))
    return result


# ------------------------------------------------------------------------------------------------- suites
def product_counts(images: pd.DataFrame, split_column: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Per product: number of images per (split, label), as columns ``n_<split>_<label>``; ``required`` columns
    that no image fills are 0 (so a product missing a kind of image fails its rule instead of a KeyError).
    """
    counts = images.groupby(["product", split_column, "label"]).size().unstack([1, 2], fill_value=0)
    counts.columns = [f"n_{s}_{lbl}" for s, lbl in counts.columns]
    counts = counts.reset_index()
    for column in required:
        if column not in counts:
            counts[column] = 0
    return counts


def available() -> list[str]:
    """The gates: the public modules of this package (listed without importing them)."""
    import pkgutil

    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> Any:
    """The module of gate ``name`` (``run(params)``, ``DESCRIPTION``)."""
    import importlib

    if name not in available():
        raise ValueError(f"unknown gate {name!r}; one of {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")
