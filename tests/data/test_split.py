from pathlib import Path

import pandas as pd
import pytest

from iadbench.data.categories import parse_export, resolve_categories
from iadbench.data.manifest import scan
from iadbench.data.split import ASSIGNMENT_COLUMNS, largest_remainder, make_split
from iadbench.errors import InputError, ParamsError
from iadbench.gates.split import split_gate
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
            "sha256": "", "mask_source": [""] * 100 + ["shipped"] * 100,
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
    a = make_split(manifest, categories, SplitParams(seed=0, val_fraction=0.3))
    b = make_split(manifest.sample(frac=1, random_state=1), categories, SplitParams(seed=0, val_fraction=0.3))
    c = make_split(manifest, categories, SplitParams(seed=1, val_fraction=0.3))
    assert a.equals(b), "the split must not depend on row order"
    assert not a["split"].equals(c["split"])


@pytest.mark.parametrize("fraction", [0, 1, 1.0, -0.1, 1.5])
def test_val_fraction_out_of_range(fraction):
    with pytest.raises(ParamsError, match=r"split.val_fraction must be strictly between 0 and 1"):
        SplitParams.from_params({"split": {"seed": 0, "val_fraction": fraction}})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"seed": -1, "val_fraction": 0.3}, r"split.seed must be in \[0, 4294967295\], got -1"),
        ({"seed": 0}, "split.val_fraction is missing"),
        ({"seed": "a", "val_fraction": 0.3}, "split.seed must be an integer"),
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


def test_noisy_train_replaces_train_images_and_keeps_splits_disjoint(tiny_repo):
    manifest, categories = _tables()
    params = SplitParams(seed=0, val_fraction=0.3, train_noise=0.34)  # round(0.34 * 3) = 1 per product
    split = make_split(manifest, categories, params)
    assert split["image_id"].is_unique and len(split) == len(manifest)
    for product, group in split.groupby("product"):
        train = group[group["split"] == "train"]
        assert len(train) == 3, product  # replaced, not added: the train count stays
        assert (train["label"] == "anomalous").sum() == 1
        excluded = group[group["split"] == "excluded"]
        assert len(excluded) == 1 and (excluded["label"] == "good").all()
        assert excluded["image_path"].str.contains("/train/good/").all()
        held_out = group[group["split"].isin(["validation", "test"])]
        assert not set(train["image_id"]) & set(held_out["image_id"])
        assert (held_out.groupby("split")["label"].apply(lambda s: (s == "anomalous").sum()) >= 1).all()
    again = make_split(manifest, categories, params)
    assert again.equals(split)  # seeded
    result = split_gate(split, manifest, {"split": "data/split.csv"}, train_noise=0.34)
    assert result.success, [str(v) for v in result.violations]
    from iadbench.data.summary import data_summary

    summary = data_summary(split, manifest, categories)
    assert summary["images"]["excluded"] == 3 and summary["images"]["train_anomalous"] == 3
    assert (
        "excluded"
        not in data_summary(
            make_split(manifest, categories, SplitParams(seed=0, val_fraction=0.3)), manifest, categories
        )["images"]
    )  # without noise: the summary of before
    clean = split_gate(split, manifest, {"split": "data/split.csv"})  # the clean rules refuse a noisy train
    assert "train holds only good images" in {v.rule for v in clean.errors}


def test_noise_off_writes_the_split_of_before(tiny_repo, split_params):
    manifest, categories = _tables()
    assert split_params.train_noise == 0.0
    base = make_split(manifest, categories, split_params)
    assert set(base["split"]) == {"train", "validation", "test"}
    explicit = make_split(manifest, categories, SplitParams(seed=0, val_fraction=0.3, train_noise=0.0))
    assert explicit.equals(base)


