"""Great Expectations Data Docs of the gates, rendered offline into ``reports/gates/docs/`` (``iadbench gate-docs``).

GX renders Data Docs from an expectations store and a validation results store. This module fills an in-memory
context with the project's suites (``gx/expectations``) and the gates' results as the gate stages wrote them
(``reports/gates/results/<gate>.json``, DVC outputs), so that the pages show exactly the validations behind the
current results — not whatever older runs left in ``gx/uncommitted`` — and builds the site with GX's own
``SiteBuilder``.

GX 1.x pages load Bootstrap, jQuery, Font Awesome and Vega from public CDNs and a logo from an S3 bucket with the
render time in its URL; on the offline machines those never load, and the time makes every build differ. After the
build, every remote ``<link>``/``<script>``/``<img>`` is removed or pointed at GX's local copy of the logo, and a small
local stylesheet stands in for Bootstrap's tables and layout: the pages read without any network and a rebuild from
the same results writes the same bytes (GX names collapsible blocks with fresh uuid4s; they are numbered instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from iadbench.gates import GX_DIR, RESULTS_DIR, RUN_TIME, context, quiet_gx
from iadbench.paths import GATE_DOCS as DOCS_DIR

OFFLINE_CSS = """/* iadbench: a local stand-in for the Bootstrap 4 classes of GX Data Docs (no CDN offline) */
body { font-family: "HK Grotesk", system-ui, sans-serif; margin: 0; color: #212529; }
.container-fluid, .container { padding: 0 1rem; }
.row { display: flex; flex-wrap: wrap; }
.col-12, .col-md-12, .col-lg-12 { flex: 0 0 100%; }
.col-md-2, .col-lg-2 { flex: 0 0 16%; } .col-md-10, .col-lg-10 { flex: 0 0 82%; }
.col-md-6 { flex: 0 0 48%; } .col-md-4 { flex: 0 0 32%; }
.card { border: 1px solid #dee2e6; border-radius: 4px; margin: 0.5rem 0; }
.card-header { background: #f7f7f9; padding: 0.5rem 0.75rem; border-bottom: 1px solid #dee2e6; }
.card-body { padding: 0.5rem 0.75rem; }
.table { border-collapse: collapse; width: 100%; margin-bottom: 1rem; }
.table td, .table th { border-top: 1px solid #dee2e6; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left; }
.table-striped tbody tr:nth-of-type(odd) { background: rgba(0, 0, 0, .04); }
.badge { display: inline-block; padding: 0.1em 0.4em; border-radius: 3px; background: #e9ecef; }
.text-danger { color: #dc3545; } .text-success { color: #28a745; }
.collapse:not(.show) { display: none; }
.navbar { display: flex; align-items: center; padding: 0.5rem 1rem; border-bottom: 1px solid #dee2e6; }
.sticky { position: sticky; top: 0; }
.d-none { display: none; }
nav a, .list-group-item { display: block; padding: 0.2rem 0; }
.fas { font-style: normal; } /* Font Awesome's status icons, as text */
.fa-check-circle::before { content: "\\2714"; } .fa-times::before { content: "\\2718"; }
footer { display: none; } /* GX's newsletter link */
[id$="-body-table-toolbar"] { display: none; } /* bootstrap-table's filter buttons (no bootstrap-table offline) */
.tab-pane { display: block !important; opacity: 1 !important; } /* both index tabs, one below the other */
"""
_REMOTE = re.compile(
    r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>\s*|<link[^>]*\bhref="https?://[^"]*"[^>]*/?>\s*', re.I
)
_COLLAPSE_ID = re.compile(r"(collapse-body-)([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_REMOTE_IMG = re.compile(r'src="https?://[^"]*?/(logo-long\.png)\?[^"]*"')


def _offline(page: Path, site: Path) -> None:
    """Drop the page's remote scripts and stylesheets, point the logo at the local copy, link the local stylesheet."""
    static = Path(os.path.relpath(site / "static", page.parent)).as_posix()
    html = _REMOTE.sub("", page.read_text(encoding="utf-8"))
    html = _REMOTE_IMG.sub(lambda m: f'src="{static}/images/{m.group(1)}"', html)
    html = html.replace("</head>", f'<link rel="stylesheet" href="{static}/styles/iadbench_offline.css"/>\n</head>', 1)
    html = re.sub(r"url\('https?://[^']*'\)", f"url('{static}/images/logo-long.png')", html)  # the navbar logo
    html = re.sub(r'(src|href)="https?://[^"]*"', r'\1="#"', html)  # nothing reaches out (GX's own links neither)
    ids: dict[str, str] = {}  # GX names each collapsible block with a fresh uuid4: number them in order instead
    html = _COLLAPSE_ID.sub(lambda m: m.group(1) + ids.setdefault(m.group(2), str(len(ids))), html)
    page.write_text(html, encoding="utf-8")


def build(out: Path = DOCS_DIR, results: Path = RESULTS_DIR) -> Path:
    """Render the Data Docs of every gate result in ``results`` into ``out``; the index page's path."""
    gx = quiet_gx()
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if out.exists():
        shutil.rmtree(out)
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out.resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
        data_docs_sites={"local_site": site},
    )
    docs = gx.get_context(mode="ephemeral", project_config=config)
    for suite in context().suites.all():
        doc = suite.to_json_dict()
        docs.suites.add(gx.ExpectationSuite(**{k: doc[k] for k in ("name", "id", "expectations", "meta", "notes")}))
    files = sorted(results.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"{results}: no gate results (run the gate stages first: dvc repro)")
    for path in files:
        for validation in json.loads(path.read_text())["validations"]:
            run_id = RunIdentifier(run_name=validation["meta"]["run_id"]["run_name"], run_time=RUN_TIME)
            batch = validation["meta"]["active_batch_definition"]
            key = ValidationResultIdentifier(
                ExpectationSuiteIdentifier(validation["suite_name"]), run_id,
                f"{batch['datasource_name']}-{batch['data_asset_name']}",
            )  # fmt: skip
            docs.validation_results_store.set(key, ExpectationSuiteValidationResult(**validation))
    docs.build_data_docs()
    (out / "static" / "styles" / "iadbench_offline.css").write_text(OFFLINE_CSS)
    verdicts = {v["suite_name"]: bool(v["success"]) for f in files for v in json.loads(f.read_text())["validations"]}
    _static_index(out, verdicts)
    for page in sorted(out.rglob("*.html")):
        _offline(page, out)
    return out / "index.html"


def _static_index(site: Path, success: dict[str, bool]) -> None:
    """GX's index lists validations and suites with bootstrap-table from a CDN (offline: two empty tables). Write both
    lists as plain HTML tables in their place: status, gate, the validation page and its suite.
    """
    import html

    text = (site / "index.html").read_text(encoding="utf-8")
    check, cross = '<i class="fas fa-check-circle text-success"></i>', '<i class="fas fa-times text-danger"></i>'
    rows = []
    for page in sorted((site / "validations").rglob("*.html")):
        gate, table, run_name = page.relative_to(site / "validations").parts[:3]  # .../<run time>/<batch>.html
        suite = f"{gate}.{table}"
        link = page.relative_to(site).as_posix()
        rows.append(
            f"<tr><td>{check if success.get(suite) else cross}</td><td>{html.escape(run_name)}</td>"
            f'<td><a href="{link}">{html.escape(suite)}</a></td>'
            f'<td><a href="expectations/{gate}/{table}.html">{html.escape(suite)}</a></td></tr>'
        )
    head = "<tr><th>Status</th><th>Gate</th><th>Validation</th><th>Expectation suite</th></tr>"
    validations = f'<table class="table table-striped"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    suites = []
    for page in sorted((site / "expectations").rglob("*.html")):
        name = ".".join(page.relative_to(site / "expectations").with_suffix("").parts)
        suites.append(f'<tr><td><a href="{page.relative_to(site).as_posix()}">{html.escape(name)}</a></td></tr>')
    suite_table = (
        '<table class="table table-striped"><thead><tr><th>Expectation suite</th></tr></thead>'
        f"<tbody>{''.join(suites)}</tbody></table>"
    )
    for table_id, static in (
        ("section-1-content-block-2-1-body-table", validations),
        ("section-1-content-block-2-2-body-table", suite_table),
    ):
        text = re.sub(rf'<table\s+id="{table_id}"[^>]*>\s*</table>', lambda _m, s=static: s, text, count=1)
    (site / "index.html").write_text(text, encoding="utf-8")


def main() -> None:
    """Build the docs and say where they are (the ``iadbench gate-docs`` verb)."""
    index = build()
    print(f"Great Expectations Data Docs of {len(list(RESULTS_DIR.glob('*.json')))} gates -> {index} "
          f"(suites: {GX_DIR}/expectations)")  # fmt: skip
