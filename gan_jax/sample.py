"""Image grids and sample files."""

import math
import os
from typing import Optional

import numpy as np
from PIL import Image


def to_unit(images) -> np.ndarray:
  """[-1, 1] -> float32 [0, 1]."""
  return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def make_grid(images: np.ndarray, ncol: Optional[int] = None, pad: int = 1) -> np.ndarray:
  """Tiles [N, H, W, C] images in [0, 1] into one [rows*(H+pad)+pad, ..., C] image."""
  n, h, w, c = images.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, ncol)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = image
  return grid


def save_png(grid: np.ndarray, path: str, scale: int = 1) -> None:
  """Writes a [H, W, C] grid in [0, 1] as a PNG, optionally upscaled (nearest)."""
  pixels = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
  if pixels.shape[-1] == 1:
    pixels = pixels[..., 0]
  image = Image.fromarray(pixels)
  if scale > 1:
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  image.save(path)


def balanced_labels(num: int, num_classes: int) -> np.ndarray:
  """0, 0, ..., 1, 1, ...: `num` labels as balanced over the classes as `num` allows."""
  return (np.arange(num) * num_classes // num).astype(np.int32)
