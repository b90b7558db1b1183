"""Two classical inpainting baselines the diffusion model must beat.

- :func:`mean_fill`: paint the hole with the average colour of the known pixels (per image and
  channel) - the best *constant* fill in the mean-squared sense;
- :func:`telea_fill`: OpenCV's fast-marching method (Telea 2004), which propagates the border colours
  smoothly inwards (``cv2.inpaint(..., cv2.INPAINT_TELEA)``).

Both take and return ``(B, 3, H, W)`` tensors in [-1, 1] with a mask ``(B, 1, H, W)`` (1 = hole),
and return ``image * (1 - mask) + mask * fill``, so the known region is returned bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _check(image: Tensor, mask: Tensor) -> Tensor:
    """Validate shapes; return the mask as a {0, 1} tensor of the image's dtype and device."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W) in [-1, 1], got shape {tuple(image.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != image.shape[0] or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"mask must be (B, 1, H, W) matching the image {tuple(image.shape)}, got {tuple(mask.shape)}")
    return (mask > 0.5).to(device=image.device, dtype=image.dtype)


def _paste(image: Tensor, mask: Tensor, fill: Tensor) -> Tensor:
    """Known pixels from ``image`` exactly, hole pixels from ``fill`` (``torch.where``, no arithmetic)."""
    return torch.where(mask.bool().expand_as(image), fill, image)


@torch.no_grad()
def mean_fill(image: Tensor, mask: Tensor) -> Tensor:
    """Fill the hole with the mean colour of the known pixels of the same image and channel.

    fill_bc = sum_hw (1 - m) x_bchw / sum_hw (1 - m); an image with no known pixel gets 0 (grey).

    :param image: (B, 3, H, W) in [-1, 1].
    :param mask: (B, 1, H, W), 1 = hole.
    :return: (B, 3, H, W); equal to ``image`` wherever ``mask`` is 0.
    """
    m = _check(image, mask)
    known = 1.0 - m  # (B, 1, H, W)
    count = known.sum(dim=(2, 3))  # (B, 1)
    total = (image * known).sum(dim=(2, 3))  # (B, 3)
    mean = torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros_like(total))  # (B, 3)
    return _paste(image, m, mean[:, :, None, None].expand_as(image))


@torch.no_grad()
def telea_fill(image: Tensor, mask: Tensor, radius: int = 5) -> Tensor:
    """OpenCV Telea inpainting (fast marching; each hole pixel is a weighted average of the known
    pixels within ``radius`` plus their gradients), run per image on 8-bit RGB.

    The image is quantised to uint8 for OpenCV (round((x + 1) * 127.5)) and the fill mapped back
    with x = u / 127.5 - 1; the known region is not round-tripped, it is returned unchanged.

    :param image: (B, 3, H, W) in [-1, 1].
    :param mask: (B, 1, H, W), 1 = hole.
    :param radius: neighbourhood radius in pixels (OpenCV's ``inpaintRadius``).
    :return: (B, 3, H, W); equal to ``image`` wherever ``mask`` is 0.
    """
    import cv2  # opencv-python-headless; imported here so ``import ddpm_lab`` stays light

    m = _check(image, mask)
    if radius < 1:
        raise ValueError(f"radius must be >= 1 pixel, got {radius}")
    u8 = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (B, 3, H, W)
    holes = (m.detach().cpu()[:, 0] > 0.5).numpy().astype(np.uint8) * 255  # (B, H, W)
    filled = []
    for img, hole in zip(u8.permute(0, 2, 3, 1).numpy(), holes):
        out = cv2.inpaint(np.ascontiguousarray(img), hole, float(radius), cv2.INPAINT_TELEA)  # (H, W, 3)
        filled.append(torch.from_numpy(out))
    fill = torch.stack(filled).permute(0, 3, 1, 2).to(device=image.device, dtype=image.dtype) / 127.5 - 1.0
    return _paste(image, m, fill)
