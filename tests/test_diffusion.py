"""InpaintingGaussianDiffusion and the samplers: Palette's buffers, the forward loss, and oracle sampling."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ddpm_lab import InpaintingGaussianDiffusion, SimpleUnet, UNet
from ddpm_lab.diffusion import BUFFER_NAMES
from ddpm_lab.profiles import COURSE_BETA_SCHEDULE, COURSE_UNET_CONFIG, PALETTE_BETA_SCHEDULE
from ddpm_lab.samplers import ddim_step, ddim_timesteps, repaint_schedule, sample

FIXTURES = Path(__file__).parent / "fixtures"


class Oracle(nn.Module):
    """The ideal noise predictor for a one-image data set {x}: eps = (y_t - sqrt(g) x) / sqrt(1 - g)."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.register_buffer("x", x)
        self.calls = 0

    def forward(self, inp, gammas):
        self.calls += 1
        y_t, g = inp[:, 3:], gammas.reshape(-1, 1, 1, 1)
        return (y_t - g.sqrt() * self.x) / (1 - g).sqrt()


class Zero(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, inp, gammas):
        return torch.zeros_like(inp[:, 3:]) * self.w


@pytest.fixture
def scene():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1  # (B, C, H, W) in [-1, 1]
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    y_cond = x * (1 - mask) + mask * torch.randn(x.shape, generator=g)
    return x, mask, y_cond


def test_network_state_dict_matches_palette_network():
    manifest = json.loads((FIXTURES / "palette_unet_keys.json").read_text())["network"]
    with torch.device("meta"):
        model = InpaintingGaussianDiffusion(COURSE_UNET_CONFIG, COURSE_BETA_SCHEDULE)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == manifest["state_dict"]  # 332 entries: the six buffers first, then denoise_fn.*
    assert [k for k, _ in ours[:6]] == list(BUFFER_NAMES) == manifest["buffers"]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"] == 62_641_347


def test_buffers_follow_device_and_phase():
    model = InpaintingGaussianDiffusion(Zero(), PALETTE_BETA_SCHEDULE)
    assert model.num_timesteps == 2000 and model.gammas.dtype == torch.float32
    model.set_new_noise_schedule("cpu", phase="test")
    assert model.num_timesteps == 1000 and model.gammas.shape == (1000,)
    assert model.gammas[-1].item() < 1e-18
    with pytest.raises(ValueError, match="phase"):
        model.set_new_noise_schedule("cpu", phase="valid")
    with pytest.raises(ValueError, match="beta_schedule"):
        InpaintingGaussianDiffusion(Zero(), {"schedule": "linear", "n_steps": 20})


def test_course_gamma_T_visible_on_the_model():
    model = InpaintingGaussianDiffusion(Zero(), COURSE_BETA_SCHEDULE)
    assert model.gammas[-1].item() == pytest.approx(0.3945, abs=5e-4)
    assert model.schedule["gammas"][-1] == pytest.approx(0.39452, abs=1e-5)


def test_q_sample_and_inversion(scene):
    x, _, _ = scene
    model = InpaintingGaussianDiffusion(Zero(), COURSE_BETA_SCHEDULE)
    noise = torch.randn_like(x)
    t = torch.tensor([0, 19])
    g = model.gammas[t].view(2, 1, 1, 1)
    y_t = model.q_sample(x, g, noise)
    torch.testing.assert_close(y_t, g.sqrt() * x + (1 - g).sqrt() * noise)
    torch.testing.assert_close(model.predict_start_from_noise(y_t, t, noise), x, atol=1e-5, rtol=0)


def test_p_sample_is_the_posterior_step(scene):
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Oracle(x), COURSE_BETA_SCHEDULE)
    t = torch.tensor([7, 7])
    q = model.schedule
    y_t = model.q_sample(x, torch.tensor(q["gammas"][7], dtype=torch.float32), torch.randn_like(x))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    out = model.p_sample(y_t, t, y_cond=y_cond, generator=torch.Generator().manual_seed(3))
    mean = q["posterior_mean_coef1"][7] * x + q["posterior_mean_coef2"][7] * y_t
    torch.testing.assert_close(out, mean + math.sqrt(q["posterior_variance"][7]) * z, atol=1e-5, rtol=0)
    # at t = 0 no noise is added and the oracle's mean is x itself
    y_1 = model.q_sample(x, model.gammas[0], torch.randn_like(x))  # a y_t at the level t = 0 expects
    out0 = model.p_sample(y_1, torch.tensor([0, 0]), y_cond=y_cond)
    torch.testing.assert_close(out0, x, atol=1e-5, rtol=0)


