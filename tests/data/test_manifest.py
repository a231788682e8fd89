from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.data.manifest import mask_facts, read_table, scan, write_table
from iadbench.errors import InputErrors
from iadbench.gates.manifest import manifest_gate
from iadbench.params import GateParams
from tests.conftest import tree_digest

ROOT = Path("data/raw/synthetic")
PATHS = {"images": "data/manifest.csv", "masks": "data/manifest_masks.csv", "root": str(ROOT)}


def _gate(params: GateParams | None = None):
    images, masks = scan(ROOT, "synthetic", progress=False)
    return manifest_gate(images, masks, params or GateParams(empty_mask="warn"), PATHS)


def _rules(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for v in result.errors:
        out.setdefault(v.rule, set()).add(v.file)
    return out


def test_scan_records_every_image_with_facts(tiny_repo):
    images, masks = scan(ROOT, "synthetic", progress=False)
    assert len(images) == len(list(ROOT.rglob("*.*"))) - len(masks)
    row = images.set_index("image_id").loc["tiles/test/crack/000.jpg"]
    assert (row["channels"], row["format"], row["label"]) == (1, "JPEG", "anomalous")
    assert row["mask_path"] == "data/raw/synthetic/tiles/ground_truth/crack/000_mask.png"
    assert bool(row["mask_binary"]) and not bool(row["mask_empty"])
    assert images["decodes"].all() and masks["has_image"].all()
    assert len(images["sha256"].unique()) == len(images)


def test_manifest_roundtrip_is_stable(tiny_repo):
    images, _ = scan(ROOT, "synthetic", progress=False)
    write_table(images, Path("a.csv"))
    write_table(read_table(Path("a.csv")), Path("b.csv"))
    assert Path("a.csv").read_bytes() == Path("b.csv").read_bytes()


def test_clean_dataset_passes_the_gate(tiny_repo):
    result = _gate()
    assert result.success, [str(v) for v in result.violations]


def test_corrupt_and_truncated_images_fail_with_file_and_rule(tiny_repo):
    Path(ROOT / "nut/test/crack/000.png").write_bytes(b"not an image at all")
    data = (ROOT / "weave/train/good/001.png").read_bytes()
    (ROOT / "weave/train/good/001.png").write_bytes(data[: len(data) // 2])
    before = tree_digest(ROOT)
    result = _gate()
    assert not result.success
    assert _rules(result)["image file decodes (not corrupt or truncated)"] == {
        "data/raw/synthetic/nut/test/crack/000.png",
        "data/raw/synthetic/weave/train/good/001.png",
    }
    assert tree_digest(ROOT) == before, "validation must never modify data/raw"


def test_mask_of_another_size(tiny_repo):
    mask = ROOT / "nut/ground_truth/dent/000_mask.png"
    Image.open(mask).resize((20, 30)).save(mask)
    rules = _rules(_gate())
    assert rules["mask has the width of its image"] == {str(mask)}
    assert rules["mask has the height of its image"] == {str(mask)}


def test_non_binary_mask(tiny_repo):
    mask = ROOT / "weave/ground_truth/hole/000_mask.png"
    arr = np.asarray(Image.open(mask)).copy()
    arr[0, :5] = 128
    Image.fromarray(arr).save(mask)
    assert _rules(_gate())["mask is binary (one channel, values 0/255 or 0/1)"] == {str(mask)}


MASK_RULE = (
    "every anomalous image has a mask (ground_truth/<defect>/<stem>_mask.png, or drawn in Label Studio; "
    "--missing-masks annotate: pending)"
)


def test_missing_and_orphan_masks(tiny_repo):
    (ROOT / "tiles/ground_truth/stain/000_mask.png").rename(ROOT / "tiles/ground_truth/stain/999_mask.png")
    rules = _rules(_gate())
    assert rules[MASK_RULE] == {"data/raw/synthetic/tiles/test/stain/000.jpg"}
    assert rules["no mask without an image (orphan mask)"] == {
        "data/raw/synthetic/tiles/ground_truth/stain/999_mask.png"
    }


def test_defect_folder_under_train_fails(tiny_repo):
    bad = ROOT / "nut/train/scratch"
    bad.mkdir()
    (ROOT / "nut/test/scratch/000.png").rename(bad / "000.png")
    (ROOT / "nut/ground_truth/scratch/000_mask.png").unlink()
    assert _rules(_gate())["train/ holds only good images (train/good)"] == {str(bad / "000.png")}


def test_empty_mask_warns_by_default_and_fails_when_asked(tiny_repo):
    mask = ROOT / "nut/ground_truth/glue/000_mask.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(mask)
    warned = _gate(GateParams(empty_mask="warn"))
    assert warned.success and [v.file for v in warned.warnings] == [str(mask)]
    failed = _gate(GateParams(empty_mask="fail"))
    assert not failed.success and [v.file for v in failed.errors] == [str(mask)]


def test_empty_product_and_missing_folders_stop_the_scan(tiny_repo):
    (ROOT / "empty_product/train/good").mkdir(parents=True)
    (ROOT / "empty_product/test").mkdir()
    (ROOT / "no_layout").mkdir()
    with pytest.raises(InputErrors) as err:
        scan(ROOT, "synthetic", progress=False)
    message = str(err.value)
    assert "data/raw/synthetic/empty_product: empty product" in message
    assert "data/raw/synthetic/no_layout: product folder must hold train/ and test/" in message


def test_product_without_anomalous_test_images(tiny_repo):
    for folder in (ROOT / "tiles/test").iterdir():
        if folder.name != "good":
            for f in folder.iterdir():
                f.unlink()
    for f in (ROOT / "tiles/ground_truth").rglob("*.png"):
        f.unlink()
    assert _rules(_gate())["every product has anomalous test images (test/<defect_type>)"] == {
        "data/raw/synthetic/tiles"
    }


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 255], [0, 0]], np.uint8), (True, False, 0.25)),
        (np.array([[0, 1], [1, 1]], np.uint8), (True, False, 0.75)),
        (np.zeros((2, 2), np.uint8), (True, True, 0.0)),
        (np.array([[0, 128], [255, 0]], np.uint8), (False, False, 0.5)),
    ],
)
def test_mask_facts(array, expected):
    assert mask_facts(Image.fromarray(array)) == expected


