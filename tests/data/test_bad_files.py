"""Files as users have them that used to pass wrong (issue: trust): each is refused or read right, the error names
the file and the rule, and the source folder stays byte-identical.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.data.images import open_image, resized_rgb
from iadbench.data.manifest import decode, scan
from iadbench.errors import InputError
from iadbench.gates.manifest import manifest_gate
from iadbench.params import GateParams
from tests.conftest import tree_digest

ROOT = Path("data/raw/synthetic")
PATHS = {"images": "data/manifest.csv", "masks": "data/manifest_masks.csv", "root": str(ROOT)}


def _gate_errors() -> dict[str, set[str]]:
    images, masks = scan(ROOT, "synthetic", progress=False)
    result = manifest_gate(images, masks, GateParams(empty_mask="warn"), PATHS)
    out: dict[str, set[str]] = {}
    for v in result.errors:
        out.setdefault(v.rule, set()).add(v.file)
    return out


def test_a_16_bit_grey_png_is_scaled_by_its_depth_not_saturated(tmp_path):
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "camera16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
        naive = np.asarray(im.convert("RGB"))
    assert (naive == 255).mean() > 0.99  # what .convert("RGB") did: nearly every pixel white
    rgb = resized_rgb(path, 64)
    expected = np.rint(values * 255.0 / 65535.0).astype(np.uint8)
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb == 255).mean() < 0.01
    facts, _ = decode(path)
    assert facts.decodes and facts.mode.startswith("I") and facts.channels == 1


def test_exif_orientation_is_applied(tmp_path):
    """A camera JPEG stored sideways with Orientation=6 (rotate 90° clockwise to display) is read upright."""
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # a white band on the left of the stored frame
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    upright = open_image(path)
    assert upright.size == (40, 80)  # width, height: turned
    arr = np.asarray(upright)
    assert arr[:20].mean() > 200 and arr[-20:].mean() < 50  # the band is now on top
    facts, _ = decode(path)
    assert (facts.width, facts.height) == (40, 80)  # the manifest compares this size with the mask's


def test_a_decompression_bomb_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40,000 pixels: above the limit (a warning in PIL)
    with pytest.raises(Image.DecompressionBombError):
        open_image(path)
    facts, _ = decode(path)
    assert not facts.decodes and facts.error.startswith("DecompressionBombError")


def test_the_same_image_in_train_and_test_is_leakage_naming_both_files(tiny_repo):
    before = tree_digest(ROOT / "nut/train")
    dup = ROOT / "nut/test/good/099.png"
    shutil.copy(ROOT / "nut/train/good/000.png", dup)
    errors = _gate_errors()
    rule = next(r for r in errors if r.startswith("an image's content (sha256) appears once per product"))
    assert errors[rule] == {"data/raw/synthetic/nut/train/good/000.png", dup.as_posix()}
    assert tree_digest(ROOT / "nut/train") == before


def test_an_image_too_small_for_any_model_is_refused(tiny_repo):
    tiny = ROOT / "weave/test/good/000.png"
    Image.new("RGB", (1, 1)).save(tiny)
    errors = _gate_errors()
    assert errors["image width is at least 32 px (the smallest model input, data.image_size >= 32)"] == {
        tiny.as_posix()
    }
    assert tiny.as_posix() in errors["image height is at least 32 px (the smallest model input, data.image_size >= 32)"]


def test_a_symlink_leading_outside_the_dataset_is_refused(tiny_dataset_template, tmp_path, monkeypatch):
    from iadbench.data.importer import import_dataset

    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    shutil.copy(tiny_dataset_template / "data/raw/synthetic/nut/train/good/000.png", secret)
    source = tmp_path / "outside" / "ds"
    shutil.copytree(tiny_dataset_template / "data/raw/synthetic/nut", source / "nut")
    link = source / "nut/train/good/900.png"
    link.symlink_to(secret)
    (source / "nut/train/good/901.png").symlink_to(source / "nut/train/good/000.png")  # inside: fine alone
    before = tree_digest(source)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    with pytest.raises(InputError, match=r"900.png: symbolic link to .*secret.png, outside the dataset: refused"):
        import_dataset(source, "linked", track=False, default_categories=False)
    assert not Path("data/raw").exists()  # refused before anything was copied
    assert tree_digest(source) == before


def test_the_label_studio_database_is_private(tmp_path, monkeypatch):
    """The SQLite file holds the API token: the server runs with umask 077, and files an earlier run left readable
    become 600.
    """
    from iadbench.annotation import server

    data = tmp_path / "ls"
    data.mkdir()
    db = data / "label_studio.sqlite3"
    db.write_text("token")
    db.chmod(0o644)
    seen = {}

    def fake_popen(cmd, env, umask, **kwargs):
        seen.update(cmd=cmd, env=env, umask=umask)
        return "process"

    monkeypatch.setenv("LABEL_STUDIO_USERNAME", "a@b.invalid")
    monkeypatch.setenv("LABEL_STUDIO_PASSWORD", "12345678")
    monkeypatch.setattr(server.subprocess, "Popen", fake_popen)
    assert server.start("127.0.0.1", 1, data_dir=data, binary=Path("/bin/true")) == "process"
    assert seen["umask"] == 0o077
    assert stat.S_IMODE(db.stat().st_mode) == 0o600 and stat.S_IMODE(data.stat().st_mode) == 0o700
    assert "12345678" not in " ".join(seen["cmd"])