def test_forward_loss_closed_form(scene):
    """With a network that predicts 0, the loss is mse(mask * noise, 0) whatever the noise level."""
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Zero(), COURSE_BETA_SCHEDULE)
    noise = torch.randn_like(x)
    loss = model(x, y_cond, mask, noise=noise)
    assert loss.item() == pytest.approx(((mask * noise) ** 2).mean().item(), rel=1e-6)
    loss_nomask = model(x, y_cond, noise=noise)
    assert loss_nomask.item() == pytest.approx((noise**2).mean().item(), rel=1e-6)


def test_training_noise_levels_follow_palette():
    model = InpaintingGaussianDiffusion(Zero(), COURSE_BETA_SCHEDULE)
    like = torch.zeros(1)
    g = model.sample_noise_levels(4000, like, torch.Generator().manual_seed(0)).flatten()
    gammas = model.gammas
    assert g.shape == (4000,)
    assert g.max() <= gammas[0] + 1e-7 and g.min() >= gammas[-1] - 1e-7  # t in [1, T-1]: within [gamma_19, gamma_0]
    # each interval [gamma_t, gamma_{t-1}] is hit about equally often (t uniform)
    idx = torch.bucketize(-g, -gammas, right=False)
    counts = torch.bincount(idx, minlength=20)[1:20].float()
    assert counts.min() > 4000 / 19 * 0.7
    g2 = model.sample_noise_levels(4000, like, torch.Generator().manual_seed(0)).flatten()
    assert torch.equal(g, g2)  # seeded


def test_the_network_sees_the_noise_level_and_the_clean_known_region(scene):
    x, mask, y_cond = scene
    seen = {}

    class Spy(Zero):
        def forward(self, inp, gammas):
            seen["inp"], seen["gammas"] = inp, gammas
            return super().forward(inp, gammas)

    model = InpaintingGaussianDiffusion(Spy(), COURSE_BETA_SCHEDULE)
    model(x, y_cond, mask)
    assert seen["gammas"].shape == (2, 1) and 0 < seen["gammas"].min() < 1
    torch.testing.assert_close(seen["inp"][:, :3], y_cond)
    torch.testing.assert_close(seen["inp"][:, 3:] * (1 - mask), x * (1 - mask))


@pytest.mark.parametrize("sampler, kwargs", [
    ("ddpm", {}),
    ("ddim", {"steps": 7}),
    ("ddim", {"steps": 20, "eta": 1.0}),
    ("repaint", {"jump_length": 3, "jump_n_sample": 3}),
])
def test_oracle_fills_the_hole_exactly(scene, sampler, kwargs):
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Oracle(x), COURSE_BETA_SCHEDULE)
    out, visuals = model.restoration(y_cond, y_0=x, mask=mask, sampler=sampler,
                                     generator=torch.Generator().manual_seed(1), **kwargs)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    assert torch.equal(out * (1 - mask), x * (1 - mask))  # the known region is never touched
    assert visuals.shape[1:] == x.shape[1:] and visuals.shape[0] % 2 == 0
    torch.testing.assert_close(visuals[-2:], out)


def test_course_visuals_layout(scene):
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Oracle(x), COURSE_BETA_SCHEDULE)
    _, visuals = model.restoration(y_cond, y_t=y_cond, y_0=x, mask=mask, sample_num=8)
    assert visuals.shape == (2 * 11, 3, 16, 16)  # the start + every T//sample_num = 2 steps -> 1 + 10 frames


