"""Image files -> the course's inpainting samples (CelebA or any folder of faces).

Each sample is the course's dict (Palette's layout), built by :func:`make_inpainting_sample`:

- ``gt_image``: the image y_0, (3, H, W) in [-1, 1];
- ``cond_image`` = y_0 * (1 - mask) + mask * noise, noise ~ N(0, I): the network's condition;
- ``mask_image`` = y_0 * (1 - mask) + mask: the hole painted white, for display;
- ``mask``: (1, H, W), 1 = hole;
- ``path``: where the image came from.

Two errata of the course are fixed here: the file list is sorted before the train/validation
split (``os.listdir`` order differs between machines), and images are centre-cropped to the
target aspect ratio before resizing (CelebA's 178x218 faces are not squashed).
"""

from __future__ import annotations

import os
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from .masks import check_mask_mode, image_size_hw, make_mask

# what PIL raises on a corrupt, truncated or non-image file (FileNotFoundError is checked first)
_READ_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

CELEBA_HINTS = """How to get CelebA (img_align_celeba, 202,599 JPEGs of 178x218):
  1. Kaggle: dataset "jessicali9530/celeba-dataset"
       kaggle datasets download -d jessicali9530/celeba-dataset   (needs ~/.kaggle/kaggle.json)
       unzip celeba-dataset.zip   -> the images are in img_align_celeba/img_align_celeba
     or let ddpm_lab.prepare_celeba('celeba-dataset.zip', 'data/celeba') extract it and find the folder.
  2. Google Drive (Colab): keep a copy of the zip on your Drive, then
       from google.colab import drive; drive.mount('/content/drive')
       ddpm_lab.prepare_celeba('/content/drive/MyDrive/celeba-dataset.zip', '/content/celeba')
     (extract to the local disk /content, not onto Drive: reading 200k small files from Drive is slow).
  3. Offline, no download at all: procedurally generated cartoon faces,
       ddpm_lab.write_offline_faces('data/offline_faces', n=2000)   # real JPEG files for this folder
     or use ddpm_lab.OfflineFaces(n=2000) directly as the dataset.
  Note: torchvision.datasets.CelebA(download=True) often fails (Google Drive download quota)."""


