"""The project's DVC plot templates: the offline page (.dvc/plots/offline.html) and the threshold-curves template,
rendered with dvc-render as `dvc plots show` does, and (when Debian's chromium is installed) in a headless browser.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import numpy as np

from tests.conftest import chromium_screenshot, drawn_share

PROJECT = Path(__file__).resolve().parents[1]
PAGE = PROJECT / ".dvc/plots/offline.html"
CURVES = PROJECT / ".dvc/plots/threshold_curves.json"


def test_the_project_renders_dvc_plots_with_the_offline_page():
    config = configparser.ConfigParser()
    config.read(PROJECT / ".dvc/config")
    assert config["plots"]["html_template"].strip() == "plots/offline.html"  # relative to .dvc/
    page = PAGE.read_text()
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds its CDN scripts only at {scripts}
    assert "<script src" not in page and "cdn.jsdelivr" not in page
    for name, version in (("vega", "5.20.2"), ("vega-lite", "5.2.0"), ("vega-embed", "6.18.2")):
        assert f"<!-- {name} {version} (npm) --><script>" in page and f"{name} {version}, https://registry" in page
    assert page.count("BSD") + page.count("Redistribution and use") >= 3  # each licence is copied in


def _rendered(tmp_path: Path) -> Path:
    from dvc_render import VegaRenderer, render_html

    rows = []
    for rev in ("exp-a", "exp-b"):
        for level in ("image", "pixel"):
            for k, t in enumerate(np.linspace(1.0, 0.0, 21)):
                tpr = min(1.0, 1.4 * (1 - t))
                rows.append({"level": level, "threshold": str(t), "fpr": str(1 - t), "tpr": str(tpr),
                             "precision": str(0.5 + 0.5 * t), "iou": str(0.3 * np.sin(np.pi * t)),
                             "rule": "iou" if k == 10 else "", "rev": rev})  # fmt: skip
    renderer = VegaRenderer(rows, "reports/thresholds/ae/nut.curves.csv", template=str(CURVES), x="fpr", y="tpr",
                            title="validation curves and fitted thresholds")  # fmt: skip
    out = tmp_path / "index.html"
    render_html([renderer], out, html_template=str(PAGE))
    return out


def test_threshold_curves_template_fills_and_marks_the_fitted_rules(tmp_path):
    template = json.loads(CURVES.read_text())
    assert template["data"]["values"] == "<DVC_METRIC_DATA>"
    titles = [panel["title"] for panel in template["spec"]["hconcat"]]
    assert titles == ["ROC", "precision-recall", "IoU vs FPR"]
    page = _rendered(tmp_path).read_text()
    assert "vegaEmbed" in page and "exp-a" in page and "exp-b" in page and "cdn.jsdelivr" not in page


def test_the_page_renders_in_headless_chromium(tmp_path):
    html = _rendered(tmp_path)
    pixels = chromium_screenshot(html, tmp_path / "shots")
    colours = len({tuple(p) for p in pixels[::7, ::7].reshape(-1, 3)})
    assert drawn_share(pixels) > 0.01 and colours > 10, "the plots did not render"
    # the same page without the call that draws stays blank: the check can fail
    bare = tmp_path / "bare.html"
    bare.write_text(html.read_text().replace("vegaEmbed(", "void("))
    assert drawn_share(chromium_screenshot(bare, tmp_path / "shots")) < 0.01
