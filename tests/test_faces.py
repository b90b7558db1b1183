"""Offline faces: determinism, variety, an informative centre, files on disk, the dataset dict."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_lab.data import InpaintingDataset, load_image, sample_generator, to_tensor
from ddpm_lab.faces import OfflineFaces, face_seed, render_face, write_offline_faces
from ddpm_lab.masks import make_mask


@pytest.fixture(scope="module")
def faces64() -> np.ndarray:
    """64 faces at 64x64 as floats in [-1, 1], (64, 64, 64, 3)."""
    return np.stack([np.asarray(render_face(i, 64), np.float32) / 127.5 - 1 for i in range(64)])


def harmonic_fill(x: np.ndarray, top: int, left: int, h: int, w: int, iters: int = 300) -> np.ndarray:
    """Fill a box by Jacobi iterations of Laplace's equation from its border: the smoothest guess."""
    y = x.copy()
    y[top:top + h, left:left + w] = x[[top - 1, top + h], left:left + w].mean(axis=(0, 1))
    for _ in range(iters):
        p = y[top - 1:top + h + 1, left - 1:left + w + 1]
        y[top:top + h, left:left + w] = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 4
    return y


def test_render_face_is_deterministic_rgb():
    a, b = render_face(12, 64), render_face(12, 64)
    assert a.mode == "RGB" and a.size == (64, 64)
    assert a.tobytes() == b.tobytes()
    assert render_face(13, 64).tobytes() != a.tobytes()
    assert render_face(12, 32).size == (32, 32) and render_face(12, 100).size == (100, 100)
    with pytest.raises(ValueError):
        render_face(1, 4)


def test_faces_vary(faces64: np.ndarray):
    per_image_mean = faces64.mean(axis=(1, 2))  # (64, 3)
    assert per_image_mean.std(axis=0).min() > 0.12
    centre_mean = faces64[:, 16:48, 16:48].mean(axis=(1, 2))
    assert centre_mean.std(axis=0).min() > 0.15  # skin tones differ a lot
    corner = faces64[:, :3, :3].mean(axis=(1, 2))
    assert corner.std(axis=0).min() > 0.2  # backgrounds differ
    brightness = centre_mean.mean(axis=1)
    assert brightness.max() - brightness.min() > 0.8  # very light and very dark faces both occur
    flat = torch.from_numpy(faces64.reshape(64, -1))
    rms = torch.cdist(flat, flat) / flat.shape[1] ** 0.5  # (64, 64) root-mean-square differences
    assert rms[~torch.eye(64, dtype=torch.bool)].min().item() > 0.1  # no two faces alike


def test_centre_box_is_not_a_smooth_fill(faces64: np.ndarray):
    errs = []
    for x in faces64:
        fill = harmonic_fill(x, 16, 16, 32, 32)
        errs.append(np.mean((fill[16:48, 16:48] - x[16:48, 16:48]) ** 2))
    errs = np.asarray(errs)
    assert np.median(errs) > 0.04  # a blurred fill is visibly wrong (RMSE > 0.2 of the [-1, 1] range)
    assert (errs > 0.005).all()
    # and the centre has detail a blur lacks: strong edges (eyes, mouth) inside the box
    grad = np.abs(np.diff(faces64[:, 16:48, 16:48], axis=2)).mean(axis=(1, 2, 3))
    assert np.median(grad) > 0.045


def test_faces_are_roughly_mirror_symmetric(faces64: np.ndarray):
    centre = faces64[:, 16:48, 16:48]
    self_diff = np.abs(centre - centre[:, :, ::-1]).mean(axis=(1, 2, 3))
    other_diff = np.abs(centre - np.roll(centre, 1, axis=0)[:, :, ::-1]).mean(axis=(1, 2, 3))
    assert np.median(self_diff) < 0.35 * np.median(other_diff)


def test_render_speed():
    start = time.process_time()
    for i in range(40):
        render_face(500 + i, 64)
    assert time.process_time() - start < 1.0  # about 0.05 s on one core (~900 faces/s)


def test_write_offline_faces(tmp_path: Path):
    paths = write_offline_faces(tmp_path / "faces", 3, image_size=32, seed=2, fmt="png")
    assert [p.name for p in paths] == ["face_00000.png", "face_00001.png", "face_00002.png"]
    assert np.array_equal(np.asarray(load_image(paths[1])), np.asarray(render_face(face_seed(2, 1), 32)))
    jpgs = write_offline_faces(tmp_path / "jpg", 2, image_size=32)
    assert [p.suffix for p in jpgs] == [".jpg", ".jpg"]
    with Image.open(jpgs[0]) as im:
        assert im.format == "JPEG" and im.size == (32, 32)
    ds = InpaintingDataset(tmp_path / "jpg", image_size=32, seed=0)
    assert len(ds) == 2 and ds[1]["path"].endswith("face_00001.jpg")
    with pytest.raises(ValueError):
        write_offline_faces(tmp_path / "x", 2, fmt="gif")


def test_offline_faces_dataset_matches_inpainting_dataset(tmp_path: Path):
    ds = OfflineFaces(5, image_size=32, seed=3, mask_mode="hybrid", mask_seed=11)
    assert len(ds) == 5
    item = ds[2]
    paths = write_offline_faces(tmp_path, 1, image_size=32, fmt="png")
    reference = InpaintingDataset(paths, mask_mode="hybrid", image_size=32, seed=11)[0]
    assert set(item) == set(reference)
    for key in ("gt_image", "cond_image", "mask_image", "mask"):
        assert item[key].shape == reference[key].shape and item[key].dtype == reference[key].dtype
    gt, mask = item["gt_image"], item["mask"]
    assert torch.equal(gt, to_tensor(render_face(face_seed(3, 2), 32)))
    gen = sample_generator(11, 2)
    assert torch.equal(mask, make_mask("hybrid", 32, gen))
    noise = torch.randn(3, 32, 32, generator=gen)
    assert torch.equal(item["cond_image"], gt * (1 - mask) + mask * noise)
    assert torch.equal(item["mask_image"], gt * (1 - mask) + mask)
    assert item["path"] == "offline:face_00002"
    assert torch.equal(ds[2]["cond_image"], item["cond_image"])  # mask_seed: reproducible
    assert not torch.equal(ds[3]["gt_image"], gt)
    assert not torch.equal(OfflineFaces(5, 32, seed=4)[2]["gt_image"], gt)  # another seed, other faces


def test_offline_faces_options_and_errors():
    fresh = OfflineFaces(2, image_size=(24, 40), mask_mode="free_form")
    a, b = fresh[0], fresh[0]
    assert a["gt_image"].shape == (3, 24, 40) and a["mask"].shape == (1, 24, 40)
    assert torch.equal(a["gt_image"], b["gt_image"]) and not torch.equal(a["mask"], b["mask"])
    with pytest.raises(IndexError):
        fresh[2]
    with pytest.raises(ValueError, match="center"):
        OfflineFaces(2, mask_mode="nope")
    with pytest.raises(ValueError):
        OfflineFaces(0)
    batch = next(iter(torch.utils.data.DataLoader(OfflineFaces(4, 16, mask_seed=0), batch_size=4)))
    assert batch["cond_image"].shape == (4, 3, 16, 16) and len(batch["path"]) == 4
