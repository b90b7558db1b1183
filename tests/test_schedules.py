"""Schedules: closed forms, Palette's stored buffers, and diffusers' DDPMScheduler as an independent peer."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpm_lab.schedules import extract, get_index_from_list, make_beta_schedule, schedule_quantities

FIXTURES = Path(__file__).parent / "fixtures"
COURSE = {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09}


def test_linear_closed_form():
    betas = make_beta_schedule(**COURSE)
    assert betas.dtype == np.float64 and betas.shape == (20,)
    assert betas[0] == 1e-4 and betas[-1] == 0.09
    np.testing.assert_allclose(np.diff(betas), (0.09 - 1e-4) / 19, rtol=1e-12)


def test_cosine_closed_form_and_cap():
    n, s = 50, 8e-3
    betas = make_beta_schedule("cosine", n)
    f = lambda t: math.cos((t / n + s) / (1 + s) * math.pi / 2) ** 2
    expected = [min(1 - f(t + 1) / f(t), 0.999) for t in range(n)]
    np.testing.assert_allclose(betas, expected, rtol=1e-12)
    assert betas[-1] == 0.999  # the last step would be 1 without the cap
    gammas = schedule_quantities(betas)["gammas"]
    np.testing.assert_allclose(gammas[:-1], [f(t + 1) / f(0) for t in range(n - 1)], rtol=1e-10)


def test_quantities_closed_forms():
    q = schedule_quantities(make_beta_schedule(**COURSE))
    b, g = q["betas"], q["gammas"]
    np.testing.assert_allclose(g, np.cumprod(1 - b), rtol=1e-14)
    gp = np.concatenate([[1.0], g[:-1]])
    np.testing.assert_allclose(q["gammas_prev"], gp)
    var = b * (1 - gp) / (1 - g)
    np.testing.assert_allclose(q["posterior_variance"], var)
    assert q["posterior_variance"][0] == 0.0
    assert q["posterior_log_variance_clipped"][0] == pytest.approx(math.log(1e-20))  # -46.05, Palette's value
    np.testing.assert_allclose(q["posterior_log_variance_clipped"][1:], np.log(var[1:]))
    np.testing.assert_allclose(q["posterior_mean_coef1"], b * np.sqrt(gp) / (1 - g))
    np.testing.assert_allclose(q["posterior_mean_coef2"], (1 - gp) * np.sqrt(1 - b) / (1 - g))
    # y_0 = sqrt(1/g) y_t - sqrt(1/g - 1) eps inverts y_t = sqrt(g) y_0 + sqrt(1-g) eps
    y0, eps = 0.3, -1.2
    yt = np.sqrt(g) * y0 + np.sqrt(1 - g) * eps
    np.testing.assert_allclose(q["sqrt_recip_gammas"] * yt - q["sqrt_recipm1_gammas"] * eps, y0, atol=1e-12)
    # at t = 0 the posterior mean is y_0 itself: coef1 = 1, coef2 = 0
    assert q["posterior_mean_coef1"][0] == pytest.approx(1.0) and q["posterior_mean_coef2"][0] == 0.0


def test_course_schedule_gamma_T_is_not_pure_noise():
    """The course's 20-step schedule ends at gamma_T ~ 0.39: the last step still holds 63% signal."""
    g = schedule_quantities(make_beta_schedule(**COURSE))["gammas"]
    assert g[-1] == pytest.approx(0.3945, abs=5e-4)
    assert math.sqrt(g[-1]) == pytest.approx(0.628, abs=1e-3)
    palette_test = make_beta_schedule("linear", 1000, 1e-4, 0.09)
    assert schedule_quantities(palette_test)["gammas"][-1] < 1e-18  # Palette's sampling schedule: pure noise
    palette_train = make_beta_schedule("linear", 2000, 1e-6, 0.01)
    assert schedule_quantities(palette_train)["gammas"][-1] == pytest.approx(4.5e-5, rel=0.05)


