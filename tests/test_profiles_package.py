"""Profiles and the package surface (light import, public names)."""

import os
import subprocess
import sys

import pytest

import ddpm_lab
from ddpm_lab.profiles import COURSE_UNET_CONFIG, ENV_VAR, PROFILES, get_profile


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.setenv(ENV_VAR, "FULL ")
    p = get_profile()
    assert p.name == "full" and p.unet_config == COURSE_UNET_CONFIG and p.image_size == 256
    assert p.beta_schedule["train"] == {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09}
    monkeypatch.setenv(ENV_VAR, "tpu")
    with pytest.raises(ValueError, match="smoke, cpu, gpu, full"):
        get_profile()
    monkeypatch.delenv(ENV_VAR)
    import torch

    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_profiles_are_consistent_and_copied():
    for name, p in PROFILES.items():
        assert p.unet_config["image_size"] == p.image_size, name
        assert p.unet_config["inner_channel"] % 32 == 0, name
        assert p.image_size % 2 ** (len(p.simple_unet_channels) - 1) == 0, name
    p = get_profile("smoke")
    p.unet_config["inner_channel"] = 999
    assert PROFILES["smoke"].unet_config["inner_channel"] == 32
    assert get_profile("cpu").copy(epochs=1).epochs == 1
    with pytest.raises(ValueError, match="no field"):
        p.copy(epoch=1)


def test_import_is_light():
    code = "import sys, ddpm_lab; print(sorted(m for m in ('matplotlib', 'torchvision', 'torchmetrics', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ})
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves():
    for name in ddpm_lab.__all__:
        assert getattr(ddpm_lab, name) is not None, name
    with pytest.raises(AttributeError):
        ddpm_lab.not_a_thing
