"""Random backgrounds for synthetic images: procedural textures or a user's photo folder.

Varied backgrounds are the cheapest domain randomisation: the network must not learn
that objects live on black. Procedural kinds: multi-octave colour noise, random shapes
over noise, warped stripes/checkers, and gradients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["BackgroundError", "BackgroundSource", "list_images", "procedural_background"]

_LOG = logging.getLogger(__name__)
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class BackgroundError(ValueError):
    """A background folder is missing or holds no readable image."""


def _noise(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Multi-octave value noise, (h, w, 3) float32 in 0..1."""
    out = np.zeros((h, w, 3), np.float32)
    total = 0.0
    for octave in range(int(rng.integers(2, 5))):
        cells = int(rng.integers(2, 6)) * 2**octave
        small = rng.random((cells, max(2, cells * w // h), 3), dtype=np.float32)
        amp = 0.5**octave
        out += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
    out /= total
    base, span = rng.random(3, dtype=np.float32), rng.uniform(0.2, 1.0)
    return np.clip(base * (1 - span) + out * span, 0, 1)


def _shapes(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    for _ in range(int(rng.integers(5, 30))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(5, max(6, min(w, h) // 3)))
        if kind == 0:
            cv2.circle(image, (x, y), size, color, -1 if rng.random() < 0.7 else int(rng.integers(1, 6)))
        elif kind == 1:
            cv2.rectangle(image, (x, y), (x + size, y + int(rng.integers(5, size + 6))), color, -1)
        else:
            cv2.line(
                image,
                (x, y),
                (int(rng.integers(0, w)), int(rng.integers(0, h))),
                color,
                int(rng.integers(1, 8)),
            )
    return image


def _stripes(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(8, 80)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    if rng.random() < 0.5:
        v = -xx * np.sin(angle) + yy * np.cos(angle)
        pattern = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    else:
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    a, b = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
    return a * pattern[..., None] + b * (1 - pattern[..., None])


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 1), np.float32)
    if rng.random() < 0.5:
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 1), np.float32)
    a, b = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
    return a * ramp + b * (1 - ramp)


def procedural_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random procedural texture, (height, width, 3) uint8 RGB.

    Textures are drawn at half resolution and upsampled (speed; they are smooth or
    blurred later anyway), except for thin shapes, drawn at full size.
    """
    w, h = max(1, width // 2), max(1, height // 2)
    kind = rng.integers(4)
    if kind in (0, 1):
        img = _noise(rng, w, h)
    elif kind == 2:
        img = 0.7 * _stripes(rng, w, h) + 0.3 * _noise(rng, w, h)
    else:
        img = _gradient(rng, w, h)
    img = cv2.resize(
        (np.clip(img, 0, 1) * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR
    )
    if kind in (1, 3):
        img = _shapes(rng, img)
    return img


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); BackgroundError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BackgroundError(f"background folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise BackgroundError(f"no images ({sorted(_IMAGE_SUFFIXES)}) under background folder {folder}")
    return files


class BackgroundSource:
    """Draws backgrounds: a photo from ``images`` with probability ``image_prob``,
    else a procedural texture. Photos are randomly cropped, resized and flipped."""

    def __init__(self, images: Sequence[Path] = (), image_prob: float = 0.5):
        """Args: images: photo files (see :func:`list_images`); image_prob: chance of a photo."""
        self.images = list(images)
        self.image_prob = float(image_prob) if self.images else 0.0

    def __call__(self, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB background."""
        if self.images and rng.random() < self.image_prob:
            path = self.images[int(rng.integers(len(self.images)))]
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                return self._crop(rng, img[..., ::-1], width, height)
            _LOG.warning("cannot read background %s; using a procedural one", path)
        return procedural_background(rng, width, height)

    @staticmethod
    def _crop(rng: np.random.Generator, img: np.ndarray, width: int, height: int) -> np.ndarray:
        h, w = img.shape[:2]
        aspect = width / height
        ch = int(min(h, w / aspect) * rng.uniform(0.5, 1.0))
        cw = max(1, int(ch * aspect))
        ch = max(1, ch)
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (width, height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)