def test_step_counts(scene):
    x, mask, y_cond = scene
    oracle = Oracle(x)
    model = InpaintingGaussianDiffusion(oracle, COURSE_BETA_SCHEDULE)
    sample(model, y_cond, y_0=x, mask=mask, sampler="ddim", steps=5)
    assert oracle.calls == 5
    assert ddim_timesteps(20, 5) == [19, 14, 10, 5, 0]
    oracle.calls = 0
    sample(model, y_cond, y_0=x, mask=mask, sampler="repaint", jump_length=5, jump_n_sample=2)
    times = repaint_schedule(20, 5, 2)
    assert oracle.calls == sum(b < a for a, b in zip(times, times[1:])) == 20 + 5 * 3
    assert repaint_schedule(8, 3, 2) == [7, 6, 5, 4, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, -1]


def test_ddim_is_deterministic_and_generators_reproduce(scene):
    x, mask, y_cond = scene
    net = SimpleUnet(down_channels=(8, 16, 32, 64, 128)).eval()
    model = InpaintingGaussianDiffusion(net, COURSE_BETA_SCHEDULE)
    start = torch.randn_like(x)
    a = sample(model, y_cond, y_t=start, y_0=x, mask=mask, sampler="ddim", steps=6).sample
    b = sample(model, y_cond, y_t=start, y_0=x, mask=mask, sampler="ddim", steps=6).sample
    assert torch.equal(a, b)
    c = sample(model, y_cond, y_0=x, mask=mask, generator=torch.Generator().manual_seed(5)).sample
    d = sample(model, y_cond, y_0=x, mask=mask, generator=torch.Generator().manual_seed(5)).sample
    e = sample(model, y_cond, y_0=x, mask=mask, generator=torch.Generator().manual_seed(6)).sample
    assert torch.equal(c, d) and not torch.equal(c, e)


def test_ddim_step_closed_form():
    y_t, eps = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.2)
    out = ddim_step(eps, y_t, gamma_t=0.5, gamma_prev=0.8, clip_denoised=False)
    y0 = (0.5 - math.sqrt(0.5) * 0.2) / math.sqrt(0.5)
    assert out.pred_original_sample.item() == pytest.approx(y0, rel=1e-6)
    assert out.prev_sample.item() == pytest.approx(math.sqrt(0.8) * y0 + math.sqrt(0.2) * 0.2, rel=1e-6)
    assert ddim_step(eps, y_t, 0.5, 1.0, clip_denoised=False).prev_sample.item() == pytest.approx(y0, rel=1e-6)


def test_works_with_both_unets(scene):
    x, mask, y_cond = scene
    tiny = dict(COURSE_UNET_CONFIG, inner_channel=32, channel_mults=[1, 2], res_blocks=1, image_size=16)
    for net in (UNet(**tiny), SimpleUnet(down_channels=(8, 16, 32, 64, 128))):
        model = InpaintingGaussianDiffusion(net, COURSE_BETA_SCHEDULE)
        loss = model(x, y_cond, mask)
        loss.backward()
        assert loss.item() >= 0 and any(p.grad is not None for p in model.parameters())
        out, _ = model.eval().restoration(y_cond, y_0=x, mask=mask, sampler="ddim", steps=2)
        assert out.shape == x.shape and torch.isfinite(out).all()
    assert isinstance(InpaintingGaussianDiffusion(tiny, COURSE_BETA_SCHEDULE).denoise_fn, UNet)  # the course's way


def test_sampler_bad_input(scene):
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Oracle(x), COURSE_BETA_SCHEDULE)
    with pytest.raises(ValueError, match="ddpm, ddim, repaint"):
        model.restoration(y_cond, y_0=x, mask=mask, sampler="euler")
    with pytest.raises(ValueError, match="needs y_0"):
        model.restoration(y_cond, mask=mask)
    with pytest.raises(ValueError, match="sampler='ddim'"):
        model.restoration(y_cond, y_0=x, mask=mask, steps=5)
    with pytest.raises(ValueError, match="steps must be between"):
        model.restoration(y_cond, y_0=x, mask=mask, sampler="ddim", steps=50)
    with pytest.raises(ValueError, match="mask must be"):
        model.restoration(y_cond, y_0=x, mask=mask[0])


def test_sampler_reports_progress(scene):
    x, mask, y_cond = scene
    model = InpaintingGaussianDiffusion(Oracle(x), COURSE_BETA_SCHEDULE)
    seen = []
    sample(model, y_cond, y_0=x, mask=mask, sampler="ddim", steps=4, callback=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
