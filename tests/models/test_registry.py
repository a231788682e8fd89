import pytest

from iadbench.errors import ParamsError
from iadbench.models.registry import MODELS, ModelConfig, ModelConfigError, build_model
from iadbench.models.weights import WeightsError
from iadbench.params import ModelParams, TrainParams


def _cfg(model, **kw):
    base = {"image_size": 64, "backbone": "tf_efficientnet_lite0", "layers": ("blocks.1", "blocks.2", "blocks.4"),
            "weights": "none", "options": {}}  # fmt: skip
    base.update(kw)
    return ModelConfig(model=model, **base)


def test_registry_has_every_family_of_the_seeds():
    for name in ("ae", "stfpm", "padim", "cflow", "patchcore", "reverse_distillation"):
        assert name in MODELS
    assert not MODELS["dfkde"].pixel_maps and not MODELS["ganomaly"].pixel_maps


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ModelConfigError, match=r"unknown model 'padin'; valid: \[.*'padim'"):
        build_model(_cfg("padin"))


def test_segad_setups_are_registered_image_score_models_without_a_network():
    from iadbench.models.registry import get_entry

    for name in ("padim+segad", "all+segad"):
        entry = get_entry(name)
        assert (entry.pixel_maps, entry.image_score, entry.family) == (False, "model", get_entry(name).family)
    with pytest.raises(ModelConfigError, match="padim\\+segad is a SegAD setup, not a network: the segad stage"):
        build_model(_cfg("padim+segad"))
    with pytest.raises(ModelConfigError, match="dfkde\\+segad: dfkde writes image scores only; SegAD needs"):
        get_entry("dfkde+segad")
    with pytest.raises(ModelConfigError, match="unknown model 'padin'"):
        get_entry("padin+segad")


def test_unknown_backbone_and_layer():
    with pytest.raises(ModelConfigError, match="unknown timm backbone 'efficientnet_lite9'"):
        build_model(_cfg("padim", backbone="efficientnet_lite9"))
    with pytest.raises(ModelConfigError, match=r"layers \['blocks.3'\] are not feature stages of tf_eff"):
        build_model(_cfg("padim", layers=("blocks.1", "blocks.3")))


def test_image_size_not_accepted():
    with pytest.raises(ModelConfigError, match="ae does not accept data.image_size=48: needs a multiple of 32"):
        build_model(_cfg("ae", image_size=48))
    with pytest.raises(ModelConfigError, match="efficient_ad does not accept data.image_size=64"):
        build_model(_cfg("efficient_ad"))


def test_models_that_need_a_download_fail_at_construction(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        WeightsError, match=r"model_options.reverse_distillation.weights=hub needs a download of resnet18"
    ):
        build_model(_cfg("reverse_distillation", options={"weights": "hub"}))
    with pytest.raises(ModelConfigError, match="dsr needs anomalib's pretrained VQ model"):
        build_model(_cfg("dsr"))


def test_package_weights_reach_a_hard_coded_pretrained_teacher():
    """STFPM hard-codes pre_trained=True for its teacher: the package weights must reach it."""
    module, weights, _, requested = build_model(_cfg("stfpm", weights="package"))
    assert requested and set(requested) == {"tf_efficientnet_lite0"}
    teacher = dict(module.model.teacher_model.named_parameters())
    stem = next(v for k, v in teacher.items() if k.endswith("conv_stem.weight"))
    assert (stem == weights.state_dict["conv_stem.weight"]).all()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {
                "data": {"datasets": ["s"], "image_size": 16},
                "backbone": {"name": "x", "layers": ["a"], "weights": "none"},
            },
            "image_size must be in",
        ),
        (
            {"data": {"datasets": ["s"], "image_size": 64}, "backbone": {"name": "x", "layers": [], "weights": "none"}},
            "backbone.layers must be a non-empty list",
        ),
    ],
)
def test_model_params_out_of_range(section, message):
    with pytest.raises(ParamsError, match=message):
        ModelParams.from_params(section)


def test_train_params_out_of_range():
    with pytest.raises(ParamsError, match="train.epochs must be >= 1"):
        TrainParams.from_params({"train": {"seed": 0, "epochs": 0, "batch_size": 4, "num_workers": 0}})


def test_train_deterministic_flag_values():
    base = {"seed": 0, "epochs": 1, "batch_size": 4, "num_workers": 0}
    assert TrainParams.from_params({"train": base}).deterministic == "warn"
    assert TrainParams.from_params({"train": {**base, "deterministic": False}}).deterministic is False
    with pytest.raises(ParamsError, match="train.deterministic must be true, false or warn"):
        TrainParams.from_params({"train": {**base, "deterministic": "sometimes"}})


