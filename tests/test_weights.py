"""load_weights: every checkpoint format the course meets, and clear errors for the rest."""

from pathlib import Path

import pytest
import torch

from ddpm_lab import InpaintingGaussianDiffusion, UNet, load_weights
from ddpm_lab.profiles import COURSE_BETA_SCHEDULE, PALETTE_BETA_SCHEDULE

FIXTURE = Path(__file__).parent / "fixtures" / "palette_unet_tiny_a.pt"


class NotATensor:
    pass


@pytest.fixture(scope="module")
def tiny():
    return torch.load(FIXTURE, weights_only=True)


def fresh(tiny, schedule=COURSE_BETA_SCHEDULE):
    return InpaintingGaussianDiffusion(dict(tiny["config"]), schedule).eval()


def output(model, tiny):
    with torch.no_grad():
        return model.denoise_fn(tiny["x"], tiny["gammas"])


def palette_network_state(tiny, n_timestep=2000):
    """What Palette's {epoch}_Network.pth holds: its training schedule's buffers + denoise_fn.*"""
    palette = InpaintingGaussianDiffusion(dict(tiny["config"]), PALETTE_BETA_SCHEDULE)
    palette.denoise_fn.load_state_dict(tiny["state_dict"])
    state = palette.state_dict()
    assert state["gammas"].shape == (n_timestep,)
    return state


def test_palette_network_pth_with_2000_step_buffers(tiny, tmp_path):
    path = tmp_path / "100_Network.pth"
    torch.save(palette_network_state(tiny), path)
    model = fresh(tiny)
    report = load_weights(model, path)
    assert report.format == "network" and len(report.ignored) == 6
    assert model.gammas.shape == (20,)  # the model keeps its own schedule
    torch.testing.assert_close(output(model, tiny), tiny["out"], atol=2e-5, rtol=1e-5)


def test_palette_ema_pth_only_denoise_fn(tiny, tmp_path):
    state = {"denoise_fn." + k: v for k, v in tiny["state_dict"].items()}
    path = tmp_path / "100_Network_ema.pth"
    torch.save(state, path)
    model = fresh(tiny)
    assert load_weights(model, path).format == "network-ema"
    torch.testing.assert_close(output(model, tiny), tiny["out"], atol=2e-5, rtol=1e-5)


def test_bare_unet_state_dict_into_either_target(tiny):
    model = fresh(tiny)
    assert load_weights(model, tiny["state_dict"]).format == "unet"
    torch.testing.assert_close(output(model, tiny), tiny["out"], atol=2e-5, rtol=1e-5)
    unet = UNet(**tiny["config"]).eval()
    load_weights(unet, palette_network_state(tiny))  # a Network file into a bare UNet: prefix stripped
    with torch.no_grad():
        torch.testing.assert_close(unet(tiny["x"], tiny["gammas"]), tiny["out"], atol=2e-5, rtol=1e-5)


def test_our_checkpoint_prefers_ema(tiny):
    model = fresh(tiny)
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    ema = {**ema, **{"denoise_fn." + k: v for k, v in tiny["state_dict"].items()}}
    ckpt = {"format": "ddpm_lab-checkpoint", "model": fresh(tiny).state_dict(), "ema": ema, "step": 3}
    report = load_weights(model, ckpt)
    assert report.format == "ddpm_lab-checkpoint (ema)"
    torch.testing.assert_close(output(model, tiny), tiny["out"], atol=2e-5, rtol=1e-5)
    assert load_weights(model, ckpt, use_ema=False).format == "ddpm_lab-checkpoint"
    assert not torch.allclose(output(model, tiny), tiny["out"], atol=1e-3)


def test_ddp_prefix(tiny):
    model = fresh(tiny)
    state = {"module.denoise_fn." + k: v for k, v in tiny["state_dict"].items()}
    assert "DistributedDataParallel" in load_weights(model, state).format
    torch.testing.assert_close(output(model, tiny), tiny["out"], atol=2e-5, rtol=1e-5)


def test_errors_name_the_problem(tiny, tmp_path):
    model = fresh(tiny)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_weights(model, tmp_path / "missing.pth")
    bad = tmp_path / "pickled.pth"
    torch.save({"thing": NotATensor()}, bad)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_weights(model, bad)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable PyTorch file"):
        load_weights(model, corrupt)
    with pytest.raises(ValueError, match=r"unrecognised checkpoint.*saw keys \[epoch, lr\]"):
        load_weights(model, {"epoch": 3, "lr": 0.1})
    partial = dict(tiny["state_dict"])
    partial.pop("out.2.weight")
    partial["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 missing keys \['out.2.weight'\], 1 unexpected keys \['extra.weight'\]"):
        load_weights(model, partial)
    bigger = InpaintingGaussianDiffusion(dict(tiny["config"], inner_channel=64), COURSE_BETA_SCHEDULE)
    with pytest.raises(ValueError, match="shapes differ"):
        load_weights(bigger, tiny["state_dict"])
