"""Where every feature grid sits on the image, and resampling that puts each cell where it really is.

A convolutional feature map is a grid of cells; cell ``j`` of one axis is centred on input pixel ``offset + stride·j``
(pixel centres at the integers ``0 … H−1``). The offset is not a property of the stride alone:

- a symmetric-padding convolution (kernel ``k``, dilation ``d``, padding ``p`` on each side, the PyTorch/timm
  default) maps output ``j`` to input ``s·j − p + d(k−1)/2``: with ``p = d(k−1)/2`` every cell of every stride is
  centred on ``stride·j`` (offset 0);
- TensorFlow "SAME" padding (timm ``tf_*`` models, :func:`timm.layers.pad_same`) puts the odd padding pixel on the
  right/bottom, so a stride-2 3×3 convolution on an even size maps ``j`` to ``2j + 1``: after ``n`` such layers the
  offset is ``stride − 1`` (e.g. +15 px at stride 16), and it changes with the parity of every intermediate size;
- ``F.interpolate(..., align_corners=False)`` (bilinear or nearest) assumes the cells tile the image like pixels of a
  smaller image, i.e. centres at ``stride·j + (stride − 1)/2`` — half a stride away from a symmetric CNN's cells,
  ``(stride − 1)/2`` away from SAME padding's, and nearest-neighbour copies shift by up to another half cell;
  ``align_corners=True`` stretches the grid to the image corners, a scale error of ``(H − stride·n)/(n − 1)`` per cell.

Library code upsamples feature grids with those assumptions, which moves every anomaly map against its image (the
probe of ``tests/models/probe.py``, run by ``tests/models/test_fidelity.py``, measured +6 px for PaDiM, +3 px for
STFPM and +8 px for PatchCore at 128 px before this module existed). :class:`GridPlacement` fixes it for every model
at once, without editing any model: while a model runs (fit and predict), a
:class:`torch.overrides.TorchFunctionMode` follows the grid of every spatial size from the image through each
``conv2d``, ``pad``, ``max_pool2d`` and ``avg_pool2d`` (the arithmetic above), and replaces each ``F.interpolate``
between two known grids by :func:`place`, a separable linear interpolation evaluated at the true cell centres (edge
cells extended, no wrap). An interpolation to a size whose grid is unknown (a whole-image resize) runs unchanged and
defines that size's grid; a size reached by two different grids is marked ambiguous and interpolations from it run
unchanged (recorded in :attr:`GridPlacement.fallbacks`).

Grids are keyed by spatial size: within one model every size that two layers share has the same geometry in every
architecture this benchmark registers (conflicts are detected, not assumed away).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch.overrides import TorchFunctionMode

Size = tuple[int, int]


@dataclass(frozen=True)
class Grid:
    """Cell ``j`` of axis ``a`` is centred on input pixel ``offset[a] + stride[a]·j``."""

    stride: tuple[float, float]
    offset: tuple[float, float]

    def through_window(
        self, kernel: tuple[int, int], stride: tuple[int, int], pad_before: tuple[int, int], dilation: tuple[int, int]
    ) -> Grid:
        """Grid after a sliding window (convolution or pooling): output ``j`` ↔ input ``s·j − p + d(k−1)/2``."""
        return Grid(
            tuple(self.stride[a] * stride[a] for a in (0, 1)),  # type: ignore[arg-type]
            tuple(
                self.offset[a] + self.stride[a] * (dilation[a] * (kernel[a] - 1) / 2 - pad_before[a]) for a in (0, 1)
            ),  # type: ignore[arg-type]
        )

    def resized(self, n_in: Size, n_out: Size, align_corners: bool) -> Grid:
        """The grid an unmodified ``F.interpolate`` implies for its output (whole-image resize semantics)."""
        strides, offsets = [], []
        for a in (0, 1):
            if align_corners and n_out[a] > 1:
                step = (n_in[a] - 1) / (n_out[a] - 1)
                strides.append(self.stride[a] * step)
                offsets.append(self.offset[a])
            else:
                step = n_in[a] / n_out[a]
                strides.append(self.stride[a] * step)
                offsets.append(self.offset[a] + self.stride[a] * (step - 1) / 2)
        return Grid(tuple(strides), tuple(offsets))  # type: ignore[arg-type]

    def close_to(self, other: Grid) -> bool:
        """Equal up to floating-point rounding."""
        values = zip(self.stride + self.offset, other.stride + other.offset, strict=True)
        return all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in values)


PIXELS = Grid((1.0, 1.0), (0.0, 0.0))


def _pair(value: Any, kind: type = int) -> tuple[Any, Any]:
    """A size, stride, padding or scale argument as (rows, cols): one number or a sequence of one or two."""
    values = [kind(v) for v in value] if isinstance(value, list | tuple) else [kind(value)]
    return (values[0], values[-1])


def _axis(n_src: int, n_dst: int, src: float, src_off: float, dst: float, dst_off: float, device: torch.device):
    position = (dst_off + dst * torch.arange(n_dst, dtype=torch.float64) - src_off) / src
    position = position.clamp(0, n_src - 1)
    lower = position.floor().long().clamp(max=n_src - 1)
    upper = (lower + 1).clamp(max=n_src - 1)
    return lower.to(device), upper.to(device), (position - lower).to(device)


def place(values: torch.Tensor, source: Grid, target: Grid, size: Size) -> torch.Tensor:
    """Resample ``values`` (``… × h × w`` on grid ``source``) onto ``size`` cells of grid ``target``.

    Linear interpolation along each axis at the target cells' true centres, expressed in source cells:
    ``u = (target.offset + target.stride·j − source.offset) / source.stride``, clamped to ``[0, n − 1]`` (cells beyond
    the outermost source centre take the edge value, as ``F.interpolate`` does).
    """
    out = values
    for axis, dim in ((0, -2), (1, -1)):
        n_src = out.shape[dim]
        lower, upper, weight = _axis(
            n_src, size[axis], source.stride[axis], source.offset[axis], target.stride[axis], target.offset[axis],
            out.device,
        )  # fmt: skip
        shape = [1] * out.dim()
        shape[dim] = size[axis]
        weight = weight.to(out.dtype).reshape(shape)
        out = out.index_select(dim, lower) * (1 - weight) + out.index_select(dim, upper) * weight
    return out


_INTERPOLATE_MODES = {"nearest", "nearest-exact", "bilinear", "bicubic"}


class GridPlacement(TorchFunctionMode):
    """Track feature grids from an ``image_size`` input and place every interpolation between known grids.

    Use around fit and predict: ``with GridPlacement((128, 128)) as placement: engine.fit(...)``. Afterwards
    :attr:`placed` counts the interpolations replaced by :func:`place` and :attr:`fallbacks` lists those left as the
    library wrote them (with the reason), which the cell metadata records.
    """

    def __init__(self, image_size: Size, shifts: dict[Size, tuple[float, float]] | None = None) -> None:
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.grids: dict[Size, Grid | None] = {}
        self.shifts: dict[Size, tuple[float, float]] = dict(shifts or {})  # measured: receptive_field_shifts
        self.placed = 0
        self.fallbacks: dict[str, int] = {}

    def grid_of(self, size: Size) -> Grid | None:
        """The geometric grid of a spatial size (the image size is always the pixel grid); None if unknown."""
        return PIXELS if size == self.image_size else self.grids.get(size)

    def effective_grid(self, size: Size) -> Grid | None:
        """The geometric grid moved by the measured receptive-field shift of that size: where its cells look."""
        grid = self.grid_of(size)
        shift = self.shifts.get(size)
        if grid is None or shift is None or size == self.image_size:
            return grid
        return Grid(grid.stride, (grid.offset[0] + shift[0], grid.offset[1] + shift[1]))

    def _record(self, size: Size, grid: Grid, source: Size | None = None) -> None:
        if size == self.image_size:
            return
        if size not in self.grids:
            self.grids[size] = grid
            if source in self.shifts and size not in self.shifts:  # a head's pooling keeps its input's shift
                self.shifts[size] = self.shifts[source]  # type: ignore[index]
        elif self.grids[size] is not None and not self.grids[size].close_to(grid):  # type: ignore[union-attr]
            self.grids[size] = None  # two geometries share this size: never guess between them

    def _fallback(self, reason: str) -> None:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        kwargs = kwargs or {}
        if func is F.interpolate:
            return self._interpolate(*args, **kwargs)
        out = func(*args, **kwargs)
        if func in _WINDOWS or func is F.pad:
            x, rest = (args[0], args[1:]) if args else (kwargs.pop("input", None), ())  # DFM calls by keyword
            if func is F.pad:
                self._pad(out, x, *rest, **kwargs)
            elif isinstance(out, torch.Tensor | tuple):
                self._window(func, out[0] if isinstance(out, tuple) else out, x, *rest, **kwargs)
        return out

    def _window(self, func: Any, out: torch.Tensor, x: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or out.dim() < 3:
            return
        grid = self.grid_of(tuple(x.shape[-2:]))  # type: ignore[arg-type]
        if grid is None:
            return
        if func is F.conv2d:
            names = ("weight", "bias", "stride", "padding", "dilation", "groups")
            given = dict(zip(names, args, strict=False)) | kwargs
            kernel = tuple(given["weight"].shape[-2:])
            stride, dilation = _pair(given.get("stride", 1)), _pair(given.get("dilation", 1))
            padding = given.get("padding", 0)
            if padding == "valid":
                padding = 0
            elif padding == "same":  # PyTorch puts the extra pixel of an even kernel on the right
                padding = tuple(dilation[a] * (kernel[a] - 1) // 2 for a in (0, 1))
        else:
            names = ("kernel_size", "stride", "padding", "dilation")
            given = dict(zip(names, args, strict=False)) | kwargs
            kernel = _pair(given["kernel_size"])
            stride = _pair(given.get("stride") or kernel)
            padding = given.get("padding", 0)
            dilation = _pair(given.get("dilation", 1)) if func is F.max_pool2d else (1, 1)
        new = grid.through_window(kernel, stride, _pair(padding), dilation)
        self._record(tuple(out.shape[-2:]), new, tuple(x.shape[-2:]))  # type: ignore[arg-type]

    def _pad(self, out: torch.Tensor, x: Any, pad: Any = (), *args: Any, **kwargs: Any) -> None:
        pad = kwargs.get("pad", pad)
        if not isinstance(x, torch.Tensor) or x.dim() < 3 or len(pad) < 4:
            return
        grid = self.grid_of(tuple(x.shape[-2:]))  # type: ignore[arg-type]
        if grid is not None:  # pad = (left, right, top, bottom): a window with kernel 1, stride 1, padding before
            new = grid.through_window((1, 1), (1, 1), (pad[2], pad[0]), (1, 1))
            self._record(tuple(out.shape[-2:]), new, tuple(x.shape[-2:]))  # type: ignore[arg-type]

    def _interpolate(
        self,
        x: torch.Tensor,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
        antialias: bool = False,
    ) -> torch.Tensor:
        out_size = (
            _pair(size)
            if size is not None
            else tuple(int(math.floor(n * f)) for n, f in zip(x.shape[-2:], _pair(scale_factor, float), strict=True))
        )
        source = self.effective_grid(tuple(x.shape[-2:])) if x.dim() == 4 else None  # type: ignore[arg-type]
        target = self.effective_grid(out_size)  # type: ignore[arg-type]

        def unchanged() -> torch.Tensor:
            return F.interpolate(x, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)

        if source is None:
            self._fallback(f"interpolate from {tuple(x.shape[-2:])}: grid unknown or ambiguous")
            return unchanged()
        if target is None:  # a resize to a new size: it defines the grid of that size
            out = unchanged()
            if out_size not in self.grids:
                self._record(out_size, source.resized(tuple(x.shape[-2:]), out_size, bool(align_corners)))  # type: ignore[arg-type]
            return out
        if tuple(x.shape[-2:]) == out_size and source.close_to(target):
            return unchanged()
        if mode not in _INTERPOLATE_MODES or antialias:
            self._fallback(f"interpolate mode={mode} antialias={antialias}")
            return unchanged()
        self.placed += 1
        return place(x, source, target, out_size)  # type: ignore[arg-type]


def _frozen_extractor(module: torch.nn.Module) -> Any:
    """The model's pretrained (frozen) timm feature extractor, else its first one; None for models without one."""
    from anomalib.models.components.feature_extractors import TimmFeatureExtractor

    found = [m for m in module.modules() if isinstance(m, TimmFeatureExtractor) and hasattr(m, "feature_extractor")]
    frozen = [m for m in found if not any(p.requires_grad for p in m.parameters())]
    return (frozen or found or [None])[0]