def test_rgb_mask_with_equal_channels_is_binary():
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[1, 1] = 255
    assert mask_facts(Image.fromarray(arr))[0]
    arr[2, 2, 0] = 255
    assert not mask_facts(Image.fromarray(arr))[0]


def _segments(product: str, array) -> Path:
    path = ROOT / product / "segments.png"
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _segment_gate():
    from iadbench.data.manifest import scan_segments

    images, masks = scan(ROOT, "synthetic", progress=False)
    segments = scan_segments(ROOT, images)
    paths = {**PATHS, "segments": "data/manifest_segments.csv"}
    return segments, manifest_gate(images, masks, GateParams(empty_mask="warn"), paths, segments)


def test_a_good_segmentation_image_is_recorded_and_passes(tiny_repo):
    labels = np.zeros((48, 48))
    labels[:, 24:] = 1
    _segments("nut", labels)
    before = tree_digest(ROOT)
    segments, result = _segment_gate()
    assert result.success, [str(v) for v in result.violations]
    row = segments.set_index("product").loc["nut"]
    assert bool(row["exists"]) and bool(row["labels_ok"]) and bool(row["sizes_ok"]) and row["n_labels"] == 2
    assert not bool(segments.set_index("product").loc["weave", "exists"])  # optional: no file, no rule
    assert tree_digest(ROOT) == before


def test_bad_segmentation_images_fail_with_file_and_rule(tiny_repo):
    _segments("nut", np.zeros((40, 48)))  # another size than the images (48 x 48)
    gap = np.zeros((48, 48))
    gap[:, 24:] = 2  # labels 0 and 2: label 1 missing
    _segments("weave", gap)
    (ROOT / "tiles/segments.png").write_bytes(b"not a png")
    _, result = _segment_gate()
    rules = _rules(result)
    assert rules["segments.png has the size of every image of its product"] == {"data/raw/synthetic/nut/segments.png"}
    assert rules["segments.png labels are 0..L-1, every label present"] >= {"data/raw/synthetic/weave/segments.png"}
    assert rules["segments.png decodes to one label per pixel"] == {"data/raw/synthetic/tiles/segments.png"}


