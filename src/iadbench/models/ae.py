"""Convolutional autoencoder with an SSIM loss (Bergmann et al., "Improving Unsupervised Defect Segmentation by
Applying Structural Similarity to Autoencoders", VISAPP 2019 / arXiv:1807.02011), as an anomalib module.

anomalib 2.7 has no plain autoencoder, so this is the AE family of [Rethinking] (docs/references.md) with the
SSIM loss of [SSIM-AE].

- Training loss: ``1 − mean SSIM(x, x̂)`` with an 11 × 11 Gaussian window (σ = 1.5), on images scaled to [0, 1].
- Anomaly map: ``1 − SSIM_local(x, x̂)`` averaged over channels (one value per pixel, in [0, 2]).
- Image score: the maximum of the anomaly map.
"""

from __future__ import annotations

from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch, InferenceBatch
from anomalib.models.components import AnomalibModule
from anomalib.pre_processing import PreProcessor
from kornia.metrics import ssim
from lightning.pytorch.utilities.types import STEP_OUTPUT
from torch import nn
from torchvision.transforms.v2 import Compose, Resize


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)
    )


class SsimAutoencoderModel(nn.Module):
    """Encoder of five stride-2 convolutions to a ``latent_dim``-channel bottleneck, mirrored decoder, sigmoid out."""

    def __init__(self, channels: int = 3, base: int = 32, latent_dim: int = 100) -> None:
        super().__init__()
        widths = [base, base, 2 * base, 2 * base, 4 * base]
        enc, c = [], channels
        for w in widths:
            enc.append(_down(c, w))
            c = w
        self.encoder = nn.Sequential(*enc, nn.Conv2d(c, latent_dim, 1))
        dec, c = [nn.Conv2d(latent_dim, widths[-1], 1), nn.LeakyReLU(0.2)], widths[-1]
        for w in reversed(widths[:-1]):
            dec.append(_up(c, w))
            c = w
        dec += [nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, image: torch.Tensor) -> torch.Tensor | InferenceBatch:
        """Reconstruction while training; anomaly map and score in eval mode."""
        reconstruction = self.decoder(self.encoder(image))
        if self.training:
            return reconstruction
        anomaly_map = (1.0 - ssim(image, reconstruction, window_size=11, max_val=1.0)).mean(dim=1)
        return InferenceBatch(pred_score=anomaly_map.flatten(1).amax(dim=1), anomaly_map=anomaly_map)


class SsimAutoencoder(AnomalibModule):
    """Lightning/anomalib wrapper: Adam, SSIM loss, fixed epochs (no early stopping)."""

    def __init__(
        self,
        latent_dim: int = 100,
        base_channels: int = 32,
        lr: float = 2e-4,
        weight_decay: float = 1e-5,
        pre_processor: nn.Module | bool = True,
        post_processor: nn.Module | bool = True,
        evaluator: Any = True,
        visualizer: Any = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        self.lr, self.weight_decay = lr, weight_decay
        self.model = SsimAutoencoderModel(3, base_channels, latent_dim)

    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize only: SSIM compares images in [0, 1], so no ImageNet normalisation."""
        return PreProcessor(transform=Compose([Resize(image_size or (256, 256), antialias=True)]))

    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """``loss = 1 − mean SSIM(x, x̂)``."""
        del args, kwargs
        reconstruction = self.model(batch.image)
        loss = 1.0 - ssim(batch.image, reconstruction, window_size=11, max_val=1.0).mean()
        self.log("train_loss", loss, on_epoch=True, on_step=False, prog_bar=True, logger=True)
        return {"loss": loss}

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Anomaly map and score for a batch."""
        del args, kwargs
        return batch.update(**self.model(batch.image)._asdict())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam (lr 2e-4, weight decay 1e-5 by default), as in Bergmann et al."""
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping, no sanity validation."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """Trained on good images only."""
        return LearningType.ONE_CLASS
