"""Decoder: belief maps + vector fields -> object instances with 2D keypoints.

Peaks are found in every belief map, and centroid peaks define the instances of each
class. How corners join them depends on the kind of vector field the network was trained
with (``geometry.targets.VECTOR_FIELDS``, named in the model bundle):

- ``to_centroid`` (greedy, as in the HRPose paper): each corner peak joins the centroid of
  its class whose direction best agrees with the vector predicted at the corner, within
  an angle threshold; its belief channel says which corner it is. Instances with too few
  keypoints are dropped.
- ``corner_offsets``: the offsets read around each centroid peak place its 8 corners.
  Optionally (``snap_radius_px`` > 0; off by default) each placed corner snaps to the
  nearest corner peak of the class (any corner channel) within that radius, or keeps the
  placed position when there is none (an occluded corner, or one outside the image, still
  gets a position from the object's visible part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from hrpose_ros.geometry.keypoints import NUM_CORNERS, NUM_KEYPOINTS, VECTOR_CHANNELS_PER_CLASS, Keypoint
from hrpose_ros.geometry.targets import (
    CORNER_OFFSETS,
    DEFAULT_OFFSET_SCALE,
    TO_CENTROID,
    VECTOR_FIELDS,
    to_input_coords,
)

__all__ = ["DecodeError", "DecodeParams", "Instance", "decode", "find_peaks", "offset_corners"]

# 8-neighbourhood; a peak must be > the neighbours before it in raster order and >= the
# ones after it, so a plateau of equal values gives one peak, not several.
_BEFORE = ((-1, -1), (-1, 0), (-1, 1), (0, -1))
_AFTER = ((0, 1), (1, -1), (1, 0), (1, 1))


class DecodeError(ValueError):
    """Bad decoder input: map shapes, channel counts or parameters."""


@dataclass(frozen=True)
class DecodeParams:
    """Decoder settings.

    Attributes:
        peak_threshold: minimum belief of a corner peak.
        centroid_threshold: minimum belief of a centroid peak (one per instance).
        angle_threshold_deg: largest angle between the predicted vector at a corner
            and the direction from that corner to the centroid it joins.
        min_keypoints: instances with fewer keypoints (centroid counted) are dropped.
        smoothing_sigma: Gaussian smoothing of the maps before peak search, output
            pixels; 0 disables it. Sub-pixel refinement always uses the raw maps.
        refine_radius: half-size of the window of the sub-pixel fit, output pixels.
        position_tolerance_px: peak position uncertainty, output pixels. The
            direction to a centroid d pixels away is uncertain by atan(tol / d); that
            much angle is forgiven, so a corner on top of its centroid still joins it.
        max_peaks_per_map: only the strongest peaks of each map are kept, which bounds
            the decoder's time and memory on noisy outputs (untrained networks).
        snap_radius_px: ``corner_offsets`` models: a corner placed by the offsets moves to
            the nearest corner peak within this distance, output pixels; 0 (the default)
            keeps the placed corners. Measured on 300 held-out images, the trained
            networks' corner peaks lie further from the truth than their offsets, and
            ADD(-S) is 1.8-3.3 points higher without snapping than at 2 px (README).
    """

    peak_threshold: float = 0.1
    centroid_threshold: float = 0.1
    angle_threshold_deg: float = 30.0
    min_keypoints: int = 5
    smoothing_sigma: float = 0.0
    refine_radius: int = 2
    position_tolerance_px: float = 1.0
    max_peaks_per_map: int = 64
    snap_radius_px: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "peak_threshold": math.isfinite(self.peak_threshold),
            "centroid_threshold": math.isfinite(self.centroid_threshold),
            "angle_threshold_deg": 0 < self.angle_threshold_deg <= 180,
            "min_keypoints": isinstance(self.min_keypoints, int) and 1 <= self.min_keypoints <= NUM_KEYPOINTS,
            "smoothing_sigma": math.isfinite(self.smoothing_sigma) and self.smoothing_sigma >= 0,
            "refine_radius": isinstance(self.refine_radius, int) and self.refine_radius >= 1,
            "position_tolerance_px": math.isfinite(self.position_tolerance_px)
            and self.position_tolerance_px >= 0,
            "max_peaks_per_map": isinstance(self.max_peaks_per_map, int) and self.max_peaks_per_map >= 1,
            "snap_radius_px": math.isfinite(self.snap_radius_px) and self.snap_radius_px >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise DecodeError(f"DecodeParams.{name} is out of range: {getattr(self, name)!r}")


@dataclass(eq=False)
class Instance:
    """One decoded object instance.

    Attributes:
        class_index: index into the catalogue / network classes.
        keypoints: (9, 2) float64 keypoints, input-image pixels, ``Keypoint`` order; NaN = missing.
        scores: (9,) float64 belief at each keypoint's peak; 0 for missing keypoints.
        confidence: mean belief of the found keypoints (clipped to [0, 1]) times the
            fraction of keypoints found; in [0, 1].
    """

    class_index: int
    keypoints: np.ndarray
    scores: np.ndarray
    confidence: float
    num_keypoints: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_keypoints = int(np.count_nonzero(np.all(np.isfinite(self.keypoints), axis=1)))


@dataclass
class _Peaks:
    """Peaks of a map stack: channel, integer pixel (row, col), sub-pixel xy, score."""

    channel: np.ndarray
    ij: np.ndarray
    xy: np.ndarray
    score: np.ndarray


def _local_maxima(maps: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel, row, col of pixels above their channel's threshold and >= their 8 neighbours.

    Works on flat indices of the candidates only (pixels above the threshold), and
    drops candidates as soon as a neighbour beats them: a few percent of the map.
    """
    _, h, w = maps.shape
    values = maps.reshape(-1)
    flat = np.flatnonzero(maps > thresholds[:, None, None])  # much faster than a 3D np.nonzero
    for offsets, strict in ((_AFTER, False), (_BEFORE, True)):
        for dy, dx in offsets:
            rest = flat % (h * w)
            yi, xi = rest // w, rest % w
            inside = (yi + dy >= 0) & (yi + dy < h) & (xi + dx >= 0) & (xi + dx < w)
            other = values.take(flat + (dy * w + dx), mode="clip")
            value = values[flat]
            beaten = (other >= value) if strict else (other > value)
            flat = flat[~(inside & beaten)]
    ch, rest = np.divmod(flat, h * w)
    yi, xi = np.divmod(rest, w)
    return ch, yi, xi