def test_matches_palette_stored_buffers():
    """The float32 buffer values Palette's Network registered for the course schedule."""
    net = json.loads((FIXTURES / "palette_unet_keys.json").read_text())["network"]
    q = schedule_quantities(make_beta_schedule(**COURSE))
    for name, values in net["buffer_values_float32"].items():
        np.testing.assert_allclose(np.float32(q[name]), np.asarray(values, dtype=np.float32), rtol=1e-6, atol=0, err_msg=name)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (dict(schedule="linear", n_timestep=1000, linear_start=1e-4, linear_end=0.02), dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)),
        (dict(schedule="linear", n_timestep=20, linear_start=1e-4, linear_end=0.09), dict(beta_schedule="linear", beta_start=1e-4, beta_end=0.09)),
        (dict(schedule="quad", n_timestep=200, linear_start=1e-4, linear_end=0.02), dict(beta_schedule="scaled_linear", beta_start=1e-4, beta_end=0.02)),
        (dict(schedule="cosine", n_timestep=1000), dict(beta_schedule="squaredcos_cap_v2")),
    ],
    ids=["linear-1000", "course-20", "quad-200", "cosine-1000"],
)
def test_against_diffusers(ours, theirs):
    diffusers = pytest.importorskip("diffusers")
    n = ours["n_timestep"]
    ref = diffusers.DDPMScheduler(num_train_timesteps=n, clip_sample=False, variance_type="fixed_small", **theirs)
    q = schedule_quantities(make_beta_schedule(**ours))
    np.testing.assert_allclose(q["betas"], ref.betas.double().numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(q["gammas"], ref.alphas_cumprod.double().numpy(), atol=1e-6, rtol=0)
    # posterior variance (diffusers clamps at 1e-20 as Palette does)
    ts = list(range(0, n, max(n // 25, 1))) + [n - 1]
    var = np.array([float(ref._get_variance(t)) for t in ts])
    np.testing.assert_allclose(np.maximum(q["posterior_variance"][ts], 1e-20), var, atol=1e-6, rtol=1e-5)
    # posterior mean coefficients, read off DDPMScheduler.step by linearity (same noise each call)
    # (diffusers keeps its tables in float32, where 1 - alphas_cumprod near t = 1 loses ~1e-5
    # relative precision; upcast its tables so the comparison is of formulas, not of rounding)
    ref.betas = ref.betas.double()
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, dim=0)
    shape = (1, 1, 1, 1)
    one, zero = torch.ones(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)

    def prev(x0, xt, t):
        return ref.step(x0, t, xt, generator=torch.Generator().manual_seed(0)).prev_sample.item()

    ref.config.prediction_type = "sample"
    for t in ts:
        base = prev(zero, zero, t)
        assert prev(one, zero, t) - base == pytest.approx(q["posterior_mean_coef1"][t], abs=1e-6)
        assert prev(zero, one, t) - base == pytest.approx(q["posterior_mean_coef2"][t], abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(schedule="sigmoid", n_timestep=10), "valid schedules: linear, cosine"),
        (dict(schedule="linear", n_timestep=0), "positive integer"),
        (dict(schedule="linear", n_timestep=20, linear_start=1e-4, linear_end="0.09"), "without quotes"),
        (dict(schedule="linear", n_timestep=20, linear_start=1e-4, linear_end=1.5), r"in \(0, 1\)"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_beta_schedule(**kwargs)


def test_extract_follows_t_and_shapes():
    vals = torch.arange(10, dtype=torch.float32)
    t = torch.tensor([3, 0, 9])
    out = extract(vals, t, (3, 2, 4, 4))
    assert out.shape == (3, 1, 1, 1) and out.flatten().tolist() == [3.0, 0.0, 9.0]
    assert get_index_from_list(vals, t).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError, match="1-D"):
        extract(vals, t[None], (3, 1))
