"""Data: loading real files of many kinds, centre crop, the course's sample dict, bad files, splits."""

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddpm_lab.data import (
    InpaintingDataset,
    center_crop_resize,
    list_images,
    load_image,
    make_inpainting_sample,
    prepare_celeba,
    sample_generator,
    to_pil,
    to_tensor,
    train_val_split,
)
from ddpm_lab.masks import make_mask


def _pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def image_dir(tmp_path: Path) -> Path:
    """A folder of real image files: RGB/grey/RGBA/palette/16-bit, odd sizes, two broken files."""
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(_pattern(40, 40, 1)).save(d / "a_rgb.jpg", quality=95)
    Image.fromarray(_pattern(24, 30, 2)[..., 0]).save(d / "b_gray.png")
    rgba = np.dstack([_pattern(32, 32, 3), np.full((32, 32), 255, np.uint8)])
    rgba[:, :16, 3] = 0  # left half fully transparent
    Image.fromarray(rgba).save(d / "c_rgba.png")
    celeb = np.zeros((218, 178, 3), np.uint8)
    celeb[:, :] = (0, 0, 255)
    celeb[:20], celeb[-20:] = (255, 0, 0), (255, 0, 0)  # rows the centre crop must remove
    Image.fromarray(celeb).save(d / "d_celeba_like.jpg", quality=95, subsampling=0)
    Image.fromarray(_pattern(300, 100, 4)).save(d / "e_wide.png")
    (d / "f_corrupt.jpg").write_bytes(b"this is not a jpeg at all" * 20)
    good = d / "a_rgb.jpg"
    (d / "g_truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    Image.fromarray(_pattern(20, 20, 5)).convert("P").save(d / "h_palette.png")
    (d / "notes.txt").write_text("not an image")
    return d


# ---------------------------------------------------------------- load_image


def test_load_image_converts_every_mode_to_rgb(image_dir: Path):
    for name in ["a_rgb.jpg", "b_gray.png", "c_rgba.png", "d_celeba_like.jpg", "e_wide.png", "h_palette.png"]:
        img = load_image(image_dir / name)
        assert img.mode == "RGB", name
    gray = np.asarray(load_image(image_dir / "b_gray.png"))
    expected = _pattern(24, 30, 2)[..., 0]
    for c in range(3):
        np.testing.assert_array_equal(gray[..., c], expected)
    assert load_image(image_dir / "e_wide.png").size == (300, 100)


def test_load_image_composites_alpha_on_white(image_dir: Path):
    arr = np.asarray(load_image(image_dir / "c_rgba.png"))
    assert (arr[:, :16] == 255).all()  # transparent -> white
    np.testing.assert_array_equal(arr[:, 16:], _pattern(32, 32, 3)[:, 16:])  # opaque -> unchanged


def test_load_image_rescales_16_bit_grey(tmp_path: Path):
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    out = np.asarray(load_image(tmp_path / "deep.png"))
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])


def test_load_image_errors(image_dir: Path):
    with pytest.raises(FileNotFoundError):
        load_image(image_dir / "missing.jpg")
    with pytest.raises(ValueError, match="f_corrupt.jpg"):
        load_image(image_dir / "f_corrupt.jpg")
    with pytest.raises(ValueError, match="g_truncated.jpg"):
        load_image(image_dir / "g_truncated.jpg")


# ---------------------------------------------------------------- crop, tensors


def test_center_crop_removes_celeba_top_and_bottom(image_dir: Path):
    img = load_image(image_dir / "d_celeba_like.jpg")
    assert img.size == (178, 218)
    out = np.asarray(center_crop_resize(img, 32)).astype(int)
    assert out.shape == (32, 32, 3)
    assert out[..., 0].max() < 40 and out[..., 2].min() > 215  # pure blue: the red rows are gone
    squashed = np.asarray(img.resize((32, 32), Image.BICUBIC)).astype(int)
    assert squashed[0, :, 0].min() > 200  # (a plain resize would keep them)


def test_center_crop_wide_image_keeps_the_middle(tmp_path: Path):
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = (0, 200, 0)
    img = Image.fromarray(arr)
    out = np.asarray(center_crop_resize(img, 50))
    assert out.shape == (50, 50, 3) and (out == (0, 200, 0)).all()
    assert center_crop_resize(img, (20, 40)).size == (40, 20)  # (h, w) target, PIL size is (w, h)


def test_to_tensor_range_and_round_trip():
    arr = _pattern(9, 7, 8)
    arr[0, 0], arr[0, 1] = 0, 255
    t = to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 7, 9) and t.dtype == torch.float32
    assert t.min().item() == -1.0 and t.max().item() == 1.0
    assert torch.allclose(t[:, 2, 3], torch.tensor(arr[2, 3] / 255.0 * 2 - 1, dtype=torch.float32))
    np.testing.assert_array_equal(np.asarray(to_pil(t)), arr)
    clamped = np.asarray(to_pil(torch.full((3, 2, 2), 5.0)))
    assert (clamped == 255).all()
    with pytest.raises(ValueError):
        to_pil(torch.zeros(2, 4, 4))