def test_several_datasets_scan_into_one_table_with_prefixed_ids(tiny_repo):
    import shutil

    from iadbench.data.categories import dataset_votes, resolve_categories
    from iadbench.data.manifest import scan_datasets

    shutil.copytree(ROOT / "nut", Path("data/raw/second/nut"))
    roots = {"synthetic": ROOT, "second": Path("data/raw/second")}
    images, masks, segments = scan_datasets(roots, {"synthetic": "synthetic/", "second": "second/"}, progress=False)
    assert set(images["product"]) == {"synthetic/nut", "synthetic/weave", "synthetic/tiles", "second/nut"}
    assert images["image_id"].is_unique and images["image_id"].str.startswith(("synthetic/", "second/")).all()
    assert set(images.loc[images["product"] == "second/nut", "dataset"]) == {"second"}
    assert masks["image_id"].str.startswith(("synthetic/", "second/")).all()
    assert set(segments["product"]) == set(images["product"])
    # the synthetic export names images by their path under data/raw/synthetic, whatever the run's prefix
    votes = dataset_votes(Path("annotation/exports/synthetic.json"), ROOT, images)
    assert votes and all(v.image_id.startswith("synthetic/") for v in votes)
    table = resolve_categories(votes, images)
    assert (table.loc[table["product"] == "synthetic/nut", "background"] != "").all()
    gate = manifest_gate(images, masks, GateParams(empty_mask="warn"), PATHS)
    assert gate.success  # the product folders of both datasets are found from their images


def test_a_dataset_that_is_not_imported_is_named(tiny_repo):
    from iadbench.data.manifest import scan_datasets

    roots = {"synthetic": ROOT, "btad": Path("data/raw/btad"), "visa": Path("data/raw/visa")}
    with pytest.raises(InputErrors, match=r"data/raw/btad: data.datasets names 'btad' but the folder does not exist"
                       r".*\n.*data/raw/visa"):  # fmt: skip
        scan_datasets(roots, dict.fromkeys(roots, ""), progress=False)


def test_drawn_masks_replace_and_complete_the_shipped_ones(tiny_repo):
    """A drawn mask is the image's mask (a corrected shipped one too), with its source; a drawn mask of an image
    the dataset does not have, or a record whose file is missing, is refused naming masks.json."""
    import json

    from iadbench.data.drawn import drawn_masks
    from iadbench.errors import InputError

    export = Path("annotation/masks/synthetic")
    target = export / "tiles/test/crack/000.png"  # the image is a .jpg: drawn masks are always PNG
    target.parent.mkdir(parents=True)
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(target)
    record = {"images": {"tiles/test/crack/000.jpg": {"mask_source": "shipped_corrected"}}}
    (export / "masks.json").write_text(json.dumps(record))
    images, _ = scan(ROOT, "synthetic", progress=False, drawn=drawn_masks(export), drawn_record=export / "masks.json")
    row = images.set_index("image_id").loc["tiles/test/crack/000.jpg"]
    assert (row["mask_path"], row["mask_source"]) == (target.as_posix(), "shipped_corrected")
    assert row["mask_fraction"] == 1.0
    assert set(images.loc[images["label"] == "good", "mask_source"]) == {""}

    record["images"]["tiles/train/good/000.jpg"] = {"mask_source": "drawn"}  # a train image: never masked
    (export / "tiles/train/good").mkdir(parents=True)
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(export / "tiles/train/good/000.png")
    (export / "masks.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="drawn masks for images that are not anomalous validation/test images"):
        scan(ROOT, "synthetic", progress=False, drawn=drawn_masks(export), drawn_record=export / "masks.json")
    (export / "tiles/train/good/000.png").unlink()
    with pytest.raises(InputError, match=r"image tiles/train/good/000.jpg: its mask file is missing"):
        drawn_masks(export)
    (export / "masks.json").write_text(json.dumps({"images": {"tiles/test/crack/000.jpg": {"mask_source": "ai"}}}))
    with pytest.raises(InputError, match="mask_source must be one of"):
        drawn_masks(export)
