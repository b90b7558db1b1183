"""The course's basic UNet with its errata fixed."""

import math

import pytest
import torch

from ddpm_lab import Block, SimpleUnet, SinusoidalPositionEmbeddings


def test_embedding_closed_form():
    emb = SinusoidalPositionEmbeddings(8)(torch.tensor([0.0, 3.0]))
    freqs = [10000 ** (-i / 3) for i in range(4)]  # denominator half - 1 = 3, as in the course
    expected = [math.sin(3 * f) for f in freqs] + [math.cos(3 * f) for f in freqs]
    torch.testing.assert_close(emb[1], torch.tensor(expected))
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionEmbeddings(7)


def test_up_block_has_its_layers_and_runs():
    """Erratum 1: the course's up Block has no conv2/bnrm1/bnrm2/relu and crashes."""
    up = Block(16, 8, time_emb_dim=32, up=True)
    for name in ("conv2", "bnrm1", "bnrm2", "relu"):
        assert hasattr(up, name)
    out = up(torch.randn(2, 32, 4, 4), torch.randn(2, 32))
    assert out.shape == (2, 8, 8, 8)
    down = Block(8, 16, time_emb_dim=32)
    assert down(torch.randn(2, 8, 8, 8), torch.randn(2, 32)).shape == (2, 16, 4, 4)


def test_course_widths_and_shapes():
    with torch.device("meta"):
        net = SimpleUnet()
    assert net.conv0.in_channels == 6 and net.output.out_channels == 3
    assert [b.conv1.out_channels for b in net.downs] == [128, 256, 512, 1024]
    assert [b.conv1.in_channels for b in net.ups] == [2048, 1024, 512, 256]
    small = SimpleUnet(down_channels=(8, 16, 32, 64, 128))
    assert small(torch.randn(2, 6, 32, 48), torch.rand(2, 1)).shape == (2, 3, 32, 48)


def test_noise_level_is_scaled_so_the_embedding_varies():
    net = SimpleUnet(down_channels=(8, 16, 32, 64, 128)).eval()
    emb = net.time_mlp[0]
    a, b = emb(torch.tensor([0.30 * 1000])), emb(torch.tensor([0.31 * 1000]))
    assert (a - b).abs().max() > 0.5  # a 0.01 change of gamma moves the embedding clearly
    x = torch.randn(1, 6, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(net(x, torch.tensor([0.30])), net(x, torch.tensor([0.31])))
        torch.testing.assert_close(net(x.repeat(2, 1, 1, 1), torch.tensor(0.3)), net(x.repeat(2, 1, 1, 1), torch.tensor([0.3, 0.3])))


def test_bad_sizes():
    net = SimpleUnet(down_channels=(8, 16, 32, 64, 128))
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.randn(1, 6, 40, 40), torch.rand(1))
    with pytest.raises(ValueError, match="6 input channels"):
        net(torch.randn(1, 3, 32, 32), torch.rand(1))