def shift_cache_dir() -> Path | None:
    """Where measured shifts are kept between processes: ``$IADBENCH_SHIFT_CACHE`` (``off`` for none), else
    ``$XDG_CACHE_HOME/iadbench/receptive-field-shifts`` (``~/.cache`` without it).
    """
    value = os.environ.get("IADBENCH_SHIFT_CACHE", "")
    if value.strip().lower() in {"0", "off", "no", "false"}:
        return None
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iadbench" / "receptive-field-shifts"


def shift_key(extractor: Any, image_size: int, canvas: int, seed: int) -> str:
    """What a measurement depends on, hashed: this module's source (the measuring code), torch's version, the
    extractor's architecture (``repr``), its selected layers and every weight and buffer, the size, canvas and seed.
    """
    net = extractor.feature_extractor
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"{torch.__version__}|{image_size}|{canvas}|{seed}|{getattr(extractor, 'layers', None)}".encode())
    digest.update(repr(net).encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode() + str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def receptive_field_shifts(
    module: torch.nn.Module, image_size: int, canvas: int = 512, seed: int = 0
) -> dict[str, list[float]]:
    """Per feature size at ``image_size``: where its cells look, minus where the padding arithmetic puts them.

    Measured once per extractor, weights, layers and size (:func:`shift_key`) and kept in :func:`shift_cache_dir`,
    so that the cells of one backbone do not measure it again (~3–5 s each on a CPU); the value is the same numbers
    either way (it consumes no seeded random stream: the noise comes from a forked generator).

    Trained kernels need not be centred: in the TensorFlow-trained EfficientNet-Lite0 the stride-2 5×5 depthwise
    kernel of ``blocks.2.0`` carries its weight half a tap up-left (−2 px at its input stride), and such biases add
    up to −3.5 px at stride 8 and −6 to −8 px at stride 16. A cell's *effective* receptive field (Luo et al.,
    "Understanding the Effective Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016) is the input
    gradient of its response; its centroid is where the cell looks. Measured here on the model's own extractor and
    weights, on a ``canvas``-pixel input (so that no receptive field is cut by the border) of two seeded noise
    images, for the 3 × 3 central cells of each layer: ``shift = centroid(|∂ Σ f² / ∂x|) − mean geometric centre``.
    A map is then placed where its cells look; for untrained weights the shift is ≈ 0 and only the geometry counts.
    """
    extractor = _frozen_extractor(module)
    if extractor is None:
        return {}
    cache = shift_cache_dir()
    cached = cache / f"{shift_key(extractor, image_size, canvas, seed)}.json" if cache is not None else None
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text())
    shifts = _measure_shifts(extractor.feature_extractor, image_size, canvas, seed)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(shifts))
        os.replace(partial, cached)  # whole or not at all: another process may be reading it
    return shifts