# ---------------------------------------------------------------- listing and splitting


def test_list_images_sorted_case_insensitive_non_recursive(tmp_path: Path):
    for name in ["zeta.jpg", "Alpha.PNG", "mid.JPEG", "beta.bmp"]:  # created unsorted
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    (tmp_path / "skip.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "deep.jpg")
    paths = list_images(tmp_path)
    names = [Path(p).name for p in paths]
    assert names == sorted(names) == ["Alpha.PNG", "beta.bmp", "mid.JPEG", "zeta.jpg"]
    assert all(isinstance(p, str) for p in paths)
    assert len(list_images(tmp_path, recursive=True)) == 5


def test_list_images_missing_folder_explains_how_to_get_celeba(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err:
        list_images(tmp_path / "img_align_celeba")
    msg = str(err.value)
    for needle in ["jessicali9530/celeba-dataset", "kaggle datasets download", "img_align_celeba/img_align_celeba",
                   "drive.mount('/content/drive')", "write_offline_faces", "OfflineFaces", "download=True"]:
        assert needle in msg, needle
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="kaggle"):
        list_images(tmp_path / "empty")


def test_train_val_split_is_deterministic():
    paths = [f"img/{i:06d}.jpg" for i in range(1, 11)]
    shuffled = list(paths)
    np.random.default_rng(0).shuffle(shuffled)
    train, val = train_val_split(shuffled, num_train=7)
    assert train == paths[:7] and val == paths[7:]
    assert train_val_split(list(reversed(paths)), num_train=7) == (train, val)
    train, val = train_val_split(paths, val_fraction=0.25)  # round(2.5) = 2 -> 8 + 2
    assert (len(train), len(val)) == (8, 2) and val == paths[8:]
    assert train_val_split(paths, val_fraction=0.01)[1] == paths[-1:]  # at least one validation image


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_train": 3, "val_fraction": 0.5}, {"num_train": 0}, {"num_train": 10}, {"num_train": 11},
               {"val_fraction": 0.0}, {"val_fraction": 1.0}, {"num_train": 2.5}]
)
def test_train_val_split_rejects_impossible_sizes(kwargs):
    with pytest.raises(ValueError):
        train_val_split([f"{i}.jpg" for i in range(10)], **kwargs)


# ---------------------------------------------------------------- the sample dict


def test_make_inpainting_sample_formulas():
    img = torch.linspace(-1, 1, 3 * 8 * 8).reshape(3, 8, 8)
    mask = make_mask("center", 8)
    sample = make_inpainting_sample(img, mask, torch.Generator().manual_seed(3), "x.png")
    noise = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample["cond_image"], img * (1 - mask) + mask * noise)
    assert torch.equal(sample["mask_image"], img * (1 - mask) + mask)
    assert sample["gt_image"] is img and sample["path"] == "x.png"
    assert torch.equal(sample["mask_image"][:, 2:6, 2:6], torch.ones(3, 4, 4))
    assert torch.equal(sample["cond_image"][:, 0], img[:, 0])


def test_dataset_items_follow_the_course_formulas(image_dir: Path):
    names = ["a_rgb.jpg", "b_gray.png", "c_rgba.png", "d_celeba_like.jpg", "e_wide.png"]
    paths = [str(image_dir / n) for n in names]
    ds = InpaintingDataset(paths, mask_mode="center", image_size=32, seed=7)
    assert len(ds) == 5
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"gt_image", "cond_image", "mask_image", "mask", "path"}
        gt, mask = item["gt_image"], item["mask"]
        assert gt.shape == (3, 32, 32) and mask.shape == (1, 32, 32) and mask.dtype == torch.float32
        assert gt.min() >= -1 and gt.max() <= 1 and item["path"] == paths[i]
        assert torch.equal(mask, make_mask("center", 32))
        gen = sample_generator(7, i)
        expected_mask = make_mask("center", 32, gen)
        noise = torch.randn(3, 32, 32, generator=gen)
        assert torch.equal(mask, expected_mask)
        assert torch.equal(item["cond_image"], gt * (1 - mask) + mask * noise)
        assert torch.equal(item["mask_image"], gt * (1 - mask) + mask)
    expected = to_tensor(center_crop_resize(load_image(paths[4]), 32))
    assert torch.equal(ds[4]["gt_image"], expected)


