"""The Streamlit page, headless: its pure logic (app/logic.py) and the page itself through AppTest.

Most page tests load a tiny random-weight checkpoint written here (16x16, 20-step schedule), so
they are fast and independent of the bundled demo model; one runs the demo model itself.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `app` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from app import logic  # noqa: E402

APP = str(ROOT / "app" / "streamlit_app.py")
TINY_CONFIG = {
    "network": "unet", "image_size": 16,
    "unet_config": {"in_channel": 6, "out_channel": 3, "inner_channel": 32, "channel_mults": [1], "attn_res": [],
                    "num_head_channels": 32, "res_blocks": 1, "dropout": 0.0, "image_size": 16},
    "beta_schedule": {"train": {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09},
                      "test": {"schedule": "linear", "n_timestep": 20, "linear_start": 1e-4, "linear_end": 0.09}},
    "sample": {"sampler": "ddim", "steps": 3},
}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    """A ``ddpm_lab-checkpoint`` with its config inside and seeded random weights."""
    from ddpm_lab.inference import build_model

    torch.manual_seed(0)
    model = build_model(TINY_CONFIG)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"format": "ddpm_lab-checkpoint", "model": model.state_dict(), "config": TINY_CONFIG}, path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_model(tiny_ckpt):
    from ddpm_lab.inference import load_model

    return load_model(tiny_ckpt)


def _png(size: tuple[int, int], mode: str = "RGB", color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming ``width`` x ``height`` RGB, with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- uploads
def test_read_upload_keeps_a_small_png_exactly():
    img, note = logic.read_upload(_png((40, 30)))
    assert note is None and img.mode == "RGB" and img.size == (40, 30)
    assert img.getpixel((5, 5)) == (10, 200, 30)


def test_read_upload_composites_transparency_on_white():
    img, _ = logic.read_upload(_png((20, 20), "RGBA", (255, 0, 0, 0)))
    assert img.getpixel((3, 3)) == (255, 255, 255)


def test_read_upload_downscales_large_images():
    img, note = logic.read_upload(_png((2000, 1000)))
    assert img.size == (1024, 512)
    assert "2000x1000" in note and "1024x512" in note


def test_read_upload_rejects_text_empty_truncated_and_bombs():
    with pytest.raises(ValueError, match="not an image"):
        logic.read_upload(b"hello, this is a text file\n" * 10)
    with pytest.raises(ValueError, match="empty"):
        logic.read_upload(b"")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        logic.read_upload(_png((64, 64))[:60])
    with pytest.raises(ValueError, match="decompression bomb"):  # above our own limit, below Pillow's
        logic.read_upload(_bomb_png(10_000, 10_000))
    with pytest.raises(ValueError, match="decompression bomb"):  # so large that Pillow refuses it too
        logic.read_upload(_bomb_png(100_000, 100_000))
    with pytest.raises(ValueError, match="limit is 1 MB"):
        logic.read_upload(b"\x00" * (2 * 2**20), max_bytes=2**20)
    with pytest.raises(ValueError, match="at least 8x8"):
        logic.read_upload(_png((4, 30)))


# --------------------------------------------------------------------------- holes
def test_center_box_is_the_course_box_of_the_square_crop():
    assert logic.center_box(256, 256) == logic.Box(64, 64, 128, 128)
    assert logic.square_crop(300, 200) == logic.Box(0, 50, 200, 200)
    assert logic.center_box(300, 200) == logic.Box(50, 100, 100, 100)
    mask = logic.box_mask(256, 256, logic.center_box(256, 256))
    assert mask.shape == (1, 256, 256) and mask.sum() == 128 * 128
    assert logic.check_mask(mask) == pytest.approx(0.25)


def test_box_mask_clips_and_refuses_empty_boxes():
    mask = logic.box_mask(10, 8, logic.Box(6, 7, 5, 5))  # runs off the bottom-right corner
    assert mask.sum() == 2 * 3 and mask[0, 6:, 7:].all()
    for box in (logic.Box(2, 2, 0, 4), logic.Box(2, 2, 4, 0), logic.Box(9, 0, 3, 3)):
        with pytest.raises(ValueError, match="nothing to fill"):
            logic.box_mask(10, 8, box)
    with pytest.raises(ValueError, match="nothing to fill"):
        logic.check_mask(torch.zeros(1, 8, 10))


def test_hole_outside_the_models_square_is_refused():
    mask = logic.box_mask(300, 200, logic.Box(10, 0, 20, 20))  # in the left margin the model never sees
    with pytest.raises(ValueError, match="columns 50..249"):
        logic.check_mask(mask)


def test_random_masks_are_seeded_and_inside_the_crop():
    from ddpm_lab.masks import MASK_MODES

    for kind in MASK_MODES:
        a = logic.random_mask(kind, 120, 80, seed=3)
        assert a.shape == (1, 80, 120) and set(a.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(a, logic.random_mask(kind, 120, 80, seed=3))
        assert a[..., :20].sum() == 0 and a[..., 100:].sum() == 0  # crop columns 20..99
        assert 0.05 < logic.check_mask(a) < 0.45
    assert not torch.equal(logic.random_mask("irregular", 64, 64, 1), logic.random_mask("irregular", 64, 64, 2))


def test_masked_preview_paints_the_hole_white_and_greys_the_margin():
    img = Image.new("RGB", (30, 20), (0, 100, 200))
    mask = logic.box_mask(30, 20, logic.Box(5, 10, 4, 6))
    arr = np.asarray(logic.masked_preview(img, mask))
    assert (arr[5:9, 10:16] == 255).all()
    assert tuple(arr[0, 15]) == (0, 100, 200)  # inside the crop (columns 5..24), known
    assert tuple(arr[0, 2]) == (64, 114, 164)  # margin: halfway to grey 128


# --------------------------------------------------------------------------- sampler settings
def test_sampler_settings_and_network_calls():
    ddim = logic.SamplerSettings("ddim", steps=7, eta=0.5, seed=1)
    assert ddim.kwargs() == {"sampler": "ddim", "steps": 7, "eta": 0.5}
    assert logic.network_calls(ddim, 1000) == 7
    ddpm = logic.SamplerSettings("ddpm")
    assert ddpm.kwargs() == {"sampler": "ddpm"} and logic.network_calls(ddpm, 1000) == 1000
    rp = logic.SamplerSettings("repaint", jump_length=5, jump_n_sample=3)
    assert rp.kwargs() == {"sampler": "repaint", "jump_length": 5, "jump_n_sample": 3}
    # T = 20: jumps after t = 0, 5, 10 (not the last stretch), each re-walked twice more: 20 + 3 * 2 * 5
    assert logic.network_calls(rp, 20) == 50
    with pytest.raises(ValueError, match="unknown sampler"):
        logic.SamplerSettings("euler").kwargs()


def test_resolve_checkpoint(tmp_path):
    assert logic.resolve_checkpoint("") is None and logic.resolve_checkpoint("   ") is None
    f = tmp_path / "m.pth"
    f.write_bytes(b"x")
    assert logic.resolve_checkpoint(f' "{f}" ') == str(f.resolve())
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        logic.resolve_checkpoint(str(tmp_path / "missing.pth"))


# --------------------------------------------------------------------------- running
def test_run_inpainting_reports_progress_and_pastes_back(tiny_model):
    import tqdm.auto

    real = tqdm.auto.tqdm
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    mask = logic.box_mask(60, 40, logic.center_box(60, 40))
    calls: list[tuple[int, int]] = []
    out = logic.run_inpainting(tiny_model, img, mask, logic.SamplerSettings("ddim", steps=3, seed=0),
                               trajectory=True, callback=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert tqdm.auto.tqdm is real  # the progress shim is gone again
    assert out.pasted.size == (60, 40)
    known = mask[0].numpy() < 0.5
    assert (np.asarray(out.pasted)[known] == np.asarray(img)[known]).all()
    assert (np.asarray(out.pasted)[~known] != np.asarray(img)[~known]).any()
    again = logic.run_inpainting(tiny_model, img, mask, logic.SamplerSettings("ddim", steps=3, seed=0))
    assert np.array_equal(np.asarray(again.pasted), np.asarray(out.pasted))  # seeded
    strip = logic.trajectory_strip(out.frames, tile=32, gap=1)  # 16 px frames, twice enlarged
    assert strip.size == (len(out.frames) * 33 - 1, 32)
    assert Image.open(io.BytesIO(logic.png_bytes(out.pasted))).size == (60, 40)


# --------------------------------------------------------------------------- the page (AppTest)
def _app(checkpoint: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if checkpoint is not None:
        at.sidebar.text_input(key="checkpoint").input(checkpoint).run()
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]  # the whole page, sidebar included


def _captions(at: AppTest) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


def test_default_page_loads_the_demo_model_without_errors():
    at = _app()
    assert not at.exception and not _errors(at)
    assert at.title[0].value == "Image Inpainting with DDPM"
    assert "not on CelebA" in at.caption[0].value
    assert "bundled demo model" in at.sidebar.caption[0].value
    assert at.sidebar.radio(key="sampler").value == "DDIM"
    assert at.radio(key="hole").value == "Centre box" and at.radio(key="source").value == "Offline face"
    assert not at.button(key="inpaint").disabled
    assert _captions(at) == ["Original (64x64)", "Masked input"]


def test_inpaint_with_the_demo_model_shows_the_result():
    at = _app()
    at.sidebar.slider(key="steps").set_value(3).run()
    at.button(key="inpaint").click().run()
    assert not at.exception and not _errors(at)
    assert "Inpainted result" in _captions(at)
    assert at.session_state["run"]["pasted"].size == (64, 64)
    assert at.get("download_button")


def test_each_sampler_can_be_chosen(tiny_ckpt):
    at = _app(tiny_ckpt)
    for name, widgets in (("DDPM", set()), ("RePaint", {"jump_length", "jump_n_sample"}), ("DDIM", {"steps", "eta"})):
        at.sidebar.radio(key="sampler").set_value(name).run()
        assert not at.exception and not _errors(at)
        keys = {w.key for w in list(at.sidebar.slider) + list(at.sidebar.number_input)}
        assert widgets <= keys and keys - widgets <= {"seed"}
    at.sidebar.radio(key="sampler").set_value("DDPM").run()
    assert "20 network calls" in at.sidebar.caption[1].value


def test_each_hole_kind_can_be_chosen(tiny_ckpt):
    from ddpm_lab.masks import MASK_MODES

    at = _app(tiny_ckpt)
    at.radio(key="hole").set_value("Box (sliders)").run()
    at.selectbox(key="face_size").set_value(256).run()
    box = [at.slider(key=f"{name}_256x256").value for name in ("top", "left", "height", "width")]
    assert box == [64, 64, 128, 128]  # the centre box, in the 256 px face's pixels
    at.radio(key="hole").set_value("Random mask").run()
    assert at.selectbox(key="mask_kind").options == [m for m in MASK_MODES if m != "center"]
    for kind in at.selectbox(key="mask_kind").options:
        at.selectbox(key="mask_kind").set_value(kind).run()
        assert not at.exception and not _errors(at)
        assert not at.button(key="inpaint").disabled


def test_inpaint_button_shows_result_download_and_trajectory(tiny_ckpt):
    at = _app(tiny_ckpt)
    at.sidebar.slider(key="steps").set_value(3)
    at.sidebar.checkbox(key="trajectory").check()
    at.radio(key="hole").set_value("Random mask").run()
    at.button(key="inpaint").click().run()
    assert not at.exception and not _errors(at)
    captions = _captions(at)
    assert "Inpainted result" in captions and any(c.startswith("Reverse process") for c in captions)
    assert at.get("download_button")
    run = at.session_state["run"]
    face = np.asarray(run["pasted"])
    assert face.shape == (64, 64, 3) and run["strip"] is not None
    at.number_input(key="face").set_value(8).run()  # another image: the old result is not shown
    assert "Inpainted result" not in _captions(at)


def test_empty_box_shows_an_error_and_disables_the_button(tiny_ckpt):
    at = _app(tiny_ckpt)
    at.radio(key="hole").set_value("Box (sliders)").run()
    at.slider(key="height_64x64").set_value(0).run()
    assert not at.exception
    assert any("nothing to fill" in e for e in _errors(at))
    assert at.button(key="inpaint").disabled


def test_missing_checkpoint_shows_an_error(tmp_path):
    at = _app(str(tmp_path / "nowhere" / "best_model.pth"))
    assert not at.exception
    errors = _errors(at)
    assert len(errors) == 1 and "No checkpoint at" in errors[0]
    assert at.button(key="inpaint").disabled


def test_checkpoints_that_do_not_fit_show_errors(tmp_path):
    from ddpm_lab.inference import build_model

    other = {**TINY_CONFIG, "unet_config": {**TINY_CONFIG["unet_config"], "channel_mults": [1, 2]}}
    wrong = tmp_path / "wrong.pt"  # weights of another network under TINY_CONFIG
    torch.save({"format": "ddpm_lab-checkpoint", "model": build_model(other).state_dict(), "config": TINY_CONFIG}, wrong)
    bare = tmp_path / "bare.pth"  # a state_dict with no config to build the model from
    torch.save(build_model(TINY_CONFIG).state_dict(), bare)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    for path, expected in ((wrong, "do not fit"), (bare, "no model config"), (text, "not a readable PyTorch file")):
        at = _app(str(path))
        assert not at.exception
        errors = _errors(at)
        assert len(errors) == 1 and expected in errors[0], errors
        assert at.button(key="inpaint").disabled


def test_a_checkpoint_without_config_loads_with_a_chosen_profile(tmp_path):
    from ddpm_lab.inference import build_model

    bare = tmp_path / "best_model.pth"  # the course's format: a plain state_dict, no config
    torch.save(build_model("smoke").state_dict(), bare)
    at = _app(str(bare))
    assert any("no model config" in e for e in _errors(at))
    at.sidebar.selectbox(key="model_config").set_value("profile smoke").run()
    assert not at.exception and not _errors(at)
    assert at.sidebar.caption[0].value.startswith("**best_model.pth**: 32x32 px")
    assert not at.button(key="inpaint").disabled
    assert "Palette CelebA-HQ (256 px)" in at.sidebar.selectbox(key="model_config").options