def test_unknown_option_names_the_model_the_key_and_the_valid_keys():
    with pytest.raises(ModelConfigError, match=r"model_options.padim has unknown option\(s\) \['n_featurs'\]; "
                       r"padim accepts \['layers', 'n_features'\]"):  # fmt: skip
        build_model(_cfg("padim", options={"n_featurs": 7}))
    with pytest.raises(ModelConfigError, match=r"model_options.cflow.coupling_blocks must be a int"):
        build_model(_cfg("cflow", options={"coupling_blocks": "eight"}))


def test_effective_options_fill_the_declared_defaults():
    from iadbench.models.registry import effective_options

    assert effective_options("cflow", {"coupling_blocks": 8})["coupling_blocks"] == 8
    assert effective_options("cflow", None) == MODELS["cflow"].options
    assert effective_options("patchcore", {"coreset_sampling_ratio": 1})["coreset_sampling_ratio"] == 1  # int ok


def test_params_yaml_lists_exactly_the_declared_options_and_defaults():
    """One truth: the shipped params.yaml shows every model's effective options, so code and params cannot drift."""
    from pathlib import Path

    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    assert set(params["model_options"]) == set(MODELS)
    for name, entry in MODELS.items():
        assert params["model_options"][name] == entry.options, name


def test_options_the_builders_used_to_ignore_reach_the_model(tmp_path):
    import timm
    import torch

    weights = tmp_path / "resnet18.pth"  # CFA's torchvision builder always loads weights: a local file serves it
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    module, *_ = build_model(_cfg("cfa", options={"weights": str(weights), "gamma_c": 3}))
    assert module.model.gamma_c == 3


def test_a_model_is_registered_where_its_builder_is_defined(monkeypatch):
    """``@register_model`` declares the entry on the builder (timm's pattern); a name twice is refused."""
    import pytest

    from iadbench.models import registry

    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))

    @registry.register_model("toy", "test double", options={"k": 3}, pixel_maps=False)
    def _toy(cfg, backbone, pretrained):
        return None

    entry = registry.MODELS["toy"]
    assert (entry.build, entry.options, entry.pixel_maps, entry.family) == (_toy, {"k": 3}, False, "test double")
    assert registry.effective_options("toy", None) == {"k": 3}
    with pytest.raises(ValueError, match="'padim' is registered twice"):
        registry.register_model("padim", "again")(_toy)


def test_training_epochs_most_specific_rule_first():
    """model_options.<m>.epochs beats train.epochs beats the profile; a memory bank is one pass whatever is set."""
    from iadbench.models.registry import training_epochs

    stfpm, padim = MODELS["stfpm"], MODELS["padim"]
    assert training_epochs(stfpm, {"epochs": None}, None, "demo") == (10, "profile demo")
    assert training_epochs(stfpm, {"epochs": None}, None, "full") == (100, "profile full")
    assert training_epochs(stfpm, {"epochs": None}, 3, "full") == (3, "train.epochs")
    assert training_epochs(stfpm, {"epochs": 40}, 3, "full") == (40, "model_options.stfpm.epochs")
    assert training_epochs(padim, {}, 3, "full") == (1, "one pass")
    assert MODELS["cflow"].epochs.of("full") == 50 and MODELS["draem"].epochs.of("full") == 700


def test_every_trained_method_declares_its_epochs_and_says_where_they_come_from():
    one_pass = {"padim", "patchcore", "dfm", "dfkde"}
    assert {n for n, e in MODELS.items() if e.epochs is None} == one_pass
    for name, entry in MODELS.items():
        assert ("epochs" in entry.options) == (name not in one_pass), name
        if entry.epochs is not None:
            assert entry.epochs.full >= entry.epochs.demo >= 1 and entry.epochs.source, name


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("padim", {"epochs": 5}, r"model_options.padim.epochs: padim is fitted in one pass \(a memory bank\)"),
        ("stfpm", {"epochs": 0}, r"model_options.stfpm.epochs must be an integer >= 1 or null .*got 0"),
        ("stfpm", {"epochs": 2.5}, r"model_options.stfpm.epochs must be an integer >= 1 or null .*got 2.5"),
        ("stfpm", {"epochs": True}, r"model_options.stfpm.epochs must be an integer >= 1 or null .*got True"),
    ],
)
def test_bad_epochs_option_names_the_file_the_key_and_the_rule(model, options, message):
    from iadbench.models.registry import effective_options

    with pytest.raises(ModelConfigError, match=r"params.yaml: " + message):
        effective_options(model, options)


def test_train_profile_and_global_epochs():
    base = {"seed": 0, "batch_size": 4, "num_workers": 0}
    train = TrainParams.from_params({"train": base})
    assert (train.profile, train.epochs) == ("demo", None)
    assert TrainParams.from_params({"train": {**base, "profile": "full", "epochs": None}}).profile == "full"
    with pytest.raises(ParamsError, match=r"train.profile must be one of 'demo' or 'full', got 'fast'"):
        TrainParams.from_params({"train": {**base, "profile": "fast"}})