def _measure_shifts(net: torch.nn.Module, image_size: int, canvas: int, seed: int) -> dict[str, list[float]]:
    """The measurement of :func:`receptive_field_shifts` on a timm feature network."""
    was_training = net.training
    net.eval()
    shifts: dict[str, list[float]] = {}
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            x = (0.5 * torch.randn(2, 3, canvas, canvas)).requires_grad_(True)
        with GridPlacement((canvas, canvas)) as placement:
            features = net(x)
        with torch.no_grad(), GridPlacement((image_size, image_size)):
            at_size = [tuple(f.shape[-2:]) for f in net(torch.zeros(1, 3, image_size, image_size))]
        ys = torch.arange(canvas, dtype=torch.float64)
        for index, feature in enumerate(features):
            height, width = feature.shape[-2:]
            grid = placement.grid_of((height, width))
            if grid is None or height < 3 or width < 3:
                continue
            rows, cols = range(height // 2 - 1, height // 2 + 2), range(width // 2 - 1, width // 2 + 2)
            energy = feature[:, :, rows.start : rows.stop, cols.start : cols.stop].pow(2).sum()
            (gradient,) = torch.autograd.grad(energy, x, retain_graph=index < len(features) - 1)
            mass = gradient.abs().sum(dim=(0, 1)).double()
            centre_y = float((mass.sum(1) * ys).sum() / mass.sum())
            centre_x = float((mass.sum(0) * ys).sum() / mass.sum())
            geometric_y = grid.offset[0] + grid.stride[0] * (height // 2)
            geometric_x = grid.offset[1] + grid.stride[1] * (width // 2)
            size = at_size[index]
            shifts[f"{size[0]}x{size[1]}"] = [round(centre_y - geometric_y, 3), round(centre_x - geometric_x, 3)]
    finally:
        net.train(was_training)
    return shifts


def parse_shifts(shifts: dict[str, list[float]]) -> dict[Size, tuple[float, float]]:
    """``{"16x16": [dy, dx]}`` (as stored in metadata) → ``{(16, 16): (dy, dx)}``."""
    out = {}
    for key, (dy, dx) in shifts.items():
        height, width = key.split("x")
        out[(int(height), int(width))] = (float(dy), float(dx))
    return out


_WINDOWS = (F.conv2d, F.max_pool2d, F.avg_pool2d)
