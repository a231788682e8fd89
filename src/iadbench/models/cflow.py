"""CFLOW's anomaly map with constants fixed at training time, so that an image's map never depends on its batch.

CFLOW-AD (Gudovskiy, Ishizaka, Kozuka, "CFLOW-AD: Real-Time Unsupervised Anomaly Detection with Localization via
Conditional Normalizing Flows", WACV 2022) turns each layer ``l``'s per-position log-likelihood (per feature
dimension) ``ll_l`` into a map by

    p_l = exp(ll_l − max ll_l),   S = Σ_l upsample(p_l),   map = max S − S.

The reference code takes both maxima over the *whole test set*; anomalib 2.7 (``cflow/anomaly_map.py``) takes them
over the *current batch*, so the same trained cell gave image AUROC 0.440 / 0.323 / 0.691 on the synthetic ``nut`` at
batch sizes 1 / 16 / 64 (known upstream: anomalib issue 169, cflow-ad issue 24). Either way a score depends on the
other images scored with it, which a deployed detector cannot do.

Here the constants come from the training images, measured once after fitting (:func:`calibrate`):

    m_l = max over every position of every training image of ll_l,   map = L − Σ_l upsample(exp(ll_l − m_l)),

with ``L`` the number of layers (the value of ``Σ_l exp(·)`` where every layer sits at its training maximum).
Per image this is a fixed, decreasing function of each layer's likelihood — the method's own combination — so
pixel and image rankings within a batch are unchanged when the batch is the whole test set and ``m_l`` equal its
maxima; across images it is the same map whatever the batch. ``m_l`` are buffers of the module: saved with the
cell's state and loaded at predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from iadbench.errors import IadbenchError


class TrainingReferenceMap(nn.Module):
    """Drop-in for anomalib's CFLOW ``AnomalyMapGenerator`` with the batch maxima replaced by training maxima."""

    def __init__(self, pool_layers: Sequence[str]) -> None:
        super().__init__()
        self.pool_layers = list(pool_layers)
        self.register_buffer("reference", torch.full((len(self.pool_layers),), float("nan")))
        self.calibrating = False

    def forward(
        self,
        distribution: list[torch.Tensor],
        height: list[int],
        width: list[int],
        image_size: tuple[int, int] | torch.Size | None = None,
    ) -> torch.Tensor:
        """``L − Σ_l upsample(exp(ll_l − m_l))``; while calibrating, record ``m_l`` and return zeros."""
        batch = distribution[0].numel() // (height[0] * width[0])
        if self.calibrating:
            for index, layer in enumerate(distribution):
                peak = layer.detach().max()
                known = self.reference[index]
                self.reference[index] = peak if torch.isnan(known) else torch.maximum(known, peak)
            return torch.zeros(batch, *(image_size or (height[0], width[0])), device=distribution[0].device)
        if torch.isnan(self.reference).any():
            raise IadbenchError(
                "cflow: the training log-likelihood maxima that normalise its maps are missing "
                "(a cell trained before iadbench fixed CFLOW's batch dependence): run its train stage again"
            )
        return self.combine(distribution, height, width, image_size)

    def combine(
        self,
        distribution: list[torch.Tensor],
        height: list[int],
        width: list[int],
        image_size: tuple[int, int] | torch.Size | None = None,
    ) -> torch.Tensor:
        """``L − Σ_l upsample(exp(ll_l − m_l))`` with the recorded ``m_l`` (no checks: :meth:`forward` checks them;
        an exported graph, :mod:`iadbench.deploy.graph`, checks them once before tracing).
        """
        total: torch.Tensor | None = None
        for index in range(len(self.pool_layers)):
            layer = torch.exp(distribution[index].detach() - self.reference[index])
            layer = layer.reshape(-1, 1, height[index], width[index])
            if image_size is not None:  # placed at the true cell centres by GridPlacement while a model runs
                layer = F.interpolate(layer, size=tuple(image_size), mode="bilinear", align_corners=False)
            total = layer if total is None else total + layer
        assert total is not None
        return len(self.pool_layers) - total[:, 0]


def install(module: Any) -> None:
    """Replace the batch-normalised map generator of an anomalib ``Cflow`` module."""
    module.model.anomaly_map_generator = TrainingReferenceMap(module.model.pool_layers)


def calibrate(module: Any, batches: Any) -> dict[str, Any]:
    """Measure ``m_l`` on the training images (eval mode, no gradients); return them for the cell metadata."""
    generator = module.model.anomaly_map_generator
    if not isinstance(generator, TrainingReferenceMap):
        return {}
    generator.reference.fill_(float("nan"))
    generator.calibrating = True
    module.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                module(batch.image.to(generator.reference.device))
    finally:
        generator.calibrating = False
    return {"cflow_reference_loglik": [round(float(v), 6) for v in generator.reference]}
