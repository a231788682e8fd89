"""Importers for the public formats, each on a small generated fixture in its real layout (with the odd cases)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.data.category_maps import MAPS_DIR, count_table, default_map, load_map
from iadbench.data.formats import FORMATS, Options, binary_mask, detect_format
from iadbench.data.importer import import_dataset
from iadbench.data.manifest import list_files, mask_facts, scan
from iadbench.errors import IadbenchError, InputError, InputErrors
from tests.conftest import tree_digest


def _image(path: Path, size: int = 16, mode: str = "RGB") -> Path:
    """Random pixels seeded by the file's place in its dataset (its last four path parts): the same file gets the
    same bytes whichever tests run before it, and two files of a dataset never share their content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    seed = int.from_bytes(hashlib.sha256("/".join(path.parts[-4:]).encode()).digest()[:8], "little")
    pixels = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def _mask(path: Path, size: int = 16, high: int = 255, dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size, size), dtype)
    arr[4:8, 4:8] = high
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def btad(root: Path) -> Path:
    """BTAD as released: 01 has .bmp images and .png masks, 02 .png images and 0/1 masks."""
    for product, ext in (("01", ".bmp"), ("02", ".png")):
        for k in range(3):
            _image(root / product / "train" / "ok" / f"{k:03d}{ext}")
        for k in range(2):
            _image(root / product / "test" / "ok" / f"{k:03d}{ext}")
        for k in range(2):
            _image(root / product / "test" / "ko" / f"{k:03d}{ext}")
            _mask(root / product / "ground_truth" / "ko" / f"{k:03d}.png", high=255 if product == "01" else 1)
    return root


def visa(root: Path) -> Path:
    """VisA as released: JPEG images under Data/Images, masks under Data/Masks (0/1 and 0/255), the split CSV."""
    rows = ["object,split,label,image,mask"]
    for k in range(3):
        rel = f"candle/Data/Images/Normal/{k:04d}.JPG"
        _image(root / rel).rename(root / rel)  # PIL picks the format from the extension: JPEG
        rows.append(f"candle,train,normal,{rel},")
    rel = "candle/Data/Images/Normal/0100.JPG"
    _image(root / rel)
    rows.append(f"candle,test,normal,{rel},")
    for k, high in ((0, 1), (1, 255)):
        rel = f"candle/Data/Images/Anomaly/{k:03d}.JPG"
        mask = f"candle/Data/Masks/Anomaly/{k:03d}.png"
        _image(root / rel)
        _mask(root / mask, high=high)
        rows.append(f"candle,test,anomaly,{rel},{mask}")
    rows.append("pcb1,train,normal,pcb1/Data/Images/Normal/0000.JPG,")  # a product the user did not download
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


def mvtec3d(root: Path) -> Path:
    """MVTec 3D-AD: rgb/ and xyz/ per type, its own validation/good, 16-bit gt masks."""
    p = root / "bagel"
    for k in range(3):
        _image(p / "train" / "good" / "rgb" / f"{k:03d}.png")
        (p / "train" / "good" / "xyz").mkdir(parents=True, exist_ok=True)
        (p / "train" / "good" / "xyz" / f"{k:03d}.tiff").write_bytes(b"not read")
    for k in range(2):
        _image(p / "validation" / "good" / "rgb" / f"{k:03d}.png")
    _image(p / "test" / "good" / "rgb" / "000.png")
    _mask(p / "test" / "good" / "gt" / "000.png", high=0)
    for k in range(2):
        _image(p / "test" / "crack" / "rgb" / f"{k:03d}.png")
        _mask(p / "test" / "crack" / "gt" / f"{k:03d}.png", high=65535, dtype=np.uint16)
    return root


def mvtec_ad2(root: Path, public: bool = True) -> Path:
    """MVTec AD 2 as released: train/good, validation/good (good only), test_public/{good,bad} with
    ground_truth/bad/<stem>_mask.png, and the private test sets without ground truth."""
    p = root / "can"
    for k in range(3):
        _image(p / "train" / "good" / f"{k:03d}_regular.png")
    for k in range(2):
        _image(p / "validation" / "good" / f"{k:03d}_regular.png")
    if public:
        _image(p / "test_public" / "good" / "000_regular.png")
        for k in range(2):
            _image(p / "test_public" / "bad" / f"{k:03d}_overexposed.png")
            _mask(p / "test_public" / "ground_truth" / "bad" / f"{k:03d}_overexposed_mask.png")
    for k in range(2):
        _image(p / "test_private" / f"{k:03d}.png")
    _image(p / "test_private_mixed" / "000.png")
    return root


