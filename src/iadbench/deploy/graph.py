"""The exported graph: one explicit module, traced with iadbench's corrections inside it.

:class:`DeployedDetector` is what leaves the benchmark: ``image (1 × 3 × S × S, [0, 1]) → (anomaly map 1 × S × S,
score 1)``, i.e. the model's own normalisation, its trained network with ``post_processor=False`` (raw outputs, as
the predict stage stores them) and nothing else. The corrections that make iadbench's maps differ from anomalib's
are in the graph, not in a context that only exists at predict time:

- **Grid placement** (:mod:`iadbench.models.geometry`): :func:`trace` runs ``torch.export`` (non-strict, static
  shapes) inside :class:`~iadbench.models.geometry.GridPlacement` with the cell's measured receptive-field shifts,
  so every interpolation the mode places is recorded as the gathers and linear weights of
  :func:`~iadbench.models.geometry.place` (constant indices: the input size is fixed). The exported program needs
  neither the mode nor anomalib to reproduce them.
- **CFLOW's training maxima** (:mod:`iadbench.models.cflow`): buffers of the module, exported as constants; they
  are checked once before tracing (a cell without them is refused, as predict refuses it).

anomalib's CFLOW moves each decoder to the input's device inside ``forward``; an export is traced on one device,
so in the exported copy (never in the benchmark's module) that move is a no-op; and every tensor of the copy gets
its own compact storage (a buffer that is a view, like PaDiM's channel index, would otherwise be saved with the
unset memory of its larger storage: exports that differ from process to process). Nothing else is changed.

Measured (``tests/deploy/test_parity.py`` on the tiny configuration, ``benchmarks/deploy_speed.py`` on the demo's
cells): the exported torch program returns exactly the float32 values of the same module run eagerly at batch 1
under the mode; the stored maps were computed at the predict stage's batch size, whose CPU kernels round
differently (one float16 step at most on the demo's cells, where every verdict and mask pixel agreed).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from iadbench.errors import IadbenchError
from iadbench.models.cflow import TrainingReferenceMap
from iadbench.models.geometry import GridPlacement, parse_shifts


class DeployedDetector(nn.Module):
    """``image in [0, 1] → (raw anomaly map at size × size, raw image score)``, batch of one.

    Args:
        network: the trained anomalib torch model (``module.model``), in eval mode; its forward returns anomalib's
            ``InferenceBatch`` (``pred_score``, ``anomaly_map``).
        mean: per-channel normalisation mean of the model's pre-processor (0 where it has none).
        std: per-channel normalisation std (1 where it has none).
        size: the input side ``data.image_size``; a map of another size is resized to it bilinearly, as
            :func:`iadbench.models.run.infer` does (outside grid placement there too).

    """

    def __init__(self, network: nn.Module, mean: list[float], std: list[float], size: int) -> None:
        super().__init__()
        self.network = network
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(map ``N × S × S`` float32, score ``N`` float32) of a normalised ``image``."""
        out = self.network((image - self.mean) / self.std)
        maps = out.anomaly_map.reshape(image.shape[0], *out.anomaly_map.shape[-2:]).float()
        if tuple(maps.shape[-2:]) != (self.size, self.size):  # the aten op: not an F.interpolate the mode places
            maps = torch._C._nn.upsample_bilinear2d(maps[:, None], (self.size, self.size), False)[:, 0]
        return maps, out.pred_score.reshape(-1).float()


def normalisation(module: Any, size: int) -> tuple[list[float], list[float]]:
    """(mean, std) of the model's pre-processor, which may only resize to ``size`` (a no-op on the benchmark's
    ``size`` × ``size`` input) and normalise; anything else cannot be carried as data and is refused.
    """
    from torchvision.transforms.v2 import Compose, Normalize, Resize

    transform = getattr(getattr(module, "pre_processor", None), "transform", None)
    steps = [] if transform is None else list(transform.transforms) if isinstance(transform, Compose) else [transform]
    mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    for step in steps:
        if isinstance(step, Normalize):
            mean, std = [float(v) for v in step.mean], [float(v) for v in step.std]
        elif isinstance(step, Resize) and list(step.size) in ([size, size], [size]):
            continue
        else:
            raise IadbenchError(f"{type(module).__name__}: its pre-processor step {step!r} is not carried by an export")
    return mean, std


def _exportable_copy(network: nn.Module) -> nn.Module:
    """A copy of the network with the two export adjustments of the module docstring (the original is untouched)."""
    net = copy.deepcopy(network).eval()
    for module in net.modules():  # each tensor its own compact storage: a view's spare storage is unset memory,
        for name, buffer in module._buffers.items():  # which torch.export.save would write (PaDiM's channel index)
            if buffer is not None:
                module._buffers[name] = buffer.clone(memory_format=torch.contiguous_format)
        for param in module._parameters.values():
            if param is not None:
                param.data = param.data.clone(memory_format=torch.contiguous_format)
    generator = getattr(net, "anomaly_map_generator", None)
    if isinstance(generator, TrainingReferenceMap):
        if torch.isnan(generator.reference).any():
            raise IadbenchError(
                "cflow: the training log-likelihood maxima that normalise its maps are missing: run its train "
                "stage again before exporting"
            )
        generator.forward = generator.combine  # the checks above, once; the formula is the same method predict runs
    for decoder in getattr(net, "decoders", None) or []:
        decoder.to = (lambda module: lambda *args, **kwargs: module)(decoder)
    return net


def trace(module: Any, size: int, shifts: dict[str, list[float]], example: torch.Tensor) -> tuple[Any, dict[str, Any]]:
    """Export the trained Lightning ``module`` (eval) as a ``torch.export`` program of :class:`DeployedDetector`.

    Args:
        module: the cell's anomalib module with its trained state loaded.
        size: ``data.image_size``.
        shifts: the cell's ``receptive_field_shifts`` (meta.json), which grid placement uses at predict.
        example: one preprocessed image ``1 × 3 × S × S`` (a real one: the traced path is the one it takes).

    Returns:
        The program and what grid placement did while tracing (``placed``, ``left_as_written``), plus the eager
        reference outputs on ``example`` (``reference``) for the caller's check.

    """
    mean, std = normalisation(module, size)
    detector = DeployedDetector(_exportable_copy(module.model), mean, std, size).eval()
    with torch.no_grad(), GridPlacement((size, size), parse_shifts(shifts)):
        reference = detector(example)
    with torch.no_grad(), GridPlacement((size, size), parse_shifts(shifts)) as placement:
        program = torch.export.export(detector, (example,), strict=False)
    record = {"placed": placement.placed, "left_as_written": dict(placement.fallbacks), "mean": mean, "std": std}
    return program, {**record, "reference": [t.detach().numpy() for t in reference]}
