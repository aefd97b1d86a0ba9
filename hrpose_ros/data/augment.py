"""Online augmentation that keeps image, intrinsics, poses and keypoints consistent.

Photometric ops (blur, colour jitter, noise) change pixels only. Geometric ops are
built as one exact *view transform*: an image affine ``A`` (input pixel -> output
pixel), a camera roll ``R_roll`` applied to every pose, and the output intrinsics
``K_out``, chosen so that for every 3D point X::

    project(X, R_roll @ R, R_roll @ t, K_out) == A (project(X, R, t, K))

How: an in-plane rotation of the image is done as a *camera roll* about the optical
axis, whose image map ``K Rz K^-1`` is exactly affine (Rz keeps z, so the homography
has last row (0, 0, 1)); with fx = fy it is a rotation about the principal point, with
fx != fy a rotation plus the matching tiny shear. Rolling the camera is a pose change
(``R' = Rz R``, ``t' = Rz t``), and K stays a plain pinhole matrix. Crop, zoom and
shift are a scale + translation ``S`` of pixel coordinates, which is the pinhole
``K_out = S K`` exactly (pixel-centre convention of docs/architecture.md, the same as
cv2.warpAffine's). The targets (belief maps, vector fields) are functions of the 2D
keypoints only, so building them from the projected keypoints of the new pose puts
every Gaussian and every corner->centroid vector where the warped image shows it.

Why not albumentations: it moves 2D keypoints, but has no notion of intrinsics or
poses, and the PnP labels need those; the photometric ops are a few cv2 calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "AugmentError",
    "AugmentParams",
    "ViewTransform",
    "add_noise",
    "color_jitter",
    "crop_view_transform",
    "gaussian_blur",
    "photometric",
    "random_view_transform",
    "roll_matrix",
    "view_transform",
]


class AugmentError(ValueError):
    """Bad augmentation parameter, image or transform input."""


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the online augmentation (zero disables an op).

    Attributes:
        rotation_deg: max |in-plane rotation| (camera roll), degrees.
        scale_range: (min, max) zoom relative to the plain resize.
        translate_fraction: max shift as a fraction of the output size.
        blur_prob, blur_sigma_max: chance of a Gaussian blur and its max sigma (px).
        brightness, contrast, saturation: max relative change (0.2 = +-20 %).
        hue_deg: max hue shift, degrees.
        noise_prob, noise_std_max: chance of Gaussian noise and its max std (0..255 levels).
    """

    rotation_deg: float = 30.0
    scale_range: tuple[float, float] = (0.8, 1.25)
    translate_fraction: float = 0.1
    blur_prob: float = 0.3
    blur_sigma_max: float = 1.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25
    hue_deg: float = 8.0
    noise_prob: float = 0.3
    noise_std_max: float = 6.0

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise AugmentError(f"scale_range must satisfy 0 < min <= max, got {self.scale_range}")
        for name in (
            "rotation_deg",
            "translate_fraction",
            "blur_sigma_max",
            "brightness",
            "contrast",
            "saturation",
            "hue_deg",
            "noise_std_max",
        ):
            if not getattr(self, name) >= 0:
                raise AugmentError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("blur_prob", "noise_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise AugmentError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class ViewTransform:
    """An exact geometric augmentation (see the module docstring).

    Attributes:
        A: (3, 3) affine, input pixel -> output pixel (last row 0, 0, 1).
        R_roll: (3, 3) camera roll applied to poses: R' = R_roll R, t' = R_roll t.
        K: (3, 3) intrinsics of the output image.
        out_size: (W, H) of the output image.
    """

    A: np.ndarray
    R_roll: np.ndarray
    K: np.ndarray
    out_size: tuple[int, int]

    def apply_pose(self, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses seen by the output image: R (..., 3, 3), t (..., 3) metres -> same shapes."""
        R = np.asarray(R, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        return self.R_roll @ R, t @ self.R_roll.T

    def apply_points(self, xy: np.ndarray) -> np.ndarray:
        """Move pixel coordinates (..., 2) of the input image to the output image."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy @ self.A[:2, :2].T + self.A[:2, 2]

    def warp(
        self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR, border_value=(0, 0, 0)
    ) -> np.ndarray:
        """Warp an (H, W[, C]) image into the output frame (cv2 pixel-centre convention)."""
        return cv2.warpAffine(
            image,
            self.A[:2],
            self.out_size,
            flags=interpolation,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=border_value,
        )


def roll_matrix(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation about the camera's optical (z) axis by ``angle_rad``.

    Positive angles turn the image content clockwise on screen (x right, y down).
    """
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def view_transform(
    K: np.ndarray,
    src_size: tuple[int, int],
    out_size: tuple[int, int],
    *,
    angle_rad: float = 0.0,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> ViewTransform:
    """Roll by ``angle_rad``, resize ``src_size`` -> ``out_size`` (W, H), zoom by ``scale``
    about the output centre, then shift by ``shift`` output pixels.

    With the defaults this is the plain resize of ``geometry.camera.scale_intrinsics``.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise AugmentError(f"K must be a finite (3, 3) camera matrix, got {K!r}")
    (sw, sh), (ow, oh) = src_size, out_size
    if min(sw, sh, ow, oh) <= 0 or not scale > 0:
        raise AugmentError(f"sizes and scale must be positive, got {src_size}, {out_size}, {scale}")
    Rz = roll_matrix(angle_rad)
    roll = K @ Rz @ np.linalg.inv(K)
    roll[2] = (0.0, 0.0, 1.0)  # exactly affine (removes round-off)
    sx, sy = ow / sw * scale, oh / sh * scale
    # resize: u' = (u + 0.5) * ow/sw - 0.5; then zoom about c = ((ow-1)/2, (oh-1)/2) and shift.
    cxo, cyo = (ow - 1) / 2.0, (oh - 1) / 2.0
    S = np.array(
        [
            [sx, 0.0, scale * (0.5 * ow / sw - 0.5 - cxo) + cxo + shift[0]],
            [0.0, sy, scale * (0.5 * oh / sh - 0.5 - cyo) + cyo + shift[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    return ViewTransform(A=S @ roll, R_roll=Rz, K=S @ K, out_size=(int(ow), int(oh)))


def crop_view_transform(
    K: np.ndarray,
    scale: float,
    center: tuple[float, float],
    out_size: tuple[int, int],
    *,
    angle_rad: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> ViewTransform:
    """Roll by ``angle_rad``, resize by ``scale`` and cut an ``out_size`` (W, H) window that
    shows source pixel ``center`` at the window centre moved by ``offset`` output pixels.

    Why: most of a camera frame is background; training on windows around the objects, at
    the scale the network sees them at run time (its letterbox scale), spends the CPU on
    object pixels. The window follows the pixel-centre convention of :func:`view_transform`.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise AugmentError(f"K must be a finite (3, 3) camera matrix, got {K!r}")
    ow, oh = out_size
    if min(ow, oh) <= 0 or not scale > 0:
        raise AugmentError(f"out_size and scale must be positive, got {out_size}, {scale}")
    Rz = roll_matrix(angle_rad)
    roll = K @ Rz @ np.linalg.inv(K)
    roll[2] = (0.0, 0.0, 1.0)
    rolled = roll @ np.array([center[0], center[1], 1.0])
    target = np.array([(ow - 1) / 2.0 + offset[0], (oh - 1) / 2.0 + offset[1]])
    # resize u' = (u + 0.5) * scale - 0.5, then translate the rolled centre onto the target
    shift = target - ((rolled[:2] + 0.5) * scale - 0.5)
    S = np.array(
        [
            [scale, 0.0, 0.5 * scale - 0.5 + shift[0]],
            [0.0, scale, 0.5 * scale - 0.5 + shift[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    return ViewTransform(A=S @ roll, R_roll=Rz, K=S @ K, out_size=(int(ow), int(oh)))


def random_view_transform(
    rng: np.random.Generator,
    K: np.ndarray,
    src_size: tuple[int, int],
    out_size: tuple[int, int],
    params: AugmentParams,
) -> ViewTransform:
    """Draw roll, zoom and shift from ``params`` and build the :class:`ViewTransform`."""
    angle = np.deg2rad(rng.uniform(-params.rotation_deg, params.rotation_deg))
    lo, hi = params.scale_range
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    shift = (
        rng.uniform(-1.0, 1.0, size=2) * params.translate_fraction * np.asarray(out_size, dtype=np.float64)
    )
    return view_transform(
        K, src_size, out_size, angle_rad=angle, scale=scale, shift=(float(shift[0]), float(shift[1]))
    )


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with std ``sigma`` pixels (no-op for sigma <= 0)."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma)) if sigma > 0 else image


def add_noise(image: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Add zero-mean Gaussian noise of ``std`` levels to a uint8 image (clipped).

    The noise is a random window (and sign) of a per-process bank of N(0, 1) samples:
    drawing ~1M fresh normals per image costs more than the rest of the augmentation.
    """
    if std <= 0:
        return image
    h, w = image.shape[:2]
    bank = _noise_bank(h + 64, w + 64, image.shape[2] if image.ndim == 3 else 1)
    y, x = int(rng.integers(0, 65)), int(rng.integers(0, 65))
    noise = bank[y : y + h, x : x + w].reshape(image.shape)
    scale = float(std) if rng.random() < 0.5 else -float(std)
    return cv2.scaleAdd(noise, scale, image.astype(np.float32)).clip(0, 255).astype(np.uint8)


_NOISE_BANKS: dict[tuple[int, int, int], np.ndarray] = {}


def _noise_bank(h: int, w: int, c: int) -> np.ndarray:
    key = (h, w, c)
    if key not in _NOISE_BANKS:
        _NOISE_BANKS.clear()
        _NOISE_BANKS[key] = np.random.default_rng(0x5EED).standard_normal((h, w, c), dtype=np.float32)
    return _NOISE_BANKS[key]


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: float,
    contrast: float,
    saturation: float,
    hue_deg: float,
) -> np.ndarray:
    """Random brightness, contrast, saturation and hue of an (H, W, 3) uint8 RGB image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise AugmentError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    out = image
    if hue_deg > 0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        shift = round(rng.uniform(-hue_deg, hue_deg) / 2.0)  # OpenCV hue unit = 2 degrees
        hsv[..., 0] = cv2.LUT(hsv[..., 0], ((np.arange(256) + shift) % 180).astype(np.uint8))
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if saturation > 0:
        a = rng.uniform(1 - saturation, 1 + saturation)
        gray = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out = cv2.addWeighted(out, a, gray, 1.0 - a, 0.0)  # saturates to 0..255
    # contrast about the mean, then brightness: one per-level lookup table
    c = rng.uniform(1 - contrast, 1 + contrast) if contrast > 0 else 1.0
    b = rng.uniform(1 - brightness, 1 + brightness) if brightness > 0 else 1.0
    if c != 1.0 or b != 1.0:
        mean = float(out.mean())
        lut = np.clip(b * (mean + c * (np.arange(256) - mean)), 0, 255).astype(np.uint8)
        out = cv2.LUT(out, lut)
    return out


def photometric(image: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Colour jitter, then blur and noise with their probabilities; (H, W, 3) uint8 RGB."""
    out = color_jitter(
        image,
        rng,
        brightness=params.brightness,
        contrast=params.contrast,
        saturation=params.saturation,
        hue_deg=params.hue_deg,
    )
    if params.blur_sigma_max > 0 and rng.random() < params.blur_prob:
        out = gaussian_blur(out, rng.uniform(0.3, params.blur_sigma_max))
    if params.noise_std_max > 0 and rng.random() < params.noise_prob:
        out = add_noise(out, rng, rng.uniform(0.0, params.noise_std_max))
    return out