def folder(root: Path, masks: bool = True) -> Path:
    """anomalib's Folder layout: good/, one folder per defect type, masks/<type>/ (one mask missing)."""
    for k in range(6):
        _image(root / "good" / f"g{k}.png", mode="L")
    for k in range(3):
        _image(root / "crack" / f"c{k}.png", mode="L")
        if masks and k < 2:
            _mask(root / "masks" / "crack" / f"c{k}.png")
    return root


def mvtec(root: Path, product: str = "bottle", types: tuple[str, ...] = ("broken_large", "contamination")) -> Path:
    for k in range(2):
        _image(root / product / "train" / "good" / f"{k:03d}.png")
        _image(root / product / "test" / "good" / f"{k:03d}.png")
    for t in types:
        _image(root / product / "test" / t / "000.png")
        _mask(root / product / "ground_truth" / t / "000_mask.png")
    return root


@pytest.mark.parametrize("make, name", [(btad, "btad"), (visa, "visa"), (mvtec3d, "mvtec3d"), (folder, "folder"),
                                        (mvtec, "mvtec"), (mvtec_ad2, "mvtec_ad2")])  # fmt: skip
def test_each_fixture_is_detected_as_its_format(tmp_path, make, name):
    assert detect_format(make(tmp_path / name)) == name


def _masks_ok(dest: Path) -> None:
    images, _ = scan(dest, "x", progress=False)
    anomalous = images[images["label"] == "anomalous"]
    assert anomalous["mask_exists"].all() and anomalous["mask_binary"].all()
    for path in anomalous["mask_path"]:
        assert set(np.unique(np.asarray(Image.open(path)))) <= {0, 255}


def test_btad_import(workdir, tmp_path):
    src = btad(tmp_path / "BTech_Dataset_transformed")
    before = tree_digest(src)
    result = import_dataset(src, "btad", track=False)
    dest = workdir / "data/raw/btad"
    assert result.fmt == "btad" and tree_digest(src) == before
    assert sorted(p.name for p in (dest / "01/train/good").iterdir()) == ["000.bmp", "001.bmp", "002.bmp"]
    assert len(list((dest / "02/test/good").iterdir())) == 2
    assert sorted(p.name for p in (dest / "02/ground_truth/ko").iterdir()) == ["000_mask.png", "001_mask.png"]
    _masks_ok(dest)  # 02's 0/1 masks came out 0/255
    record = json.loads((dest / "import.json").read_text())
    assert record["format"] == "btad" and record["images"] == 14
    tasks = json.loads((workdir / "annotation/exports/btad.json").read_text())  # the shipped BTAD map
    assert len(tasks) == 4 and {t["annotations"][0]["completed_by"] for t in tasks} == {"iadbench-import"}


def test_visa_import_handles_jpeg_and_both_mask_codings(workdir, tmp_path):
    result = import_dataset(visa(tmp_path / "VisA"), "visa", track=False)
    dest = workdir / "data/raw/visa"
    listing = list_files(dest)
    assert {(s, d) for _, s, d, _ in listing.images} == {("train", "good"), ("test", "good"), ("test", "bad")}
    assert all(p.suffix == ".JPG" for _, _, _, p in listing.images)
    _masks_ok(dest)
    assert any("pcb1" in n for n in result.notes)  # listed in the CSV, absent from the folder: said, not dropped
    assert not (workdir / "annotation/exports/visa.json").exists()  # no shipped VisA map: label it
    assert any("no categories yet" in n for n in result.notes)


def test_visa_csv_naming_a_missing_file_copies_nothing(workdir, tmp_path):
    src = visa(tmp_path / "VisA")
    (src / "candle/Data/Images/Anomaly/001.JPG").unlink()
    before = tree_digest(src)
    with pytest.raises(InputErrors, match=r"1cls\.csv:\d+: names an image that does not exist"):
        import_dataset(src, "visa", track=False)
    assert tree_digest(src) == before and not (workdir / "data/raw").exists()


def test_mvtec3d_validation_images_join_train_and_are_reported(workdir, tmp_path):
    result = import_dataset(mvtec3d(tmp_path / "mvtec_3d"), "m3d", track=False)
    dest = workdir / "data/raw/m3d"
    names = sorted(p.name for p in (dest / "bagel/train/good").iterdir())
    assert names == ["000.png", "001.png", "002.png", "validation_000.png", "validation_001.png"]
    assert any("2 validation/good image(s) joined train/good" in n for n in result.notes)
    assert not list(dest.rglob("*.tiff"))  # RGB only
    assert not (dest / "bagel/ground_truth/good").exists()  # good test gt (all zero) is not a defect mask
    _masks_ok(dest)  # 16-bit 0/65535 masks came out 0/255