def test_noise_larger_than_the_anomalous_images_names_product_and_numbers(tiny_repo):
    manifest, categories = _tables()
    nut_anomalous = manifest[(manifest["product"] == "nut") & (manifest["label"] == "anomalous")]
    manifest = manifest.drop(nut_anomalous.index[3:])  # nut keeps 3 anomalous images
    with pytest.raises(InputError) as err:
        make_split(manifest, categories, SplitParams(seed=0, val_fraction=0.3, train_noise=0.9))
    message = str(err.value)
    assert message.startswith("data/manifest.csv: split.train_noise needs anomalous images")
    assert "product nut: 90% of 3 train images is 3 anomalous image(s)" in message
    assert "it has 3 anomalous test image(s) and at least 2 must stay" in message
    assert "largest fraction possible: 0.333" in message


@pytest.mark.parametrize("value", [-0.1, 1.0, "x"])
def test_train_noise_out_of_range(value):
    with pytest.raises(ParamsError, match="split.train_noise"):
        SplitParams.from_params({"split": {"seed": 0, "val_fraction": 0.3, "train_noise": value}})


def test_gate_noise_counts_must_match(tiny_repo):
    manifest, categories = _tables()
    split = make_split(manifest, categories, SplitParams(seed=0, val_fraction=0.3, train_noise=0.34))
    result = split_gate(split, manifest, {"split": "data/split.csv"}, train_noise=0.67)  # 2 expected, 1 found
    assert not result.success
    assert any("round(split.train_noise·n_train) anomalous images" in v.rule for v in result.errors)


def _segad(**overrides):
    from iadbench.params import SegadParams
    from tests.conftest import TINY

    section = {**TINY["segad"], "detectors": ["padim"], **overrides}
    return SegadParams.from_params({**TINY, "segad": section})


def test_segad_brf_part_leaves_train_and_never_meets_validation_or_test(tiny_repo, split_params):
    manifest, categories = _tables()
    base = make_split(manifest, categories, split_params)
    split = make_split(manifest, categories, split_params, _segad(shots=2))
    assert split["image_id"].is_unique and len(split) == len(manifest)
    for product, group in split.groupby("product"):
        brf = group[group["split"] == "brf"]
        assert (brf["label"] == "good").sum() == 2, product  # round(0.5 * 3) of the train/good images
        assert (brf["label"] == "anomalous").sum() == 2, product  # the shots
        assert brf.loc[brf["label"] == "good", "image_path"].str.contains("/train/good/").all()
        assert len(group[group["split"] == "train"]) == 1  # the detectors keep the rest
        held_out = group[group["split"].isin(["validation", "test"])]
        assert not set(brf["image_id"]) & set(held_out["image_id"])
        assert (held_out.groupby("split")["label"].apply(lambda s: (s == "anomalous").sum()) >= 1).all()
    assert make_split(manifest, categories, split_params, _segad(shots=2)).equals(split)  # seeded
    segad = _segad(shots=2)
    result = split_gate(split, manifest, {"split": "data/split.csv"}, segad=segad)
    assert result.success, [str(v) for v in result.violations]
    wrong = split_gate(split, manifest, {"split": "data/split.csv"}, segad=_segad(shots=1))
    assert "the SegAD BRF part holds segad.shots anomalous images (0 without SegAD)" in {v.rule for v in wrong.errors}
    stray = {v.rule for v in split_gate(split, manifest, {"split": "x"}).errors}  # a brf part with SegAD off
    assert "the SegAD BRF part holds round(segad.brf_fraction·n) good train images (0 without SegAD)" in stray
    off = make_split(manifest, categories, split_params, _segad(detectors=[]))
    assert off.equals(base)  # SegAD off: the split of before

    from iadbench.data.summary import data_summary

    summary = data_summary(split, manifest, categories)
    assert summary["images"]["brf"] == 12 and summary["images"]["brf_anomalous"] == 6


def test_segad_too_many_shots_names_product_and_numbers(tiny_repo, split_params):
    manifest, categories = _tables()
    with pytest.raises(InputError) as err:
        make_split(manifest, categories, split_params, _segad(shots=5))
    message = str(err.value)
    assert message.startswith("data/manifest.csv: segad.shots takes anomalous test images out of validation and test")
    assert "product nut: 5 shot(s) asked, but it has 6 anomalous test image(s)" in message
    assert "most possible: 4" in message


