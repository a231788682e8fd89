import pytest

from iadbench.cli import main


def test_missing_params_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["split"]) == 2
    assert "params.yaml: params file not found" in capsys.readouterr().err


def test_params_out_of_range_names_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("split: {seed: 0, val_fraction: 1}\n")
    assert main(["split"]) == 2
    err = capsys.readouterr().err
    assert "split.val_fraction must be strictly between 0 and 1, got 1.0" in err
    assert "Traceback" not in err


def test_gate_failure_exits_1_and_prints_file_and_rule(tiny_repo, capsys):
    (tiny_repo / "params.yaml").write_text("data: {dataset: synthetic, image_size: 64}\ngates: {empty_mask: warn}\n")
    (tiny_repo / "data/raw/synthetic/nut/test/crack/000.png").write_bytes(b"garbage")
    assert main(["--quiet", "manifest"]) == 0
    assert main(["gate", "manifest"]) == 1
    captured = capsys.readouterr()
    assert "ERROR data/raw/synthetic/nut/test/crack/000.png: rule: image file decodes" in captured.err
    assert (tiny_repo / "reports/gates/manifest.json").is_file()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "synthesize: {seed: 0, image_size: 8, products: [nut], n_train: 2, n_test_good: 2, n_test_per_defect: 1, "
            "annotators: 1, annotator_error: 0.1}",
            "synthesize.image_size must be in [32, 1024]",
        ),
        (
            "synthesize: {seed: 0, image_size: 64, products: [bolt], n_train: 2, n_test_good: 2, n_test_per_defect: 1, "
            "annotators: 1, annotator_error: 0.1}",
            "synthesize.products[0] must be one of 'nut', 'weave' or 'tiles', got 'bolt'",
        ),
        ("data: {dataset: ../../etc}", "data.datasets: '../../etc' must be a plain folder name"),
    ],
)
def test_other_params_errors(tmp_path, monkeypatch, capsys, section, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(section + "\n")
    verb = "manifest" if section.startswith("data") else "synthesize"
    assert main([verb]) == 2
    assert message in capsys.readouterr().err


def test_models_verb_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "padim" in out and "scores only" in out
    assert "stands in for the multiresolution KD (MKD) of [Rethinking]" in out
    assert "options: layers=None, n_features=100" in out  # declared options with their defaults
    assert "<detector>+segad" in out and "all+segad" in out


def test_typo_in_model_options_stops_training_with_the_valid_keys(tiny_repo, capsys):
    from pathlib import Path

    import yaml

    from tests.conftest import TINY

    Path("params.yaml").write_text(yaml.safe_dump(TINY))
    for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
        assert main(verb) == 0
    params = {**TINY, "model_options": {**TINY["model_options"], "padim": {"n_featurs": 7}}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert main(["train", "--model", "padim", "--product", "nut"]) != 0
    err = capsys.readouterr().err
    assert "model_options.padim has unknown option(s) ['n_featurs']; padim accepts ['layers', 'n_features']" in err
    assert not Path("models/padim/nut/model.pt").exists()


def test_unknown_model_on_the_command_line(tiny_repo, capsys):
    import yaml

    from tests.conftest import TINY

    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(TINY))
    assert main(["train", "--model", "padin", "--product", "nut"]) == 2
    assert "unknown model 'padin'; valid:" in capsys.readouterr().err
