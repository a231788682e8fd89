"""thresholds → evaluate → metrics → report on the tiny dataset with synthetic anomaly maps (no model needed)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from iadbench.cli import main
from iadbench.data.split import ASSIGNMENT_COLUMNS
from iadbench.errors import InputError, ParamsError
from iadbench.evaluation import tables
from iadbench.evaluation.cells import load_mask
from iadbench.evaluation.panels import write_figures
from iadbench.evaluation.report import write_report
from iadbench.metrics.rules import fitted_rules, normal_only_rules
from iadbench.stages import evaluate, thresholds
from tests.conftest import TINY, chromium_dom

PRODUCTS = ["nut", "weave", "tiles"]
SIZE = 32


@pytest.fixture
def repo(tiny_repo) -> dict:
    params = {**TINY, "models": ["good", "noisy"], "data": {**TINY["data"], "products": PRODUCTS}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
        assert main(verb) == 0
    write_maps(read_split())
    return params


def read_split() -> pd.DataFrame:
    return pd.read_csv("data/split.csv", keep_default_na=False)


def write_split(split: pd.DataFrame) -> None:
    split.to_csv("data/split.csv", index=False)
    split[ASSIGNMENT_COLUMNS].to_csv("data/assignment.csv", index=False)


def write_maps(split: pd.DataFrame, models=("good", "noisy"), nan_at: str | None = None) -> None:
    """'good' lights up the true mask (plus noise); 'noisy' is mostly noise."""
    for k, model in enumerate(models):
        rng = np.random.default_rng(k)
        for product in PRODUCTS:
            rows = split[(split["product"] == product) & split["split"].isin(["validation", "test"])]
            rows = rows.sort_values("image_id")
            masks = np.stack([load_mask(p, SIZE) for p in rows["mask_path"]]).astype(np.float32)
            signal = 1.0 if model == "good" else 0.15
            maps = (signal * masks + 0.3 * rng.random(masks.shape)).astype(np.float16)
            scores = maps.reshape(len(maps), -1).max(axis=1).astype(np.float32)
            if nan_at is not None and nan_at in set(rows["image_id"]):
                maps[list(rows["image_id"]).index(nan_at), 0, 0] = np.nan
            out = Path(f"data/maps/{model}/{product}.npz")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, image_id=rows["image_id"].to_numpy(str), split=rows["split"].to_numpy(str),
                     scores=scores, maps=maps)  # fmt: skip
            record = Path(f"reports/predict/{model}/{product}.json")  # what predict records of its training
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"model": model, "epochs": 1, "epochs_rule": "one pass", "epochs_full": 1}))


def run_all(params: dict) -> dict:
    split = read_split()
    for model in params["models"]:
        for product in PRODUCTS:
            thresholds.write_cell(model, product, split, "synthetic")
            evaluate.write_cell(model, product, split, 0.3)
    return tables.write_tables(params)


def test_whole_chain_and_its_numbers(repo, tmp_path):
    metrics = run_all(repo)
    assert metrics["good"]["mean_iou"] > 0.6 > metrics["noisy"]["mean_iou"]
    assert metrics["good"]["image_auroc"] > metrics["noisy"]["image_auroc"]
    assert metrics["good"]["mean_iou_lo"] <= metrics["good"]["mean_iou"] <= metrics["good"]["mean_iou_hi"]
    assert metrics["good"]["oracle_mean_iou"] >= max(metrics["good"]["mean_iou_by_rule"].values()) - 1e-12

    # the headline is the pooled per-image rows, recomputed by hand
    rows = pd.concat([pd.read_csv(f"reports/evaluate/good/{p}.csv") for p in PRODUCTS])
    assert metrics["good"]["mean_iou"] == pytest.approx(rows["iou_iou"].dropna().mean(), abs=1e-12)
    keep = (rows["label"] == "good") | rows["has_mask"]
    tp, fp, fn = (rows.loc[keep, f"pix_iou_{k}"].sum() for k in ("tp", "fp", "fn"))
    assert metrics["good"]["pooled_iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-12)
    cell = json.loads(Path("reports/evaluate/good/nut.json").read_text())
    assert cell["image_score"] in {"unknown", "map_max", "model"} and cell["rule_used"]["pixel"]["iou"] == "iou"
    assert cell["pixel"]["at"]["oracle"]["note"].startswith("test-optimal")

    table = pd.read_csv("reports/tables/categories.csv")
    assert {"structural", "surface", "contamination", "combined", "with", "without", "all"} <= set(table["group"])
    write_figures(repo, read_split())
    written = write_report(repo)
    page = Path("reports/report.html").read_text()
    assert "Table 1" in page and "https://" not in page and "http://" not in page
    assert Path("reports/overlays/iou/good.png").is_file() and Path("reports/thresholds/noisy/tiles.png").is_file()
    md = Path("reports/report.md").read_text()
    # the threshold values are in the products table (the fitted ones: this cell had anomalous validation images)
    row = pd.read_csv("reports/tables/products.csv").set_index(["model", "product"]).loc[("good", "nut")]
    fitted = json.loads(Path("reports/thresholds/good/nut.json").read_text())
    for rule in ("roc", "iou", "pr", "good_fpr"):
        for level in ("pixel", "image"):
            assert row[f"{level}_threshold@{rule}"] == pytest.approx(fitted[level][rule]["threshold"], rel=1e-5)
    assert "pixel / image threshold" in md
    assert "| category | dataset | n |" in md
    assert written[0].is_file()
    # "Which detector for which product": one row per (background, category) present; the near-perfect maps win each
    section = md.split("## Which detector for which product")[1].split("\n## ")[0]
    profiles = re.findall(r"^\| (with|without) \| (\w+) \| (\d+) \| \w+ / \w+ \| ([0-9.]+) ", section, re.MULTILINE)
    both = pd.concat([pd.read_csv(f"reports/evaluate/{m}/{p}.csv") for m in ("good", "noisy") for p in PRODUCTS])
    joined = tables.with_categories(both[both["label"] == "anomalous"])
    carries = joined["defect_categories"].str.split("|")
    expected = {}  # (background, category) -> (n images, the best mean IoU of any (model, fitted rule)), by pandas
    for (b, c), _ in Counter(zip(joined["background"], carries.map(tuple), strict=True)).items():
        for cat in c:
            mine = joined[(joined["background"] == b) & carries.map(lambda cs, cat=cat: cat in cs)]
            best = max(mine.loc[mine["model"] == m, f"iou_{r}"].mean() for m in ("good", "noisy")
                       for r in fitted_rules())  # fmt: skip
            expected[(b, cat)] = (mine["image_id"].nunique(), f"{best:.3f}")
    assert {(b, c): (int(n), miou) for b, c, n, miou in profiles} == expected, section
    check_report_in_chromium(repo, tmp_path)  # the page itself: contents, thumbnails, sorting, filtering


# Run in the browser after the page's own script: sort the per-image table by score (descending: two clicks), keep the
# model "good" and the verdict "found", then record what is shown where the DOM dump can read it.
BROWSE = """<script>
window.addEventListener("load", function () {
  const table = document.getElementById("images-table");
  const score = Array.from(table.tHead.rows[0].cells).findIndex(function (th) { return th.textContent === "score"; });
  table.tHead.rows[0].cells[score].click();
  table.tHead.rows[0].cells[score].click();
  document.querySelectorAll(".filters select").forEach(function (s) {
    if (s.dataset.column === "1") { s.value = "good"; }
    if (s.dataset.column === "8") { s.value = "found"; }
    s.dispatchEvent(new Event("change"));
  });
  const shown = Array.from(table.tBodies[0].rows).filter(function (r) { return r.style.display !== "none"; });
  const out = document.createElement("pre");
  out.id = "browsed";
  out.textContent = JSON.stringify(shown.map(function (r) {
    const tiles = r.cells[0].querySelectorAll("span.th").length;
    return [r.cells[1].textContent, r.cells[3].textContent, r.cells[score].textContent, r.cells[8].textContent, tiles];
  }));
  document.body.appendChild(out);
});
</script>"""


def check_report_in_chromium(repo: dict, workdir: Path) -> None:
    """The report's table of contents points at every section, each thumbnail sheet row matches its table row, and in
    headless Chromium a click on a header sorts and the filters hide rows: the rows left are those pandas finds, in
    score order (called by the whole-chain test, which has built the report)."""
    import html

    page = Path("reports/report.html").read_text()
    contents = page.split('<nav id="contents">')[1].split("</nav>")[0]
    targets = re.findall(r'href="#([^"]+)"', contents)
    assert len(targets) >= 8 and all(f'id="{t}"' in page for t in targets), targets
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    from PIL import Image

    from iadbench.evaluation.panels import THUMB, thumbnail_tiles

    sheet = np.asarray(Image.open("reports/thumbs/good/nut.png"))
    cell = pd.read_csv("reports/evaluate/good/nut.csv")
    assert sheet.shape == (len(cell) * THUMB, len(thumbnail_tiles()) * THUMB, 3)
    for i, has_mask in enumerate(cell["has_mask"].astype(str).str.lower().eq("true")):
        truth = sheet[i * THUMB : (i + 1) * THUMB, THUMB : 2 * THUMB]
        assert truth.any() == has_mask, (i, cell["image_id"][i])  # the row's ground truth, in the table's order
    browsed = Path("browse.html")
    browsed.write_text(page.replace("</body>", BROWSE + "</body>"))
    dom = chromium_dom(browsed.resolve(), workdir / "chromium")
    shown = json.loads(html.unescape(dom.split('<pre id="browsed">')[1].split("</pre>")[0]))
    rows = pd.concat([pd.read_csv(f"reports/evaluate/good/{p}.csv") for p in PRODUCTS])
    found = rows[(rows["label"] == "anomalous") & (rows[f"img_{repo['threshold']['method']}_pred"] == 1)]
    assert len(shown) >= 3 and sorted(r[1] for r in shown) == sorted(found["image_id"])  # the good model finds them
    assert {r[0] for r in shown} <= {"good"} and {r[3] for r in shown} == {"found"}
    assert {r[4] for r in shown} == {4}  # image, truth, map and mask at the headline rule
    scores = [float(r[2]) for r in shown]
    assert scores == sorted(scores, reverse=True)  # two clicks: descending
    unfiltered = page.count("<tr>") - page.count("<thead><tr>")
    assert len(shown) < unfiltered


def test_tables_are_deterministic(repo):
    run_all(repo)
    first = {p: Path(p).read_bytes() for p in ("reports/metrics.json", "reports/tables/categories.csv")}
    tables.write_tables(repo)
    assert {p: Path(p).read_bytes() for p in first} == first


def test_a_few_anomalous_validation_images_fit_the_thresholds(repo):
    """threshold.anomalous_images: the draw is stratified by defect type, nested, seeded; the file names the images;
    0 fits the normal-only rules alone; more than a product has is an error naming the product and its count."""
    from iadbench.evaluation.thresholds import anomalous_subset
    from iadbench.params import ThresholdParams

    split = read_split()
    write_maps(split)
    rows = split[(split["product"] == "nut") & (split["split"] == "validation")].reset_index(drop=True)
    n_anomalous = int((rows["label"] == "anomalous").sum())
    types = rows.loc[rows["label"] == "anomalous", "defect_type"].nunique()
    assert n_anomalous >= 2 and types >= 2
    draws = {k: anomalous_subset(rows, k, 0) for k in range(n_anomalous + 1)}
    for k, keep in draws.items():
        assert keep.sum() == k and not (keep & (rows["label"] != "anomalous")).any()
        assert rows.loc[keep, "defect_type"].nunique() == min(k, types)  # one of each type before a second
        assert (keep <= draws[min(k + 1, n_anomalous)]).all()  # nested: a larger draw contains a smaller one
    assert (anomalous_subset(rows, "all", 0) == (rows["label"] == "anomalous")).all()
    assert any((anomalous_subset(rows, 1, s) != draws[1]).any() for s in range(1, 20))  # the seed decides
    base = {**TINY["threshold"]}
    one = ThresholdParams.from_params({"threshold": {**base, "anomalous_images": 1}})
    doc = thresholds.write_cell("good", "nut", split, "synthetic", params=one)
    picked = rows.loc[draws[1], "image_id"].tolist()
    assert doc["validation"]["anomalous"] == 1 and doc["validation"]["anomalous_used"] == picked
    assert doc["validation"]["images"] == len(rows) and set(doc["pixel"]) == set(fitted_rules())
    none = ThresholdParams.from_params({"threshold": {**base, "anomalous_images": 0}})
    doc = thresholds.write_cell("good", "nut", split, "synthetic", params=none)
    assert set(doc["pixel"]) == set(doc["image"]) == set(normal_only_rules())
    everything = thresholds.write_cell("good", "nut", split, "synthetic", params=ThresholdParams.from_params(
        {"threshold": base}))  # fmt: skip
    for rule in normal_only_rules():  # the good images alone decide them: the same whatever the anomalous count
        assert doc["pixel"][rule]["threshold"] == everything["pixel"][rule]["threshold"]
    too_many = ThresholdParams.from_params({"threshold": {**base, "anomalous_images": n_anomalous + 1}})
    with pytest.raises(ParamsError, match=rf"product 'nut' has only {n_anomalous} anomalous validation image"):
        thresholds.write_cell("good", "nut", split, "synthetic", params=too_many)


def test_product_without_anomalous_validation_uses_the_good_only_rule(repo):
    """Only the normal-only rules are fitted; per rule, the tables leave the product out and count it (not
    applicable); the headline alone counts it at the stand-in good_fpr, and says so."""
    split = read_split()
    move = (split["product"] == "weave") & (split["split"] == "validation") & (split["label"] == "anomalous")
    split.loc[move, "split"] = "test"
    write_split(split)
    write_maps(split)
    doc = thresholds.write_cell("good", "weave", split, "synthetic")
    assert set(doc["pixel"]) == set(doc["image"]) == set(normal_only_rules())
    assert any("not applicable" in n and "good_fpr in their place" in n for n in doc["pixel_notes"])
    assert main(["thresholds", "--model", "good", "--product", "weave"]) == 0
    metrics = run_all(repo)
    cell = json.loads(Path("reports/evaluate/good/weave.json").read_text())
    assert cell["rule_used"]["pixel"]["iou"] == "good_fpr" and cell["rule_used"]["image"]["roc"] == "good_fpr"
    assert metrics["good"]["n_good_only_products"] == 1
    products = pd.read_csv("reports/tables/products.csv")
    assert "good_fpr in their place" in products.set_index(["model", "product"]).loc[("good", "weave"), "notes"]
    cats = pd.read_csv("reports/tables/categories.csv")
    every = cats[(cats["model"] == "good") & (cats["kind"] == "all")].set_index("rule")
    rows = pd.concat([pd.read_csv(f"reports/evaluate/good/{p}.csv") for p in PRODUCTS])
    weave = rows["product"] == "weave"
    for rule in ("roc", "iou", "pr"):  # not applicable on weave: its images left out, and counted
        assert every.loc[rule, "n_not_applicable"] == weave.sum()
        assert every.loc[rule, "mean_iou"] == pytest.approx(rows.loc[~weave, f"iou_{rule}"].mean(), rel=1e-5)
    for rule in normal_only_rules():  # fitted everywhere
        assert np.isnan(every.loc[rule, "n_not_applicable"])
        assert every.loc[rule, "mean_iou"] == pytest.approx(rows[f"iou_{rule}"].mean(), rel=1e-5)
    method = yaml.safe_load(Path("params.yaml").read_text())["threshold"]["method"]
    assert metrics["good"]["mean_iou"] == pytest.approx(rows[f"iou_{method}"].mean(), rel=1e-9)  # weave at good_fpr


def test_category_without_test_images_is_absent_not_zero(repo):
    split = read_split()
    hit = split["defect_categories"].str.contains("contamination") & (split["split"] == "test")
    split.loc[hit, "split"] = "validation"
    write_split(split)
    write_maps(split)
    metrics = run_all(repo)
    assert metrics["good"]["mean_iou_by_category"]["contamination"] is None
    table = pd.read_csv("reports/tables/categories.csv")
    row = table[(table["model"] == "good") & (table["group"] == "contamination") & (table["rule"] == "iou")].iloc[0]
    assert row["n_images"] == 0 and np.isnan(row["mean_iou"])
    write_figures(repo, read_split())
    write_report(repo)
    assert "absent" in Path("reports/report.md").read_text()


def test_thresholds_from_another_split_are_refused(repo):
    split = read_split()
    thresholds.write_cell("good", "nut", split, "synthetic")
    first_val = split.index[(split["product"] == "nut") & (split["split"] == "validation")][0]
    split.loc[first_val, "split"] = "test"
    write_split(split)
    write_maps(split)
    with pytest.raises(InputError, match="fitted on another split"):
        evaluate.write_cell("good", "nut", split, 0.3)


def test_nan_in_a_map_names_file_and_image(repo, capsys):
    split = read_split()
    victim = split[(split["product"] == "nut") & (split["split"] == "validation")]["image_id"].iloc[0]
    write_maps(split, nan_at=victim)
    assert main(["thresholds", "--model", "good", "--product", "nut"]) == 2
    err = capsys.readouterr().err
    assert "data/maps/good/nut.npz: anomaly maps must be finite" in err and victim in err
    assert "Traceback" not in err


def test_maps_of_another_split_are_refused(repo):
    split = read_split()
    split.loc[split.index[(split["product"] == "nut") & (split["split"] == "train")][0], "split"] = "validation"
    with pytest.raises(InputError, match="maps do not match the validation images"):
        thresholds.write_cell("good", "nut", split, "synthetic")


def test_masks_are_resized_nearest_to_the_map_size(repo):
    split = read_split()
    path = split[split["label"] == "anomalous"]["mask_path"].iloc[0]
    mask = load_mask(path, 17)
    assert mask.shape == (17, 17) and mask.dtype == bool and mask.any()
    assert not load_mask("", 9).any()


def test_a_new_threshold_rule_is_one_registry_entry(repo, monkeypatch):
    """Youden's J (argmax TPR − FPR) as one entry: fitted, evaluated, pooled, offered as threshold.method, named
    and drawn in the report, marked on the DVC curves — with no other code touched.
    """
    from iadbench.metrics import rules

    youden = rules.Rule("youden", "Youden-T", "argmax TPR − FPR", rules.argmax_rule(lambda r: r["tpr"] - r["fpr"]),
                           marker="v", color="tab:brown")  # fmt: skip
    monkeypatch.setitem(rules.RULE_TABLE, "youden", youden)
    params = {**repo, "threshold": {**repo["threshold"], "method": "youden"}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    metrics = run_all(params)
    fitted = json.loads(Path("reports/thresholds/good/nut.json").read_text())
    assert "youden" in fitted["image"] and "youden" in fitted["pixel"]
    marks = pd.read_csv("reports/thresholds/good/nut.curves.csv", keep_default_na=False)["rule"]
    assert any("youden" in m.split("+") for m in marks)
    cell = json.loads(Path("reports/evaluate/good/nut.json").read_text())
    assert "youden" in cell["image"]["at"] and "youden" in cell["pixel"]["at"]
    assert "youden" in set(pd.read_csv("reports/tables/categories.csv")["rule"])
    assert metrics["good"]["mean_iou_by_rule"]["youden"] is not None
    write_report(params)
    assert "Headline rule: **Youden-T**" in Path("reports/report.md").read_text()


def test_a_new_threshold_free_metric_is_one_registry_entry(repo, monkeypatch):
    """PB5 (TPR at FPR ≤ 5 %) as one entry: computed per cell, in the products table, the headline and the report."""
    from iadbench.metrics import curves, registry

    pb5 = registry.Metric(
        "pb5", "image", "PB5", registry.image_metric(curves.tpr_at_fpr, 0.05), "pb5", "TPR at FPR ≤ 5 %"
    )
    monkeypatch.setitem(registry.METRIC_TABLE, ("image", "pb5"), pb5)
    metrics = run_all(repo)
    cell = json.loads(Path("reports/evaluate/good/nut.json").read_text())
    assert cell["image"]["pb5"] >= cell["image"]["pb2"]  # a looser FPR bound finds at least as many
    assert "image_pb5" in pd.read_csv("reports/tables/products.csv")
    assert metrics["good"]["pb5"] >= metrics["good"]["pb2"]
    write_figures(repo, read_split())
    write_report(repo)
    assert "| PB5 |" in Path("reports/report.md").read_text()


def test_a_new_gate_is_one_module(repo, tmp_path, monkeypatch, capsys):
    """A module in iadbench.gates with run(params): listed by the CLI, run by `iadbench gate NAME`, its failure
    an exit code 1 with the file and rule in words.
    """
    import iadbench.gates as gates

    extra = tmp_path / "gate_modules"
    extra.mkdir()
    (extra / "thresholds_present.py").write_text(
        '"""Every evaluated cell has a thresholds file."""\n'
        "from pathlib import Path\n\n"
        "from iadbench.gates import ERROR, GateResult, Violation\n\n"
        'DESCRIPTION = "reports/thresholds: one file per cell"\n\n\n'
        "def run(params):\n"
        "    cells = [(m, p) for m in params['models'] for p in params['data']['products']]\n"
        "    missing = [f'reports/thresholds/{m}/{p}.json' for m, p in cells\n"
        "               if not Path(f'reports/thresholds/{m}/{p}.json').is_file()]\n"
        "    return GateResult('thresholds_present', [], [Violation(ERROR, 'thresholds file exists', f, '')\n"
        "                                                for f in missing])\n"
    )
    monkeypatch.setattr(gates, "__path__", [*gates.__path__, str(extra)])
    assert "thresholds_present" in gates.available()
    assert main(["gate", "thresholds_present"]) == 1
    assert "reports/thresholds/good/nut.json: rule: thresholds file exists" in capsys.readouterr().err
    run_all(repo)
    assert main(["gate", "thresholds_present"]) == 0