def test_segad_brf_part_of_fewer_than_two_images_is_refused(tiny_repo, split_params):
    manifest, categories = _tables()
    with pytest.raises(InputError, match=r"at least 2 good train images for the BRF.*product nut: 0.2 of 3 .* is 1"):
        make_split(manifest, categories, split_params, _segad(brf_fraction=0.2))
    with pytest.raises(InputError, match=r"and 1 for the detectors.*product nut: 0.9 of 3 good train images is 3"):
        make_split(manifest, categories, split_params, _segad(brf_fraction=0.9))


def _with_shipped_validation(
    manifest: pd.DataFrame, categories: pd.DataFrame, products: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The manifest plus, per product of ``products``, two good images in a shipped validation/ folder (MVTec AD 2's
    layout: good only), and their categories rows (a train image's: no defect, its product's background)."""
    extra, cats = [], []
    for product in products:
        row = manifest[(manifest["product"] == product) & (manifest["split_folder"] == "train")].iloc[0]
        cat = categories[categories["image_id"] == row["image_id"]].iloc[0]
        for k in range(2):
            image_id = f"{product}/validation/good/{k:03d}.png"
            extra.append({**row.to_dict(), "image_id": image_id, "split_folder": "validation",
                          "sha256": f"shipped{product}{k}"})  # fmt: skip
            cats.append({**cat.to_dict(), "image_id": image_id})
    return (pd.concat([manifest, pd.DataFrame(extra)], ignore_index=True),
            pd.concat([categories, pd.DataFrame(cats)], ignore_index=True))  # fmt: skip


def test_shipped_validation_is_the_validation_split_and_test_keeps_every_test_image(tiny_repo, split_params):
    manifest, categories = _tables()
    products = tuple(sorted(manifest["product"].unique()))
    manifest, categories = _with_shipped_validation(manifest, categories, products)
    shipped = SplitParams.from_params({"split": {**split_params.model_dump(), "validation": "shipped"}})
    split = make_split(manifest, categories, shipped)
    validation = split[split["split"] == "validation"]
    assert set(validation["image_id"]) == set(manifest.loc[manifest["split_folder"] == "validation", "image_id"])
    assert (validation["label"] == "good").all()
    assert set(split.loc[split["split"] == "test", "image_id"]) == set(
        manifest.loc[manifest["split_folder"] == "test", "image_id"]
    )  # nothing drawn from test
    assert split_gate(split, manifest, {"split": "data/split.csv"}, validation="shipped").success
    # the same split judged as from_test fails: validation must hold anomalous images there
    assert not split_gate(split, manifest, {"split": "data/split.csv"}).success
    # from_test (the default): the shipped images are in no split, validation is drawn from test as before
    default = make_split(manifest, categories, split_params)
    assert (default.loc[default["image_id"].str.contains("/validation/"), "split"] == "excluded").all()
    before = make_split(*_tables(), split_params)
    assert default[~default["image_id"].str.contains("/validation/")].reset_index(drop=True).equals(before)
    assert split_gate(default, manifest, {"split": "data/split.csv"}).success


def test_shipped_validation_on_a_product_that_ships_none_names_it(tiny_repo, split_params):
    manifest, categories = _tables()
    products = sorted(manifest["product"].unique())
    manifest, categories = _with_shipped_validation(manifest, categories, tuple(products[:1]))
    shipped = SplitParams.from_params({"split": {**split_params.model_dump(), "validation": "shipped"}})
    with pytest.raises(InputError, match=rf"split.validation: shipped needs validation images.*{products[1]}"):
        make_split(manifest, categories, shipped)
    with pytest.raises(ParamsError, match="split.validation must be one of"):
        SplitParams.from_params({"split": {**split_params.model_dump(), "validation": "held_out"}})