def _window(
    raw: np.ndarray, ch: np.ndarray, yi: np.ndarray, xi: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    """Values (P, n) of the (2r+1)^2 window around each peak (0 outside the map) and offsets (n, 2)."""
    _, h, w = raw.shape
    d = np.arange(-r, r + 1)
    dy, dx = (a.reshape(-1) for a in np.meshgrid(d, d, indexing="ij"))
    ny, nx = yi[:, None] + dy, xi[:, None] + dx
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    vals = raw[ch[:, None], np.clip(ny, 0, h - 1), np.clip(nx, 0, w - 1)].astype(np.float64)
    return np.where(inside & np.isfinite(vals), vals, 0.0), np.stack([dx, dy], axis=1).astype(np.float64)


def _log_quadratic_fit(vals: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (P, 2) of a weighted least-squares quadratic fit to log(vals), and where it is a maximum.

    A Gaussian blob is exactly a quadratic in log space, so the fit is unbiased for
    the training targets; weights v^2 make low, noisy values count little.
    """
    pos = np.clip(vals, 0.0, None)
    ox, oy = off[:, 0], off[:, 1]
    design = np.stack([np.ones_like(ox), ox, oy, ox * ox, oy * oy, ox * oy], axis=1)  # (n, 6)
    weight = pos**2
    normal = np.einsum("na,pn,nb->pab", design, weight, design)
    normal += np.eye(6) * (1e-9 * np.trace(normal, axis1=1, axis2=2) + 1e-30)[:, None, None]
    rhs = np.einsum("na,pn->pa", design, weight * np.log(np.maximum(pos, 1e-12)))
    coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
    hxx, hyy, hxy = 2 * coef[:, 3], 2 * coef[:, 4], coef[:, 5]
    det = hxx * hyy - hxy * hxy
    safe = np.where(det > 1e-12, det, 1.0)
    fit = np.stack(
        [-(hyy * coef[:, 1] - hxy * coef[:, 2]) / safe, -(hxx * coef[:, 2] - hxy * coef[:, 1]) / safe], axis=1
    )
    return fit, (det > 1e-12) & (hxx < 0) & np.all(np.isfinite(fit), axis=1)


def _refine(
    raw: np.ndarray, ch: np.ndarray, yi: np.ndarray, xi: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel (P, 2) xy of each peak and a (P,) mask of the peaks to keep.

    The log-quadratic fit is used when its maximum lies within one pixel of the
    peak; otherwise the weighted mean of the window. A peak on the map's border is
    kept only when the fit puts its centre inside the map: a border maximum is
    usually the tail of a keypoint outside the image, whose position the one-sided
    tail cannot give reliably on noisy maps, so that keypoint is reported missing.
    """
    _, h, w = raw.shape
    vals, off = _window(raw, ch, yi, xi, r)
    fit, ok = _log_quadratic_fit(vals, off)
    pos = np.clip(vals, 0.0, None)
    mean = (pos @ off) / np.maximum(pos.sum(axis=1, keepdims=True), 1e-12)
    base = np.stack([xi, yi], axis=1).astype(np.float64)
    use_fit = ok & np.all(np.abs(fit) <= 1.0, axis=1)
    xy = np.where(use_fit[:, None], base + fit, base + mean)
    border = (xi == 0) | (xi == w - 1) | (yi == 0) | (yi == h - 1)
    inside = np.all((xy >= -0.5) & (xy <= np.array([w, h]) - 0.5), axis=1)
    return xy, ~border | (use_fit & inside)


def _strongest(
    maps: np.ndarray, ch: np.ndarray, yi: np.ndarray, xi: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep at most ``limit`` peaks per channel, the highest ones."""
    order = np.lexsort((-maps[ch, yi, xi], ch))
    first = np.searchsorted(ch[order], ch[order], side="left")
    keep = np.sort(order[np.arange(len(order)) - first < limit])
    return ch[keep], yi[keep], xi[keep]


def _stack_peaks(
    maps: np.ndarray, raw: np.ndarray, thresholds: np.ndarray, radius: int, limit: int = 64
) -> _Peaks:
    """Peaks of all channels at once; ``maps`` (possibly smoothed) for search, ``raw`` for refinement."""
    ch, yi, xi = _local_maxima(maps, thresholds)
    if len(ch) > limit:
        ch, yi, xi = _strongest(maps, ch, yi, xi, limit)
    if ch.size == 0:
        return _Peaks(ch, np.zeros((0, 2), dtype=np.int64), np.zeros((0, 2)), np.zeros(0))
    xy, keep = _refine(raw, ch, yi, xi, radius)
    ch, yi, xi, xy = ch[keep], yi[keep], xi[keep], xy[keep]
    return _Peaks(ch, np.stack([yi, xi], axis=1), xy, raw[ch, yi, xi].astype(np.float64))


def find_peaks(belief: np.ndarray, threshold: float, refine_radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of one belief map above ``threshold``, refined to sub-pixel positions.

    Args:
        belief: (h, w) belief map.
        threshold: minimum belief of a peak.
        refine_radius: half-size of the refinement window, output pixels.

    Returns:
        (P, 2) float64 peak positions xy in output-map pixels and (P,) float64 scores,
        strongest first.
    """
    belief = np.asarray(belief, dtype=np.float32)
    if belief.ndim != 2:
        raise DecodeError(f"belief must have shape (h, w), got {belief.shape}")
    stack = belief[None]
    peaks = _stack_peaks(stack, stack, np.array([threshold], dtype=np.float32), refine_radius)
    order = np.argsort(-peaks.score, kind="stable")
    return peaks.xy[order], peaks.score[order]


def _predicted_vectors(vectors: np.ndarray, channel: np.ndarray, ij: np.ndarray) -> np.ndarray:
    """(P, 2) unit vectors read at corner peaks (mean over the 3x3 neighbourhood); 0 if none."""
    _, h, w = vectors.shape
    if len(channel) == 0:
        return np.zeros((0, 2))
    cls, k = channel // NUM_KEYPOINTS, channel % NUM_KEYPOINTS
    base = cls * VECTOR_CHANNELS_PER_CLASS + 2 * k
    d = np.arange(-1, 2)
    ny = np.clip(ij[:, 0, None, None] + d[:, None], 0, h - 1).reshape(len(ij), -1)
    nx = np.clip(ij[:, 1, None, None] + d[None, :], 0, w - 1).reshape(len(ij), -1)
    vec = np.stack([vectors[base[:, None], ny, nx], vectors[base[:, None] + 1, ny, nx]], axis=-1).sum(axis=1)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return np.where(norm > 1e-6, vec / np.maximum(norm, 1e-12), 0.0)


def _same_class_pairs(corner_cls: np.ndarray, centroid_cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (corner, centroid) index pairs of the same class, without a dense P x Q matrix."""
    order = np.argsort(centroid_cls, kind="stable")
    start = np.searchsorted(centroid_cls[order], corner_cls, side="left")
    count = np.searchsorted(centroid_cls[order], corner_cls, side="right") - start
    block = np.cumsum(count) - count  # where each corner's pairs begin in the output
    p = np.repeat(np.arange(len(corner_cls)), count)
    q = order[np.arange(count.sum()) + np.repeat(start - block, count)]
    return p, q


def _candidate_pairs(
    corners: _Peaks,
    corner_vec: np.ndarray,
    centroid_xy: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    params: DecodeParams,
) -> tuple[np.ndarray, np.ndarray]:
    """The (corner, centroid) pairs within the angle threshold, best agreement first.

    Pairs are ranked by the angle left after forgiving the direction uncertainty
    atan(tol / distance), then by the corner's belief (a strong peak beats a weak,
    noisy one that agrees as well), then by distance.
    """
    corner_xy = corners.xy
    p, q = pairs
    diff = centroid_xy[q] - corner_xy[p]  # (pairs, 2)
    dist = np.sqrt(np.einsum("nd,nd->n", diff, diff))
    cos = np.einsum("nd,nd->n", diff, corner_vec[p]) / np.maximum(dist, 1e-12)
    excess = np.maximum(
        np.arccos(np.clip(cos, -1.0, 1.0)) - np.arctan2(params.position_tolerance_px, dist), 0.0
    )
    has_vec = np.any(corner_vec != 0, axis=1)[p]
    ok = np.flatnonzero(has_vec & (excess <= math.radians(params.angle_threshold_deg)))
    order = ok[np.lexsort((dist[ok], -corners.score[p[ok]], excess[ok]))]
    return p[order], q[order]


def _assign(corner_k: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], num_centroids: int) -> np.ndarray:
    """Greedy matching: (P,) centroid index of each corner peak, -1 if none.

    Best pairs first; a peak joins one centroid, a centroid takes one peak per corner.
    """
    owner = np.full(len(corner_k), -1)
    taken = np.zeros((num_centroids, NUM_CORNERS), dtype=bool)
    for p, q in zip(pairs[0].tolist(), pairs[1].tolist(), strict=True):
        k = corner_k[p]
        if owner[p] < 0 and not taken[q, k]:
            owner[p] = q
            taken[q, k] = True
    return owner


def _assemble(
    peaks: _Peaks,
    corners: np.ndarray,
    centroids: np.ndarray,
    owner: np.ndarray,
    *,
    params: DecodeParams,
    stride: int,
) -> list[Instance]:
    """Instances from centroid peaks and their assigned corner peaks, weak ones dropped."""
    kps = np.full((len(centroids), NUM_KEYPOINTS, 2), np.nan)
    scores = np.zeros((len(centroids), NUM_KEYPOINTS))
    kps[:, Keypoint.CENTROID] = peaks.xy[centroids]
    scores[:, Keypoint.CENTROID] = peaks.score[centroids]
    joined = owner >= 0
    k = peaks.channel[corners[joined]] % NUM_KEYPOINTS
    kps[owner[joined], k] = peaks.xy[corners[joined]]
    scores[owner[joined], k] = peaks.score[corners[joined]]
    return _instances(kps, scores, peaks.channel[centroids] // NUM_KEYPOINTS, params=params, stride=stride)


def _instances(
    kps: np.ndarray, scores: np.ndarray, cls: np.ndarray, *, params: DecodeParams, stride: int
) -> list[Instance]:
    """Instances from (Q, 9, 2) output-pixel keypoints (NaN = missing), their (Q, 9)
    scores and (Q,) classes; those with fewer than ``min_keypoints`` are dropped."""
    found = np.isfinite(kps[..., 0])
    count = found.sum(axis=1)
    conf = np.where(found, np.clip(scores, 0.0, 1.0), 0.0).sum(axis=1) / NUM_KEYPOINTS
    kps = to_input_coords(kps, stride)
    out = []
    for q in np.lexsort((-scores[:, Keypoint.CENTROID], cls)):
        if count[q] >= params.min_keypoints:
            out.append(Instance(int(cls[q]), kps[q], scores[q], float(conf[q])))
    return out


_CROSS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])
"""(dy, dx) of the peak pixel and its 4 neighbours: at most 1.58 px from a centroid whose
nearest pixel is the peak, inside the training disc of ``corner_offsets`` (radius >= 2)."""


def offset_corners(vectors: np.ndarray, cls: np.ndarray, ij: np.ndarray, scale: float) -> np.ndarray:
    """(Q, 8, 2) corners that ``corner_offsets`` fields place around Q centroid pixels.

    Args:
        vectors: (C*16, h, w) offsets; cls: (Q,) class of each centroid; ij: (Q, 2)
            integer (row, col) of each centroid; scale: output pixels per offset unit.

    Returns:
        Output pixels: the mean over the pixel and its 4 neighbours of ``pixel + scale *
        offset`` (the decoder's placement; ``scripts/corner_identity.py`` measures it).
    """
    _, h, w = vectors.shape
    ny = np.clip(ij[:, 0, None] + _CROSS[:, 0], 0, h - 1)  # (Q, 5)
    nx = np.clip(ij[:, 1, None] + _CROSS[:, 1], 0, w - 1)
    channels = cls[:, None] * VECTOR_CHANNELS_PER_CLASS + np.arange(VECTOR_CHANNELS_PER_CLASS)  # (Q, 16)
    values = vectors[channels[:, :, None], ny[:, None, :], nx[:, None, :]]  # (Q, 16, 5)
    x = (nx[:, None, :] + scale * values[:, 0::2]).mean(axis=2)  # (Q, 8)
    y = (ny[:, None, :] + scale * values[:, 1::2]).mean(axis=2)
    return np.stack([x, y], axis=-1)


def _belief_at(belief: np.ndarray, channel: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Belief of ``channel`` at the nearest pixel of each point; 0 outside the map."""
    _, h, w = belief.shape
    col, row = np.round(xy[:, 0]).astype(np.int64), np.round(xy[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    values = belief[channel, np.clip(row, 0, h - 1), np.clip(col, 0, w - 1)].astype(np.float64)
    return np.where(inside, values, 0.0)


def _snap(placed: np.ndarray, peak_xy: np.ndarray, peak_k: np.ndarray, radius: float) -> np.ndarray:
    """(8,) index into the peaks for each placed corner, -1 for none.

    One to one: a peak serves one corner (two corners that project onto one spot have a
    peak each, in their own channels). Pairs within ``radius`` are taken greedily, a peak
    in the corner's own channel before any other, then the nearer first: so a corner
    whose own peak is missing (outside the image) does not take a neighbour's.
    """
    dist = np.linalg.norm(placed[:, None, :] - peak_xy[None], axis=2)  # (8, P)
    other = peak_k[None, :] != np.arange(NUM_CORNERS)[:, None]
    corner, peak = np.nonzero(dist <= radius)
    order = np.lexsort((dist[corner, peak], other[corner, peak]))
    chosen = np.full(NUM_CORNERS, -1)
    used = np.zeros(len(peak_xy), dtype=bool)
    for k, p in zip(corner[order].tolist(), peak[order].tolist(), strict=True):
        if chosen[k] < 0 and not used[p]:
            chosen[k], used[p] = p, True
    return chosen


def _decode_offsets(
    belief: np.ndarray, vectors: np.ndarray, peaks: _Peaks, params: DecodeParams, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (Q, 9, 2) output px, scores (Q, 9) and classes (Q,) of the centroid peaks."""
    k_of = peaks.channel % NUM_KEYPOINTS
    cls_of = peaks.channel // NUM_KEYPOINTS
    centroids = np.flatnonzero(k_of == Keypoint.CENTROID)
    corners = np.flatnonzero(k_of < NUM_CORNERS)
    cls = cls_of[centroids]
    placed = offset_corners(vectors, cls, peaks.ij[centroids], scale)  # (Q, 8, 2)
    kps = np.empty((len(centroids), NUM_KEYPOINTS, 2))
    scores = np.empty((len(centroids), NUM_KEYPOINTS))
    kps[:, Keypoint.CENTROID] = peaks.xy[centroids]
    scores[:, Keypoint.CENTROID] = peaks.score[centroids]
    kps[:, :NUM_CORNERS] = placed
    own = cls[:, None] * NUM_KEYPOINTS + np.arange(NUM_CORNERS)  # belief channel of each corner
    scores[:, :NUM_CORNERS] = _belief_at(belief, own.reshape(-1), placed.reshape(-1, 2)).reshape(own.shape)
    if params.snap_radius_px <= 0:  # no snapping: the placed corners stand
        return kps, scores, cls
    for q in range(len(centroids)):
        candidates = corners[cls_of[corners] == cls[q]]
        if len(candidates):
            snapped = _snap(placed[q], peaks.xy[candidates], k_of[candidates], params.snap_radius_px)
            take = snapped >= 0
            kps[q, :NUM_CORNERS][take] = peaks.xy[candidates[snapped[take]]]
            scores[q, :NUM_CORNERS][take] = peaks.score[candidates[snapped[take]]]
    return kps, scores, cls


def _check_maps(belief: np.ndarray, vectors: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    belief = np.asarray(belief, dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    if belief.ndim != 3 or vectors.ndim != 3:
        raise DecodeError(
            f"belief and vectors must be (channels, h, w) for one image (loop over the batch), "
            f"got {belief.shape} and {vectors.shape}"
        )
    if belief.shape[0] != num_classes * NUM_KEYPOINTS:
        raise DecodeError(f"belief has {belief.shape[0]} channels, expected {num_classes} x {NUM_KEYPOINTS}")
    if vectors.shape[0] != num_classes * VECTOR_CHANNELS_PER_CLASS:
        raise DecodeError(
            f"vectors has {vectors.shape[0]} channels, expected {num_classes} x {VECTOR_CHANNELS_PER_CLASS}"
        )
    if belief.shape[1:] != vectors.shape[1:]:
        raise DecodeError(f"belief {belief.shape} and vectors {vectors.shape} differ in size")
    return belief, vectors


def _smooth(belief: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE) for m in belief])


def decode(
    belief: np.ndarray,
    vectors: np.ndarray,
    num_classes: int,
    params: DecodeParams | None = None,
    stride: int = 4,
    *,
    vector_field: str = TO_CENTROID,
    offset_scale: float = DEFAULT_OFFSET_SCALE,
) -> list[Instance]:
    """Decode one image's network outputs into object instances.

    Args:
        belief: (C*9, h, w) belief maps, channel ``c*9 + k``.
        vectors: (C*16, h, w) vector fields, channels ``c*16 + 2k`` (dx), ``+1`` (dy).
        num_classes: C.
        params: decoder settings (defaults: ``DecodeParams()``).
        stride: input pixels per output pixel, to return input-image coordinates.
        vector_field: what ``vectors`` holds (``geometry.targets.VECTOR_FIELDS``; the
            model bundle says); offset_scale: output pixels per unit of ``corner_offsets``.

    Returns:
        Instances sorted by class index, then by centroid belief (strongest first).
    """
    params = params or DecodeParams()
    if vector_field not in VECTOR_FIELDS:
        raise DecodeError(f"vector_field must be one of {VECTOR_FIELDS}, got {vector_field!r}")
    if not (math.isfinite(offset_scale) and offset_scale > 0):
        raise DecodeError(f"offset_scale must be > 0, got {offset_scale}")
    belief, vectors = _check_maps(belief, vectors, num_classes)
    is_centroid = np.arange(belief.shape[0]) % NUM_KEYPOINTS == Keypoint.CENTROID
    thresholds = np.where(is_centroid, params.centroid_threshold, params.peak_threshold).astype(np.float32)
    maps = _smooth(belief, params.smoothing_sigma) if params.smoothing_sigma > 0 else belief
    peaks = _stack_peaks(maps, belief, thresholds, params.refine_radius, params.max_peaks_per_map)
    k_of = peaks.channel % NUM_KEYPOINTS
    corners = np.flatnonzero(k_of < NUM_CORNERS)
    centroids = np.flatnonzero(k_of == Keypoint.CENTROID)
    if len(centroids) == 0:
        return []
    if vector_field == CORNER_OFFSETS:
        kps, scores, cls = _decode_offsets(belief, vectors, peaks, params, offset_scale)
        return _instances(kps, scores, cls, params=params, stride=stride)
    vecs = _predicted_vectors(vectors, peaks.channel[corners], peaks.ij[corners])
    cls_of = peaks.channel // NUM_KEYPOINTS
    same_class = _same_class_pairs(cls_of[corners], cls_of[centroids])
    corner_peaks = _Peaks(peaks.channel[corners], peaks.ij[corners], peaks.xy[corners], peaks.score[corners])
    pairs = _candidate_pairs(corner_peaks, vecs, peaks.xy[centroids], same_class, params)
    owner = _assign(k_of[corners], pairs, len(centroids))
    return _assemble(peaks, corners, centroids, owner, params=params, stride=stride)