def test_dataset_seed_controls_masks_and_noise(image_dir: Path):
    paths = [str(image_dir / "a_rgb.jpg")] * 3
    ds = InpaintingDataset(paths, mask_mode="free_form", image_size=(16, 24), seed=1)
    a, b = ds[0], ds[0]
    assert a["cond_image"].shape == (3, 16, 24)
    assert torch.equal(a["cond_image"], b["cond_image"]) and torch.equal(a["mask"], b["mask"])
    assert not torch.equal(a["mask"], ds[1]["mask"])  # another index, another mask
    other = InpaintingDataset(paths, mask_mode="free_form", image_size=(16, 24), seed=2)[0]
    assert not torch.equal(a["mask"], other["mask"])
    fresh = InpaintingDataset(paths, mask_mode="free_form", image_size=(16, 24), seed=None)
    assert not torch.equal(fresh[0]["cond_image"], fresh[0]["cond_image"])
    hole = a["cond_image"][a["mask"].expand(3, -1, -1) > 0]
    assert hole.numel() > 50 and abs(hole.mean().item()) < 0.35 and 0.7 < hole.std().item() < 1.3


def test_dataset_accepts_a_folder_and_checks_arguments(image_dir: Path):
    ds = InpaintingDataset(image_dir, image_size=16, seed=0)
    assert len(ds) == 8 and ds.img_paths == sorted(ds.img_paths)  # the .txt file is not listed
    with pytest.raises(ValueError) as err:
        InpaintingDataset(image_dir, mask_mode="square")
    assert "free_form" in str(err.value) and "hybrid" in str(err.value)
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(ValueError):
        InpaintingDataset([], image_size=16)


def test_dataset_skips_corrupt_files_and_warns_once(image_dir: Path):
    paths = [str(image_dir / n) for n in ["a_rgb.jpg", "f_corrupt.jpg", "g_truncated.jpg", "e_wide.png"]]
    ds = InpaintingDataset(paths, image_size=16, seed=0)
    with pytest.warns(RuntimeWarning) as record:
        item = ds[1]
    assert item["path"] == paths[3]  # two bad files skipped, the next good one served
    messages = [str(w.message) for w in record]
    assert sum("f_corrupt.jpg" in m for m in messages) == 1 and sum("g_truncated.jpg" in m for m in messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        assert ds[2]["path"] == paths[3]
        assert ds[1]["path"] == paths[3]
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    batches = list(loader)  # a whole epoch, no crash
    assert len(batches) == 2 and batches[0]["gt_image"].shape == (2, 3, 16, 16)


def test_dataset_wraps_around_and_fails_when_nothing_is_readable(image_dir: Path):
    paths = [str(image_dir / n) for n in ["a_rgb.jpg", "f_corrupt.jpg"]]
    with pytest.warns(RuntimeWarning, match="f_corrupt"):
        assert InpaintingDataset(paths, image_size=16)[1]["path"] == paths[0]
    bad = InpaintingDataset([str(image_dir / "f_corrupt.jpg"), str(image_dir / "gone.jpg")], image_size=16)
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="none of the 2"):
        bad[0]


# ---------------------------------------------------------------- prepare_celeba


def _stand_in_zip(tmp_path: Path, n: int = 3) -> Path:
    """A tiny zip laid out like Kaggle's celeba-dataset download."""
    src = tmp_path / "src"
    src.mkdir()
    zpath = tmp_path / "celeba-dataset.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i in range(n):
            p = src / f"{i + 1:06d}.jpg"
            Image.fromarray(_pattern(18, 22, i)).save(p)
            zf.write(p, f"img_align_celeba/img_align_celeba/{p.name}")
        zf.writestr("list_eval_partition.csv", "image_id,partition\n")
        zf.writestr("img_align_celeba/", "")
    return zpath


def test_prepare_celeba_from_a_kaggle_style_zip(tmp_path: Path):
    zpath = _stand_in_zip(tmp_path)
    folder = prepare_celeba(zpath, tmp_path / "celeba")
    assert folder == tmp_path / "celeba" / "img_align_celeba" / "img_align_celeba"
    assert [Path(p).name for p in list_images(folder)] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    os.remove(folder / "000002.jpg")  # already extracted: a second call must not extract again
    assert prepare_celeba(zpath, tmp_path / "celeba") == folder
    assert not (folder / "000002.jpg").exists()
    assert prepare_celeba(tmp_path / "celeba") == folder  # a folder source is searched in place
    ds = InpaintingDataset(folder, image_size=16)
    assert ds[0]["gt_image"].shape == (3, 16, 16)


def test_prepare_celeba_refuses_path_traversal(tmp_path: Path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("img/ok.txt", "fine")
        zf.writestr("../escaped.txt", "bad")
    with pytest.raises(ValueError, match="escaped.txt"):
        prepare_celeba(zpath, tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "out" / "dest" / "img" / "ok.txt").exists()  # checked before writing anything


def test_prepare_celeba_bad_sources(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="kaggle"):
        prepare_celeba(tmp_path / "nothing.zip", tmp_path / "dest")
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="zip"):
        prepare_celeba(tmp_path / "fake.zip", tmp_path / "dest")
    (tmp_path / "no_images").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        prepare_celeba(tmp_path / "no_images")
