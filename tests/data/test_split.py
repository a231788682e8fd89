from pathlib import Path

import pandas as pd
import pytest

from iadbench.data.categories import parse_export, resolve_categories
from iadbench.data.manifest import scan
from iadbench.data.split import ASSIGNMENT_COLUMNS, largest_remainder, make_split
from iadbench.errors import ParamsError
from iadbench.gates import split_gate
from iadbench.params import SplitParams


def _tables():
    manifest = scan(Path("data/raw/synthetic"), "synthetic", progress=False)[0]
    votes = parse_export(Path("annotation/exports/synthetic.json"), "data/raw/synthetic", set(manifest["image_id"]))
    return manifest, resolve_categories(votes, manifest)


def test_largest_remainder_sums_and_is_deterministic():
    # exact shares 1.5, 0.9, 0.6 -> floors 1, 0, 0; the two seats left go to the largest remainders (b, c)
    assert largest_remainder({"a": 5, "b": 3, "c": 2}, 3) == {"a": 1, "b": 1, "c": 1}
    # exact shares 3, 1.5, 0.5 -> one seat left, remainders of b and c tie at 0.5: name order gives it to b
    assert largest_remainder({"a": 6, "b": 3, "c": 1}, 5) == {"a": 3, "b": 2, "c": 0}
    assert sum(largest_remainder({"a": 1, "b": 1, "c": 1}, 2).values()) == 2
    assert largest_remainder({"a": 1, "b": 1}, 1) == {"a": 1, "b": 0}  # tie broken by name
    assert largest_remainder({}, 0) == {}


def test_split_rules_hold(tiny_repo, split_params):
    manifest, categories = _tables()
    split = make_split(manifest, categories, split_params)
    assert split["image_id"].is_unique and len(split) == len(manifest)
    assert (split.loc[split["split"] == "train", "label"] == "good").all()
    assert set(split.loc[split["split"] == "train", "image_id"]) == set(
        manifest.loc[manifest["split_folder"] == "train", "image_id"]
    )
    for _, group in split[split["split"] != "train"].groupby("product"):
        counts = group.groupby(["split", "label"]).size()
        assert counts[("validation", "good")] >= 1 and counts[("validation", "anomalous")] >= 1
        assert counts[("test", "good")] >= 1 and counts[("test", "anomalous")] >= 1
    assert split_gate(split, manifest, {"split": "data/split.csv"}).success


def test_fraction_is_respected_and_strata_are_balanced():
    n = 200
    manifest = pd.DataFrame(
        {
            "image_id": [f"p/test/{'good' if i < 100 else 'd'}/{i:03d}.png" for i in range(n)],
            "dataset": "x", "product": "p", "split_folder": "test",
            "label": ["good"] * 100 + ["anomalous"] * 100,
            "defect_type": ["good"] * 100 + ["crack"] * 60 + ["stain"] * 40, "image_path": "", "mask_path": "",
            "sha256": "",
        }
    )  # fmt: skip
    categories = pd.DataFrame(
        {
            "image_id": manifest["image_id"],
            "defect_categories": [""] * 100 + ["structural"] * 60 + ["surface"] * 30 + ["contamination"] * 10,
            "background": "with",
        }
    )
    split = make_split(manifest, categories, SplitParams(seed=3, val_fraction=0.3))
    val = split[split["split"] == "validation"]
    assert (val["label"] == "good").sum() == 30
    assert val.loc[val["label"] == "anomalous", "defect_type"].value_counts().to_dict() == {"crack": 18, "stain": 12}
    # relabelling images (here: every stain becomes contamination) must not move a single image between splits
    relabelled = categories.copy()
    relabelled["defect_categories"] = relabelled["defect_categories"].replace("surface", "contamination")
    again = make_split(manifest, relabelled, SplitParams(seed=3, val_fraction=0.3))
    assert again[ASSIGNMENT_COLUMNS].equals(split[ASSIGNMENT_COLUMNS])
    assert not again["defect_categories"].equals(split["defect_categories"])


def test_same_seed_same_split_other_seed_other_split(tiny_repo):
    manifest, categories = _tables()
    a = make_split(manifest, categories, SplitParams(0, 0.3))
    b = make_split(manifest.sample(frac=1, random_state=1), categories, SplitParams(0, 0.3))
    c = make_split(manifest, categories, SplitParams(1, 0.3))
    assert a.equals(b), "the split must not depend on row order"
    assert not a["split"].equals(c["split"])


@pytest.mark.parametrize("fraction", [0, 1, 1.0, -0.1, 1.5])
def test_val_fraction_out_of_range(fraction):
    with pytest.raises(ParamsError, match=r"split.val_fraction must be strictly between 0 and 1"):
        SplitParams.from_params({"split": {"seed": 0, "val_fraction": fraction}})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"seed": -1, "val_fraction": 0.3}, "split.seed must be >= 0"),
        ({"seed": 0}, "split.val_fraction is missing"),
        ({"seed": "a", "val_fraction": 0.3}, "split.seed must be int"),
    ],
)
def test_other_bad_split_params(section, message):
    with pytest.raises(ParamsError, match=message):
        SplitParams.from_params({"split": section})


def test_gate_catches_tampered_split(tiny_repo, split_params):
    manifest, categories = _tables()
    split = make_split(manifest, categories, split_params)
    tampered = pd.concat([split, split[split["split"] == "test"].head(1).assign(split="validation")])
    moved = tampered["image_id"].str.startswith("nut/test/crack/")
    tampered.loc[moved, "split"] = "train"
    tiles_val = (tampered["product"] == "tiles") & (tampered["split"] == "validation") & (tampered["label"] == "good")
    tampered.loc[tiles_val, "split"] = "test"
    result = split_gate(tampered, manifest, {"split": "data/split.csv"})
    rules = {v.rule for v in result.errors}
    assert "no image in two splits" in rules
    assert "train holds only good images" in rules
    assert "split counts match the manifest" in rules
    assert any(
        v.rule == "every product's validation split holds good images" and v.file == "tiles" for v in result.errors
    )