def test_mvtec_ad2_keeps_its_validation_split_and_skips_the_private_tests(workdir, tmp_path):
    src = mvtec_ad2(tmp_path / "mvtec_ad_2")
    before = tree_digest(src)
    result = import_dataset(src, "ad2", track=False)
    assert tree_digest(src) == before
    dest = workdir / "data/raw/ad2/can"
    assert sorted(p.name for p in (dest / "validation/good").iterdir()) == ["000_regular.png", "001_regular.png"]
    assert len(list((dest / "train/good").iterdir())) == 3 and len(list((dest / "test/good").iterdir())) == 1
    assert sorted(p.name for p in (dest / "ground_truth/bad").iterdir()) == [
        "000_overexposed_mask.png", "001_overexposed_mask.png"]  # fmt: skip
    assert any("skipped (no ground truth) test_private: 2, test_private_mixed: 1" in n for n in result.notes)
    assert not (dest / "test_private").exists() and not (dest / "test_public").exists()
    listing = list_files(workdir / "data/raw/ad2")
    assert sorted({s for _, s, _, _ in listing.images}) == ["test", "train", "validation"]
    _masks_ok(workdir / "data/raw/ad2")


def test_mvtec_ad2_without_test_public_is_refused(workdir, tmp_path):
    src = mvtec_ad2(tmp_path / "mvtec_ad_2", public=False)
    with pytest.raises(InputErrors, match=r"can: MVTec AD 2 product has no test_public/"):
        import_dataset(src, "ad2", track=False, fmt="mvtec_ad2")
    assert not (workdir / "data/raw").exists()


def test_folder_import_missing_mask_policies(workdir, tmp_path):
    src = folder(tmp_path / "mine")
    before = tree_digest(src)
    with pytest.raises(InputErrors, match=r"c2\.png: anomalous image has no mask"):
        import_dataset(src, "mine", track=False, options=Options(product="widget"))
    assert tree_digest(src) == before and not (workdir / "data/raw").exists()
    result = import_dataset(src, "mine", track=False, options=Options(product="widget"), missing_masks="skip")
    dest = workdir / "data/raw/mine/widget"
    assert len(list((dest / "test/good").iterdir())) == 1 and len(list((dest / "train/good").iterdir())) == 5
    assert len(list((dest / "test/crack").iterdir())) == 2
    assert any("left out" in n for n in result.notes)


def test_folder_empty_mask_policy_and_a_stable_good_test_choice(workdir, tmp_path):
    src = folder(tmp_path / "mine")
    import_dataset(src, "a", track=False, missing_masks="empty")
    import_dataset(src, "b", track=False, missing_masks="empty")
    a, b = workdir / "data/raw/a/a", workdir / "data/raw/b/b"
    assert sorted(p.name for p in (a / "test/good").iterdir()) == sorted(p.name for p in (b / "test/good").iterdir())
    empty = np.asarray(Image.open(a / "ground_truth/crack/c2_mask.png"))
    assert mask_facts(Image.open(a / "ground_truth/crack/c2_mask.png"))[1] and empty.max() == 0


def test_mvtec_import_applies_the_shipped_map_and_reports_count_differences(workdir, tmp_path):
    result = import_dataset(mvtec(tmp_path / "mvtec_ad"), "mvtec", track=False)
    tasks = json.loads((workdir / "annotation/exports/mvtec.json").read_text())
    got = {t["data"]["image"].split("/test/")[1]: t["annotations"][0]["result"][0]["value"]["choices"] for t in tasks}
    assert got == {"broken_large/000.png": ["structural"], "contamination/000.png": ["contamination"]}
    assert any("differ from the public mvtec_ad release" in n and "bottle/broken_large: 1 (release 20)" in n
               for n in result.notes)  # fmt: skip


def test_mvtec_layout_of_unknown_products_gets_no_default_map(workdir, tmp_path):
    result = import_dataset(mvtec(tmp_path / "own", product="gear", types=("chip",)), "own", track=False)
    assert not (workdir / "annotation/exports/own.json").exists()
    assert any("does not cover gear/chip" in n for n in result.notes)


