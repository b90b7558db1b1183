"""Improved UNet: Palette state_dict compatibility, forward equivalence, init, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ddpm_lab.nn import count_parameters, gamma_embedding, init_weights
from ddpm_lab.unet import UNet

FIXTURES = Path(__file__).parent / "fixtures"
TINY = dict(in_channel=6, out_channel=3, inner_channel=32, channel_mults=[1, 2], attn_res=[8],
            num_head_channels=8, res_blocks=1, dropout=0.0, image_size=16)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIXTURES / "palette_unet_keys.json").read_text())


@pytest.fixture(scope="module")
def tiny_a() -> dict:
    return torch.load(FIXTURES / "palette_unet_tiny_a.pt", weights_only=True)


@pytest.fixture(autouse=True)
def _seed_and_precision():
    torch.manual_seed(0)
    if torch.cuda.is_available():  # the fixture is float32; TF32 would add ~1e-3 noise
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def meta_unet(**kw) -> UNet:
    with torch.device("meta"):  # no memory is allocated for the weights
        return UNet(**kw)


def shapes(model: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def attention_blocks(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if type(m).__name__ == "AttentionBlock"]


# --- Palette compatibility -----------------------------------------------------------------------
def test_course_config_matches_palette_manifest(manifest):
    model = meta_unet(**manifest["config"])
    got = shapes(model)
    assert len(got) == manifest["num_state_dict_entries"] == 326
    assert got == manifest["state_dict"]  # same keys, same order, same shapes
    assert count_parameters(model) == manifest["num_parameters"] == 62_641_347
    assert attention_blocks(model) == manifest["attention_blocks"] == ["middle_block.1"]


def test_defaults_are_the_course_config(manifest):
    assert shapes(meta_unet()) == manifest["state_dict"]


def test_tiny_fixture_forward_equivalence(tiny_a):
    model = UNet(**tiny_a["config"])
    model.load_state_dict(tiny_a["state_dict"], strict=True)
    model.eval()
    x, gammas = tiny_a["x"], tiny_a["gammas"]
    assert gammas.shape == (2, 1)
    with torch.no_grad():
        out = model(x, gammas)
        out_flat = model(x, gammas.flatten())  # (B,) works the same
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out, tiny_a["out"], atol=2e-5, rtol=1e-5)
    assert torch.allclose(out_flat, tiny_a["out"], atol=2e-5, rtol=1e-5)


def test_fixture_catches_wrong_qkv_order(tiny_a):
    """Same weights, new (q|k|v-first) split: the fixture test above would fail."""
    model = UNet(**tiny_a["config"], use_new_attention_order=True)
    model.load_state_dict(tiny_a["state_dict"], strict=True)  # same shapes, so it loads
    model.eval()
    with torch.no_grad():
        err = (model(tiny_a["x"], tiny_a["gammas"]) - tiny_a["out"]).abs().max().item()
    assert err > 1e-3


def test_scalar_gamma_broadcasts_over_batch(tiny_a):
    model = UNet(**tiny_a["config"]).eval()
    model.load_state_dict(tiny_a["state_dict"])
    x = tiny_a["x"]
    with torch.no_grad():
        a = model(x, torch.tensor(0.3))
        b = model(x, torch.full((2, 1), 0.3))
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="gammas"):
        model(x, torch.rand(3))


# --- embedding and init --------------------------------------------------------------------------
def test_gamma_embedding_closed_form():
    e0 = gamma_embedding(torch.zeros(1), 8)
    assert torch.equal(e0, torch.tensor([[1.0, 1, 1, 1, 0, 0, 0, 0]]))  # cos first
    # dim 5 -> half 2, freqs 10000^(-0/2)=1 and 10000^(-1/2)=0.01, then one zero pad
    e = gamma_embedding(torch.tensor([[0.5], [0.9]]), 5)
    g = torch.tensor([0.5, 0.9], dtype=torch.float64)
    want = torch.stack([g.cos(), (0.01 * g).cos(), g.sin(), (0.01 * g).sin(), 0 * g], dim=1)
    assert e.shape == (2, 5)
    assert torch.allclose(e.double(), want, atol=1e-7)
    assert math.isclose(e[1, 2].item(), math.sin(0.9), abs_tol=1e-7)


def test_fresh_model_outputs_zero_until_init_weights():
    model = UNet(**TINY).eval()
    x, g = torch.randn(2, 6, 16, 16), torch.rand(2)
    with torch.no_grad():
        assert torch.equal(model(x, g), torch.zeros(2, 3, 16, 16))
        init_weights(model)  # Palette's trainer: Kaiming normal (fan_in), zero biases
        out = model(x, g)
    assert out.abs().mean() > 1e-2
    conv = model.output_blocks[0][0].in_layers[2]  # 3x3 conv 128 -> 64, fan_in = 1152
    assert torch.all(conv.bias == 0)
    assert math.isclose(conv.weight.std().item(), math.sqrt(2 / 1152), rel_tol=0.05)
    assert torch.all(model.out[0].weight == 1) and torch.all(model.out[0].bias == 0)


# --- "pixels" mode and other options -------------------------------------------------------------
def test_attn_res_pixels_mode_keys():
    cfg = dict(TINY, image_size=32, attn_res=[16])
    palette = meta_unet(**cfg)  # 16 as a downsampling factor: never reached
    pixels = meta_unet(**cfg, attn_res_unit="pixels")  # 16x16 map of a 32 input: ds = 2
    assert attention_blocks(palette) == ["middle_block.1"]
    assert attention_blocks(pixels) == [
        "input_blocks.3.1", "middle_block.1", "output_blocks.0.1", "output_blocks.1.1"]
    keys_p, keys_x = set(palette.state_dict()), set(pixels.state_dict())
    assert "output_blocks.1.1.in_layers.0.weight" in keys_p  # the up-ResBlock sits at [1] ...
    assert "output_blocks.1.2.in_layers.0.weight" in keys_x  # ... and moves to [2] after attention
    assert "input_blocks.3.1.qkv.weight" in keys_x - keys_p
    assert shapes(pixels) == shapes(meta_unet(**dict(cfg, attn_res=[2])))  # same as ds=2


@pytest.mark.parametrize("res", [12, 64, 4])  # not a divisor / bigger than the image / unreached
def test_attn_res_pixels_mode_rejects_impossible_sizes(res):
    with pytest.raises(ValueError, match="feature-map size"):
        meta_unet(**dict(TINY, image_size=32, attn_res=[res]), attn_res_unit="pixels")


def test_resblock_updown_off_and_checkpointing():
    model = meta_unet(**TINY, resblock_updown=False)
    keys = set(model.state_dict())
    assert "input_blocks.2.0.op.weight" in keys and "output_blocks.1.1.conv.weight" in keys
    torch.manual_seed(0)
    plain = init_weights(UNet(**TINY))
    ckpt = UNet(**TINY, use_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    x, g = torch.randn(1, 6, 16, 16), torch.rand(1)
    grads = []
    for m in (plain, ckpt):
        m(x, g).square().mean().backward()
        grads.append(m.middle_block[1].qkv.weight.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0


def test_autocast_bf16_runs_and_keeps_input_dtype():
    model = init_weights(UNet(**TINY)).eval()
    x, g = torch.randn(1, 6, 16, 16), torch.rand(1)
    with torch.no_grad():
        ref = model(x, g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, g)
    assert out.dtype == torch.float32  # the input's dtype, although the last conv ran in bf16
    rel = ((out - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.05  # bf16 rounding, not garbage (and bf16 really was used)


# --- bad input -----------------------------------------------------------------------------------
def test_channels_not_multiple_of_32():
    with pytest.raises(ValueError, match="inner_channel"):
        meta_unet(**dict(TINY, inner_channel=16))


def test_unknown_attn_res_unit():
    with pytest.raises(ValueError, match="attn_res_unit"):
        meta_unet(**TINY, attn_res_unit="resolution")


def test_bad_forward_inputs():
    model = UNet(**TINY)
    with pytest.raises(ValueError, match="multiples of 2"):
        model(torch.randn(1, 6, 15, 16), torch.rand(1))
    with pytest.raises(ValueError, match="in_channel=6"):
        model(torch.randn(1, 3, 16, 16), torch.rand(1))
    assert model(torch.randn(1, 6, 8, 24), torch.rand(1)).shape == (1, 3, 8, 24)  # any multiple
