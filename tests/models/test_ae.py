import torch
from kornia.metrics import ssim
from torch import nn

from iadbench.models.ae import SsimAutoencoder, SsimAutoencoderModel


class _Echo(nn.Module):
    """A decoder that returns a fixed reconstruction, to test the map formula alone."""

    def __init__(self, reconstruction: torch.Tensor) -> None:
        super().__init__()
        self.reconstruction = reconstruction

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.reconstruction


def test_shapes_and_training_output():
    model = SsimAutoencoderModel(latent_dim=8, base=4)
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == x.shape
    model.eval()
    out = model(x)
    assert out.anomaly_map.shape == (2, 64, 64) and out.pred_score.shape == (2,)


def test_map_is_one_minus_local_ssim_and_score_its_max():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    model = SsimAutoencoderModel(latent_dim=8, base=4).eval()
    model.decoder = _Echo(x.clone())
    perfect = model(x)
    assert torch.allclose(perfect.anomaly_map, torch.zeros(1, 32, 32), atol=1e-5)
    damaged = x.clone()
    damaged[..., 10:14, 10:14] = 0.0
    model.decoder = _Echo(damaged)
    out = model(x)
    expected = (1 - ssim(x, damaged, window_size=11, max_val=1.0)).mean(dim=1)
    assert torch.allclose(out.anomaly_map, expected)
    assert out.pred_score.item() == expected.max().item()
    row, col = divmod(int(out.anomaly_map.flatten().argmax()), 32)
    assert 5 <= row <= 18 and 5 <= col <= 18, "the map must peak at the damage"


def test_pre_processor_only_resizes():
    pre = SsimAutoencoder.configure_pre_processor((64, 64))
    x = torch.rand(1, 3, 100, 80)
    y = pre.transform(x)
    assert y.shape == (1, 3, 64, 64) and y.min() >= 0 and y.max() <= 1
