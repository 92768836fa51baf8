"""The DDPM U-Net denoiser: shapes, sparsity-bit channels, conditioning, bad arguments."""

from __future__ import annotations

import pytest
import torch

from sdd.nn import PAPER_UNET, UNet

TINY = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1}


def _randomise_zero_init(net: UNet, seed: int = 0) -> None:
    """Residual branches and the last convolution start at zero (so the untrained network
    returns 0); give them random weights so outputs depend on every input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize(
    ("channels", "size", "mult"),
    [
        (2, (28, 28), (1, 2, 2)),
        (4, (32, 32), (1, 2)),
        (1, (28, 20), (1, 1, 2, 2)),
        (2, (7, 9), (1, 2)),
    ],
)
def test_output_shape_any_size(channels, size, mult):
    net = UNet((channels, *size), base_channels=8, channel_mult=mult, num_res_blocks=1)
    x = torch.randn(3, channels, *size)
    out = net(x, torch.rand(3), torch.zeros_like(x))
    assert out.shape == x.shape


def test_sparsity_bit_channels_only_grow_first_and_last_conv():
    base = 16
    plain = UNet((1, 28, 28), base_channels=base, channel_mult=(1, 2), num_res_blocks=2)
    with_bits = UNet((2, 28, 28), base_channels=base, channel_mult=(1, 2), num_res_blocks=2)
    # input conv sees [x_t, self_cond]: 2 more input channels; output conv: 1 more channel
    expected = 2 * base * 9 + base * 9 + 1
    assert with_bits.n_params - plain.n_params == expected
    assert (with_bits.n_params - plain.n_params) / plain.n_params < 0.01


def test_paper_configuration_size():
    with torch.device("meta"):
        net = UNet((2, 28, 28), **PAPER_UNET)
    assert 35e6 < net.n_params < 39e6  # the paper quotes ~37M
    assert len(net.down) == 3 and len(net.down[0].blocks) == 2


def test_learns_a_fixed_target():
    torch.manual_seed(0)
    net = UNet((2, 12, 12), **TINY)
    x = torch.randn(8, 2, 12, 12)
    t = torch.rand(8)
    target = torch.sign(torch.randn(8, 2, 12, 12))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = ((net(x, t, torch.zeros_like(x)) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    # every parameter takes part in the computation
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_attention_and_time_dependence():
    net = UNet(
        (2, 8, 8), base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_stages=(0, 1)
    )
    _randomise_zero_init(net)
    x = torch.randn(2, 2, 8, 8)
    a = net(x, torch.full((2,), 0.1), torch.zeros_like(x))
    b = net(x, torch.full((2,), 0.9), torch.zeros_like(x))
    assert not torch.allclose(a, b)
    c = net(x, torch.full((2,), 0.1), torch.ones_like(x))
    assert not torch.allclose(a, c)  # self-conditioning input is used


def test_label_conditioning_and_null_token():
    net = UNet((2, 8, 8), **TINY, n_categories=[3])
    _randomise_zero_init(net)
    x = torch.randn(2, 2, 8, 8)
    t = torch.rand(2)
    sc = torch.zeros_like(x)
    out0 = net(x, t, sc, torch.tensor([[0], [0]]))
    out1 = net(x, t, sc, torch.tensor([[1], [1]]))
    assert not torch.allclose(out0, out1)
    assert torch.allclose(net(x, t, sc), net(x, t, sc, torch.tensor([[3], [3]])))


def test_bad_arguments():
    with pytest.raises(ValueError, match="attention_stages"):
        UNet((2, 28, 28), channel_mult=(1, 2), attention_stages=(2,))
    with pytest.raises(ValueError, match="num_heads"):
        UNet((2, 8, 8), base_channels=6, channel_mult=(1,), num_heads=4)
    with pytest.raises(ValueError, match="channel_mult"):
        UNet((2, 8, 8), channel_mult=())
    with pytest.raises(ValueError, match="input_shape"):
        UNet((2, 8, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        UNet((0, 8, 8))
    with pytest.raises(ValueError, match="dropout"):
        UNet((2, 8, 8), dropout=1.0)
    net = UNet((2, 8, 8), **TINY)
    x = torch.randn(1, 2, 9, 8)
    with pytest.raises(ValueError, match=r"shape \(B, 2, 8, 8\)"):
        net(x, torch.rand(1), torch.zeros_like(x))


def test_the_previous_channels_and_image_size_form_still_builds_the_same_network():
    torch.manual_seed(0)
    new = UNet((2, 8, 6), **TINY)
    torch.manual_seed(0)
    with pytest.warns(FutureWarning, match=r"UNet\(\(2, 8, 6\), ...\)"):
        old = UNet(2, (8, 6), **TINY)
    assert all(torch.equal(a, b) for a, b in zip(new.parameters(), old.parameters(), strict=True))
    with pytest.warns(FutureWarning):
        assert UNet(channels=2, image_size=8, **TINY).image_size == (8, 8)