def _hint_error(kind: type[Exception], message: str) -> Exception:
    return kind(f"{message}\n{CELEBA_HINTS}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited onto white, 16/32-bit grey is rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            scale = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        else:  # 16-bit (or 32-bit holding 16-bit values): full range 0..65535
            scale = 255.0 if arr.max(initial=0.0) <= 255 else 65535.0
        grey = np.clip(np.rint(arr / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file of any format PIL reads and return it as RGB.

    Conversions: EXIF orientation is applied; grayscale ("1", "L") is replicated to 3 channels;
    16-bit grayscale ("I;16", "I") is rescaled from 0..65535 to 0..255; palette images are
    expanded; images with an alpha channel (RGBA, LA, palette + transparency) are composited onto a
    white background (not alpha-dropped, whose hidden colours are often garbage); CMYK/YCbCr go
    through PIL's own conversion. The file is fully decoded here, so truncated files fail here.

    :param path: image file.
    :return: an RGB ``PIL.Image.Image`` (loaded, file closed).
    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: the file exists but is not a readable image (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {str(path)!r}")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img).copy()
    except _READ_ERRORS as err:
        raise ValueError(
            f"cannot read image file {str(path)!r} ({type(err).__name__}: {err}); "
            "the file is corrupt, truncated or not an image: delete or replace it"
        ) from err


def center_crop_resize(img: Image.Image, image_size: int | tuple[int, int]) -> Image.Image:
    """Centre-crop to the aspect ratio of ``image_size`` (square for an int), then resize (bicubic).

    For CelebA (178 wide x 218 high) and a square target this keeps the middle 178x178 (20 rows cut
    at the top and 20 at the bottom) instead of squashing the face (the course's erratum 8).

    :param img: a PIL image.
    :param image_size: target ``H = W`` or ``(H, W)``.
    :return: a PIL image of size (W, H) in PIL's (width, height) order.
    """
    th, tw = image_size_hw(image_size)
    w, h = img.size
    if w * th > h * tw:  # too wide: keep the full height
        cw, ch = max(1, round(h * tw / th)), h
    else:  # too tall (or exact): keep the full width
        cw, ch = w, max(1, round(w * th / tw))
    left, top = int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0))
    img = img.crop((left, top, left + cw, top + ch))
    if img.size != (tw, th):
        img = img.resize((tw, th), Image.BICUBIC)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float32 tensor (3, H, W) in [-1, 1]: x = (pixel / 255) * 2 - 1.

    :param img: a PIL image (converted to RGB first if it is not).
    :return: tensor (3, H, W).
    """
    arr = np.asarray(_to_rgb(img), dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()  # (3, H, W)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """Inverse of :func:`to_tensor`: clamp to [-1, 1], pixel = round((x + 1) / 2 * 255).

    :param tensor: (3, H, W) or (1, H, W) (or with a leading batch dimension of 1), any device.
    :return: an RGB (3 channels) or L (1 channel) PIL image.
    """
    t = tensor.detach().to("cpu", torch.float32)
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"to_pil expects a (3, H, W) or (1, H, W) tensor, got shape {tuple(tensor.shape)}")
    arr = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def list_images(
    folder: str | os.PathLike,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = False,
) -> list[str]:
    """Sorted paths of the image files in ``folder`` (sorted: the split must not depend on the OS).

    :param folder: a directory, e.g. ``img_align_celeba/img_align_celeba``.
    :param extensions: accepted suffixes, compared case-insensitively (".JPG" matches ".jpg").
    :param recursive: also look in sub-folders.
    :return: list of path strings, sorted.
    :raises FileNotFoundError: the folder does not exist (the message says how to get CelebA).
    :raises ValueError: the folder holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise _hint_error(FileNotFoundError, f"image folder not found: {str(root)!r}")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(str(p) for p in files if p.suffix.lower() in exts and p.is_file())
    if not paths:
        raise _hint_error(
            ValueError, f"no image files ({', '.join(sorted(exts))}) in {str(root)!r}"
            + ("" if recursive else " (sub-folders not searched: pass recursive=True?)")
        )
    return paths


def train_val_split(
    paths: Sequence[str], num_train: int | None = None, val_fraction: float | None = None
) -> tuple[list[str], list[str]]:
    """Deterministic split: sort the paths, the first ``num_train`` train, the rest validate.

    The course uses ``num_train=150000`` on CelebA's 202,599 files. Alternatively
    ``val_fraction`` puts the last round(N * val_fraction) (at least 1) sorted paths in validation.
    Give exactly one of the two; both halves must be non-empty.

    :param paths: image paths (any order).
    :param num_train: number of training images, 1 <= num_train < N.
    :param val_fraction: fraction of validation images, in (0, 1).
    :return: ``(train_paths, val_paths)``.
    """
    ordered = sorted(str(p) for p in paths)
    n = len(ordered)
    if (num_train is None) == (val_fraction is None):
        raise ValueError("give exactly one of num_train (the course: 150000) or val_fraction (e.g. 0.1)")
    if val_fraction is not None:
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        num_train = n - max(1, int(round(n * float(val_fraction))))
    if isinstance(num_train, bool) or not isinstance(num_train, (int, np.integer)):
        raise ValueError(f"num_train must be an integer, got {num_train!r}")
    if not 1 <= num_train < n:
        raise ValueError(
            f"cannot split {n} images into {num_train} train + {n - num_train} validation: "
            f"need 1 <= num_train < {n} (both sets non-empty)"
        )
    return ordered[:num_train], ordered[num_train:]


def _safe_extract(zip_path: Path, dest: Path) -> None:
    """Extract ``zip_path`` into ``dest``, refusing entries that would land outside ``dest``."""
    root = dest.resolve()
    with zipfile.ZipFile(zip_path) as zf:
        members = zf.infolist()
        for info in members:
            name = info.filename.replace("\\", "/")
            target = (root / name).resolve()
            if name.startswith("/") or ".." in name.split("/") or not target.is_relative_to(root):
                raise ValueError(
                    f"unsafe entry {info.filename!r} in {str(zip_path)!r} (path traversal); not extracting"
                )
        for info in members:
            target = root / info.filename.replace("\\", "/")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _image_folder(root: Path) -> Path | None:
    """The directory under ``root`` (itself included) holding the most image files."""
    best, best_count = None, 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        count = sum(1 for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
        if count > best_count:
            best, best_count = Path(dirpath), count
    return best


def prepare_celeba(source: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """Turn a CelebA download (zip or folder) into the folder that holds the images. No network.

    A zip (Kaggle's ``celeba-dataset.zip`` or a copy on Google Drive) is extracted into ``dest``
    once: a marker file ``.extracted-<zip name>`` makes later calls skip the extraction. Entries
    that would escape ``dest`` (absolute paths, ``..``) abort the extraction. Then the folder with
    the most images is returned, e.g. ``dest/img_align_celeba/img_align_celeba`` (Kaggle's nested
    layout). A folder ``source`` is searched the same way, without copying.

    :param source: path of a .zip file or of a folder.
    :param dest: extraction folder for a zip (default: next to the zip, named after it).
    :return: the folder holding the images (give it to :func:`list_images`).
    """
    src = Path(source)
    if src.is_dir():
        root = src
    elif src.is_file():
        if not zipfile.is_zipfile(src):
            raise ValueError(f"{str(src)!r} is neither a folder nor a zip file")
        root = Path(dest) if dest is not None else src.with_suffix("")
        marker = root / f".extracted-{src.name}"
        if not marker.exists():
            root.mkdir(parents=True, exist_ok=True)
            _safe_extract(src, root)
            marker.write_text(f"{src}\n{src.stat().st_size}\n")
    else:
        raise _hint_error(FileNotFoundError, f"CelebA source not found: {str(src)!r}")
    folder = _image_folder(root)
    if folder is None:
        raise _hint_error(ValueError, f"no image files found under {str(root)!r}")
    return folder


def sample_generator(seed: int | None, index: int) -> torch.Generator | None:
    """CPU generator seeded from the pair (seed, index) (numpy SeedSequence), or None if seed is None."""
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), int(index)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def make_inpainting_sample(
    img: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None, path: str = ""
) -> dict:
    """The course's sample dict from an image and a mask.

    ``cond_image = img * (1 - mask) + mask * noise`` with noise ~ N(0, I) drawn from ``generator``
    (the global torch RNG if None), and ``mask_image = img * (1 - mask) + mask``.

    :param img: y_0, (3, H, W) in [-1, 1].
    :param mask: (1, H, W), 1 = hole.
    :param generator: source of the noise.
    :param path: the image's origin, stored under ``"path"``.
    :return: dict with ``gt_image`` (3, H, W), ``cond_image`` (3, H, W), ``mask_image`` (3, H, W),
        ``mask`` (1, H, W) float, ``path`` str.
    """
    mask = mask.to(img.dtype)
    noise = torch.randn(img.shape, generator=generator, dtype=img.dtype)  # (3, H, W)
    known = img * (1.0 - mask)
    return {
        "gt_image": img,
        "cond_image": known + mask * noise,
        "mask_image": known + mask,
        "mask": mask,
        "path": str(path),
    }


class InpaintingDataset(Dataset):
    """The course's dataset: image files -> :func:`make_inpainting_sample` dicts.

    Each image is loaded (:func:`load_image`), centre-cropped and resized
    (:func:`center_crop_resize`), mapped to [-1, 1]; a mask of ``mask_mode`` is drawn.

    With ``seed`` set, item i always gets the same mask and noise (a generator seeded from
    (seed, i)), e.g. for a fixed validation set; with None both are fresh on every access.

    A file that cannot be read never stops an epoch: the next readable index (wrapping around) is
    served instead (its ``path`` names the file actually served) and one warning names the bad file
    (once per file per dataset object, i.e. per DataLoader worker). RuntimeError if none is readable.

    :param img_paths: list of image paths, or a folder (then :func:`list_images`).
    :param mask_mode: one of :data:`~ddpm_lab.masks.MASK_MODES` (the course: "center").
    :param image_size: ``H = W`` or ``(H, W)`` (the course: (256, 256)).
    :param seed: None for fresh randomness, an int for reproducible masks and noise.
    """

    def __init__(
        self,
        img_paths: Sequence[str] | str | os.PathLike,
        mask_mode: str = "center",
        image_size: int | tuple[int, int] = (256, 256),
        seed: int | None = None,
    ) -> None:
        if isinstance(img_paths, (str, os.PathLike)):
            img_paths = list_images(img_paths)
        self.img_paths = [str(p) for p in img_paths]
        if not self.img_paths:
            raise _hint_error(ValueError, "InpaintingDataset got an empty list of image paths")
        self.mask_mode = check_mask_mode(mask_mode)
        self.image_size = image_size_hw(image_size)
        self.seed = seed
        self._bad: set[int] = set()  # indices known to be unreadable (warned once each)

    def __len__(self) -> int:
        return len(self.img_paths)

    def _load(self, index: int) -> tuple[torch.Tensor, str]:
        n = len(self.img_paths)
        for k in range(n):
            j = (index + k) % n
            if j in self._bad:
                continue
            try:
                img = load_image(self.img_paths[j])
            except (ValueError, OSError) as err:  # FileNotFoundError is an OSError
                self._bad.add(j)
                msg = f"skipping unreadable image {self.img_paths[j]!r}: {err}"
                warnings.warn(msg, RuntimeWarning, stacklevel=3)
                continue
            return to_tensor(center_crop_resize(img, self.image_size)), self.img_paths[j]
        raise RuntimeError(
            f"none of the {n} image files of this dataset can be read (first: {self.img_paths[0]!r})"
        )

    def __getitem__(self, index: int) -> dict:
        n = len(self.img_paths)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        img, path = self._load(index)  # (3, H, W)
        gen = sample_generator(self.seed, index)
        mask = make_mask(self.mask_mode, self.image_size, gen)  # (1, H, W)
        return make_inpainting_sample(img, mask, gen, path)