def test_unknown_and_mixed_formats(workdir, tmp_path):
    empty = tmp_path / "nothing"
    (empty / "stuff").mkdir(parents=True)
    with pytest.raises(InputError, match="no known dataset format found.*btad: <product>/train/ok/.*folder: good/"):
        import_dataset(empty, "x", track=False)
    mixed = btad(tmp_path / "mixed")
    mvtec(mixed, product="bottle")
    before = tree_digest(mixed)
    with pytest.raises(InputError, match=r"mixed formats in one folder.*btad: \['01', '02'\]; mvtec: \['bottle'\]"):
        import_dataset(mixed, "x", track=False)
    with pytest.raises(InputError, match=r"not in the visa layout.*do not match"):
        import_dataset(mixed, "x", track=False, fmt="visa")
    with pytest.raises(IadbenchError, match=r"--format must be one of"):
        import_dataset(mixed, "x", track=False, fmt="kolektor")
    assert tree_digest(mixed) == before and not (workdir / "data/raw").exists()


def test_binary_mask_reads_every_coding(tmp_path):
    for high, dtype in ((1, np.uint8), (255, np.uint8), (65535, np.uint16)):
        path = _mask(tmp_path / f"m{high}.png", high=high, dtype=dtype)
        assert set(np.unique(binary_mask(path))) == {0, 255}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png: mask does not decode"):
        binary_mask(bad)


def test_shipped_maps_are_valid_and_the_count_table_reads_them():
    for fmt in ("mvtec", "btad"):
        assert default_map(fmt) is not None
    mvtec_map = default_map("mvtec")
    assert len(mvtec_map.products) == 15 and sum(mvtec_map.n_test.values()) == 1258  # MVTec AD's anomalous test set
    table = count_table("mvtec").set_index("product")
    bottle = table.loc["bottle"]
    assert (bottle["map_structural"], bottle["map_contamination"], bottle["paper_structural"]) == (42, 21, "41")
    assert set(FORMATS) == {"mvtec", "btad", "visa", "mvtec3d", "mvtec_ad2", "folder"}  # no map: types say nothing


def test_a_bad_map_file_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("product,defect_type,category,background,n_test\nx,y,dirt,with,1\n")
    with pytest.raises(InputError, match="m.csv: category must be one of"):
        load_map(path)
    path.write_text("product,defect_type,category,background,n_test\nx,y,surface,with,1\nx,z,surface,without,1\n")
    with pytest.raises(InputError, match="one background category"):
        load_map(path)
    assert (MAPS_DIR / "paper_counts.csv").is_file()


def test_cli_import_prints_notes_and_refuses_with_exit_2(workdir, tmp_path, capsys):
    from iadbench.cli import main

    src = folder(tmp_path / "mine")
    args = ["--quiet", "import", str(src), "--name", "mine", "--no-dvc", "--format", "folder", "--product", "gear"]
    assert main(args) == 2  # a mask is missing: refused, source untouched
    assert "c2.png: anomalous image has no mask" in capsys.readouterr().err
    assert main([*args, "--missing-masks", "empty", "--good-test-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "imported (folder format, 9 images)" in out and "note: gear: 3 of 6 good images went to test/good" in out
    empty = tmp_path / "nothing"
    (empty / "x").mkdir(parents=True)
    assert main(["--quiet", "import", str(empty), "--name", "other", "--no-dvc"]) == 2
    assert "no known dataset format found" in capsys.readouterr().err


def test_folder_annotate_policy_keeps_the_images_with_their_masks_pending(workdir, tmp_path):
    from iadbench.data.drawn import read_pending
    from iadbench.data.manifest import scan
    from iadbench.gates.manifest import manifest_gate
    from iadbench.params import GateParams
    from tests.conftest import copy_gx

    copy_gx(workdir)
    src = folder(tmp_path / "mine")
    result = import_dataset(src, "mine", track=False, options=Options(product="widget"), missing_masks="annotate")
    root = workdir / "data/raw/mine"
    assert read_pending(root) == {"widget/test/crack/c2.png"} == set(result.record["pending_masks"])
    assert not (root / "widget/ground_truth/crack/c2_mask.png").exists()  # no mask file: nothing pretends
    assert any("wait for a mask drawn in Label Studio" in n for n in result.notes)
    images, masks = scan(root, "mine", progress=False, pending=read_pending(root))
    sources = images.set_index("image_id")["mask_source"]
    assert sources["widget/test/crack/c2.png"] == "pending" and sources["widget/test/crack/c1.png"] == "shipped"
    assert (images.loc[images["split_folder"] == "train", "mask_source"] == "").all()
    paths = {"images": "data/manifest.csv", "masks": "data/manifest_masks.csv"}

    def mask_errors(table):  # the fixture's 16-px images break the size rule: only the mask rules matter here
        result = manifest_gate(table, masks, GateParams(empty_mask="warn"), paths)
        return {Path(v.file).name for v in result.errors if "mask" in v.rule}

    assert mask_errors(images) == set()  # pending is not missing
    assert mask_errors(images.assign(mask_source="")) == {"c2.png"}  # without the import's word for it: missing
