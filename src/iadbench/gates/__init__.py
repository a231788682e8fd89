"""Validation gates: checkpoints of the project's Great Expectations suites over the data and the results.

The rules live in the Great Expectations project ``gx/`` (a file data context committed with the code): one
expectation suite per table (``gx/expectations/<gate>/<table>.json``), one checkpoint per gate
(``gx/checkpoints/<gate>.json``) over the CSV assets of the ``gate_facts`` data source. A gate module computes the
facts its suites read (the manifest as it is, or one row per (cell, image) with what the file holds and what the split
expects) and the values of the suites' ``$PARAMETER`` values from ``params.yaml``; :func:`run_checkpoint` writes the
facts, runs the checkpoint and turns every failed expectation into one violation per offending row, naming the
**file** (the image, mask, product folder or result file), the **rule** in words (the expectation's ``meta.rule``)
and the values that broke it (``meta.detail_columns``). Expectations of GX severity ``critical`` fail the gate (the
stage exits non-zero, so nothing downstream runs); ``warning`` ones are reported and recorded but let data through.

Each gate is a DVC stage ``iadbench gate NAME`` whose JSON result the next stage depends on; ``iadbench gate-docs``
renders GX's Data Docs from the results, offline. Great Expectations is imported lazily: it takes several seconds,
and only the gate verbs need it.

One module per gate (``manifest``, ``categories``, ``split``, ``maps``, ``thresholds``, ``evaluate``, ``tables``),
each with a ``DESCRIPTION`` and ``run(params) -> GateResult`` that reads its own files: :func:`available` lists the
modules of this package, so a new gate is one module here, its suites and checkpoint in ``gx/``, its DVC stage and its
test, and the CLI offers it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by the gate modules; the CLI lists the gates without it
    import pandas as pd

ERROR, WARNING = "error", "warning"
FINITE = 3.4e38  # float32's largest: a score, map value or threshold beyond it (or inf, NaN) is no usable number
GX_DIR = Path("gx")  # the Great Expectations project (file data context): suites, checkpoints, the facts data source
FACTS_DIR = Path("reports/gates/facts")  # base directory of the gate_facts data source: <gate>/<table>.csv
RESULTS_DIR = Path("reports/gates/results")  # GX's validation results per gate (what the Data Docs render)
RUN_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # fixed run time: the results are a DVC output, same bytes on rerun


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


def quiet_gx() -> Any:
    """``great_expectations``, imported with its logging and warnings silenced (the gates print their own lines)."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="great_expectations")
    import great_expectations as gx

    return gx


def context() -> Any:
    """The project's Great Expectations file data context: ``gx/`` in the working directory (the repository root,
    where every stage runs).
    """
    config = GX_DIR / "great_expectations.yml"
    if not config.is_file():
        raise FileNotFoundError(f"{config}: no Great Expectations project here (run iadbench from the repository root)")
    return quiet_gx().get_context(mode="file", project_root_dir=str(GX_DIR.parent))


def _fmt(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return str(value)


def normalised(validation: dict) -> dict:
    """A validation result without what changes from run to run on the same data (GX's batch load time): what
    ``reports/gates/results/<gate>.json`` keeps, so that a rerun writes the same bytes.
    """
    (validation.get("meta", {}).get("batch_markers") or {}).pop("ge_load_time", None)
    return validation


def run_checkpoint(gate: str, tables: dict[str, Table], parameters: dict[str, Any] | None = None) -> GateResult:
    """Run checkpoint ``gate`` of the GX project on ``tables``; every failed expectation becomes violations.

    Each table the checkpoint validates is written to ``reports/gates/facts/<gate>/<table>.csv`` (the CSV asset
    ``<gate>.<table>`` of the ``gate_facts`` data source reads it back, identifiers as strings), then the checkpoint
    validates it against suite ``<gate>.<table>`` with ``parameters`` as the suites' ``$PARAMETER`` values. An
    expectation's ``meta`` holds what the user reads: ``rule`` (the words), ``file_column`` (the column naming the
    offending file; absent: a table-level rule that names the table's file) and ``detail_columns``. Its GX
    ``severity`` decides: ``critical`` is an error, anything else a warning. The results (GX's JSON, load time
    removed) go to ``reports/gates/results/<gate>.json``.
    """
    quiet_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    checkpoint = context().checkpoints.get(gate)
    names = [vd.name for vd in checkpoint.validation_definitions]
    missing = sorted({n.split(".", 1)[1] for n in names} - set(tables))
    if missing:
        raise ValueError(f"{GX_DIR}/checkpoints/{gate}.json validates {missing}, which gate {gate!r} does not compute")
    folder = FACTS_DIR / gate
    folder.mkdir(parents=True, exist_ok=True)
    frames = {}
    for name in names:
        frames[name] = tables[name.split(".", 1)[1]].frame.reset_index(drop=True)
        frames[name].to_csv(folder / f"{name.split('.', 1)[1]}.csv", index=False)
    run_id = RunIdentifier(run_name=gate, run_time=RUN_TIME)
    outcome = checkpoint.run(expectation_parameters=parameters or {}, run_id=run_id)
    result = GateResult(gate=gate)
    validations = [normalised(v.to_json_dict()) for v in outcome.run_results.values()]
    for doc in validations:
        name = doc["meta"]["active_batch_definition"]["data_asset_name"]
        table, frame = tables[name.split(".", 1)[1]], frames[name]
        for item in doc["results"]:
            suite_file = f"{GX_DIR}/expectations/{name.replace('.', '/')}.json"
            _collect(result, item, table.path, frame, suite_file, parameters or {})
    result.violations.sort(key=lambda v: (v.severity != ERROR, v.rule, v.file))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"gate": gate, "validations": validations}
    (RESULTS_DIR / f"{gate}.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    return result


def _collect(
    result: GateResult, item: dict, table_path: str, frame: pd.DataFrame, suite_file: str, parameters: dict[str, Any]
) -> None:
    """Add one expectation's outcome to ``result``: its rule line and, when it failed, its violations. ``$name`` in
    the rule's words is the suite parameter's value (``$image_size`` -> 128).
    """
    from string import Template

    config = item["expectation_config"]
    meta, summary = config.get("meta") or {}, item.get("result") or {}
    severity = ERROR if config.get("severity", "critical") == "critical" else WARNING
    rule = Template(meta.get("rule", config["type"])).safe_substitute(parameters)
    info = item.get("exception_info") or {}
    raised = [info] if "raised_exception" in info else list(info.values())  # GX nests it per metric when it fails
    messages = [i.get("exception_message") for i in raised if isinstance(i, dict) and i.get("raised_exception")]
    if messages:
        raise RuntimeError(f"{suite_file}: {config['type']} ({rule}) could not run on {table_path}: {messages[0]}")
    result.rules.append({"table": table_path, "rule": rule, "severity": severity, "expectation": config["type"],
                         "success": bool(item["success"]),
                         "unexpected_count": int(summary.get("unexpected_count") or 0)})  # fmt: skip
    if item["success"]:
        return
    rows = summary.get("unexpected_index_list") or []
    file_column = meta.get("file_column")
    if file_column is None or not rows:
        observed = summary.get("observed_value")
        detail = f"observed {_fmt(observed)}" if observed is not None else ""
        result.violations.append(Violation(severity, rule, table_path, detail))
        return
    for row in rows:
        record = frame.iloc[int(row)]
        detail = ", ".join(f"{c}={_fmt(record[c])}" for c in meta.get("detail_columns", []) if c in record)
        result.violations.append(Violation(severity, rule, _fmt(record[file_column]), detail))


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
