"""Corner identity of a training checkpoint: does the network know *which* corner is where?

Why: PnP needs each 2D corner with its own 3D corner. A network can put peaks on every
corner of an object and still be useless when the peaks sit in the wrong channels, and
ADD(-S) then reads 0 % without saying why. This measures the step before PnP: at each
ground-truth corner of a held-out image (the 3x3 output pixels around it), is the right
corner channel of the object's class the strongest of its 8 corner channels? Chance is
1/8 = 12.5 %. It also reports the median centroid belief at the ground-truth centroids
(does the network find the objects at all).

For a ``corner_offsets`` model (the checkpoint says), the corners the decoder uses come
from the offsets, so it also measures those: at each ground-truth centroid, the corners
the offsets place (the decoder's own ``offset_corners``), how many lie nearer their own
ground-truth corner than any other corner of the object (chance 12.5 %), and their median
distance to it in output pixels, also per object. For an object with symmetries the ground
truth is whichever equivalent pose the placed corners are nearest (the dataset's
``keypoints_2d_alternatives``): the offset loss accepts any of them, and so does ADD-S.

It also measures detection, the step before any keypoint: at centroid-belief thresholds
0.1 / 0.2 / 0.3, the share of ground-truth centroids with a peak of their own class within
2 output pixels (recall), and the peaks of each class with no ground-truth centroid of that
class that near, per image (false peaks). For ``corner_offsets`` models every centroid
peak is an instance, so false peaks are false detections.

    python scripts/corner_identity.py --checkpoint runs/lite/student/last.pt \\
        --data data/lite/heldout/test --images 30
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hrpose_ros.geometry.decode import find_peaks, offset_corners
from hrpose_ros.geometry.keypoints import NUM_CORNERS, NUM_KEYPOINTS, Keypoint
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.geometry.targets import CORNER_OFFSETS, DEFAULT_OFFSET_SCALE, TO_CENTROID, to_output_coords
from hrpose_ros.network.checkpoint import model_from_checkpoint
from hrpose_ros.network.model import OUTPUT_STRIDE
from hrpose_ros.training.dataset import BopPoseDataset

DETECTION_THRESHOLDS = (0.1, 0.2, 0.3)
"""Centroid-belief thresholds at which detection is reported (the decoder's default is 0.1)."""
_MATCH_PX = 2.0
"""A centroid peak this near (output px) to a ground-truth centroid of its class finds it."""


def _centroid_peaks(belief: np.ndarray, gt: dict[int, list[np.ndarray]], classes: int) -> tuple[list, list]:
    """Best peak score at each ground-truth centroid (0 if none near) and the scores of
    the peaks near none, over all classes of one image."""
    found, false = [], []
    for c in range(classes):
        peaks, scores = find_peaks(belief[c * NUM_KEYPOINTS + Keypoint.CENTROID], min(DETECTION_THRESHOLDS))
        near = np.zeros(len(peaks), dtype=bool)
        for xy in gt.get(c, []):
            hit = np.linalg.norm(peaks - xy, axis=1) <= _MATCH_PX if len(peaks) else near
            found.append(float(scores[hit].max()) if hit.any() else 0.0)
            near |= hit
        false.extend(scores[~near].tolist())
    return found, false


def corner_identity(model: torch.nn.Module, dataset: BopPoseDataset, images: int) -> dict[str, float]:
    """Share of visible ground-truth corners whose own channel wins, and the median
    centroid belief, over the first ``images`` samples of ``dataset`` (no augmentation);
    for a ``corner_offsets`` dataset also the offsets' identity and error (module docstring)."""
    hits: list[bool] = []
    centroid: list[float] = []
    offset_hits: list[bool] = []
    offset_error: list[float] = []
    size_ratio: list[float] = []
    offset_hits_by_class: dict[int, list[bool]] = {}
    offsets = dataset.vector_field == CORNER_OFFSETS
    found: list[float] = []
    false: list[float] = []
    count = min(images, len(dataset))
    for index in range(count):
        sample = dataset[index]
        with torch.no_grad():
            out = model(sample["image"][None])
        belief = out["belief"][0].numpy()
        h, w = belief.shape[-2:]
        gt_centroids: dict[int, list[np.ndarray]] = {}
        for m, c in enumerate(sample["class_index"].tolist()):
            if not sample["visible"][m]:
                continue
            gt = to_output_coords(sample["keypoints_2d"][m].numpy(), OUTPUT_STRIDE)
            if 0 <= gt[Keypoint.CENTROID, 0] <= w - 1 and 0 <= gt[Keypoint.CENTROID, 1] <= h - 1:
                gt_centroids.setdefault(c, []).append(gt[Keypoint.CENTROID])
            pixel = np.round(gt).astype(int)
            channels = belief[c * NUM_KEYPOINTS : (c + 1) * NUM_KEYPOINTS]
            for k, (x, y) in enumerate(pixel):
                if not (1 <= x < w - 1 and 1 <= y < h - 1):
                    continue
                peak = channels[:, y - 1 : y + 2, x - 1 : x + 2].reshape(NUM_KEYPOINTS, -1).max(axis=1)
                if k == Keypoint.CENTROID:
                    centroid.append(float(peak[k]))
                else:
                    hits.append(int(np.argmax(peak[:NUM_CORNERS])) == k)
            x, y = pixel[Keypoint.CENTROID]
            if offsets and 0 <= x < w and 0 <= y < h:
                vectors = out["vectors"][0].numpy()
                placed = offset_corners(vectors, np.array([c]), np.array([[y, x]]), dataset.offset_scale)[0]
                dist = _nearest_equivalent_distances(placed, gt, sample.get("keypoints_2d_alternatives"), m)
                instance_hits = np.argmin(dist, axis=1) == np.arange(NUM_CORNERS)
                offset_hits.extend(instance_hits)
                offset_hits_by_class.setdefault(c, []).extend(instance_hits)
                offset_error.extend(np.diag(dist))
                size_ratio.append(_size_ratio(placed, gt))
        image_found, image_false = _centroid_peaks(belief, gt_centroids, len(dataset.catalogue))
        found += image_found
        false += image_false
    result = {
        "corner_identity": float(np.mean(hits)) if hits else float("nan"),
        "corners": len(hits),
        "centroid_belief_median": float(np.median(centroid)) if centroid else float("nan"),
    }
    for t in DETECTION_THRESHOLDS:
        result[f"centroid_recall@{t}"] = float(np.mean(np.array(found) >= t)) if found else float("nan")
        result[f"false_peaks_per_image@{t}"] = float(np.sum(np.array(false) >= t) / max(count, 1))
    if offsets:
        result["offset_identity"] = float(np.mean(offset_hits)) if offset_hits else float("nan")
        result["offset_error_median_px"] = float(np.median(offset_error)) if offset_error else float("nan")
        result["offset_corners"] = len(offset_hits)
        result["offset_size_ratio_median"] = float(np.median(size_ratio)) if size_ratio else float("nan")
        for c, class_hits in sorted(offset_hits_by_class.items()):
            result[f"offset_identity/{dataset.catalogue[c].name}"] = float(np.mean(class_hits))
    return result


def _size_ratio(placed: np.ndarray, gt: np.ndarray) -> float:
    """Mean distance of the 8 placed corners from the ground-truth centroid over that of the
    ground-truth corners (``gt``: (9, 2) output keypoints): below 1, PnP puts the object too far."""
    centroid = gt[Keypoint.CENTROID]
    true_size = float(np.linalg.norm(gt[:NUM_CORNERS] - centroid, axis=1).mean())
    return float(np.linalg.norm(placed - centroid, axis=1).mean()) / max(true_size, 1e-9)


def _nearest_equivalent_distances(
    placed: np.ndarray, gt: np.ndarray, alternatives: torch.Tensor | None, instance: int
) -> np.ndarray:
    """(8, 8) distances, output px, from the placed corners to the ground-truth corners of
    the equivalent pose they are nearest (sum of own-corner distances); ``gt`` is the
    canonical pose's (9, 2) output keypoints."""
    candidates = [gt[:NUM_CORNERS]]
    if alternatives is not None:
        for twin in alternatives[instance].numpy():
            if np.isfinite(twin).all():
                candidates.append(to_output_coords(twin, OUTPUT_STRIDE)[:NUM_CORNERS])
    dists = [np.linalg.norm(placed[:, None, :] - corners[None], axis=2) for corners in candidates]
    return min(dists, key=lambda d: float(np.trace(d)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.pt)")
    parser.add_argument("--data", required=True, help="held-out BOP folder")
    parser.add_argument("--objects", default="config/objects.yaml")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = model_from_checkpoint(args.checkpoint)
    catalogue = load_catalogue(args.objects)
    dataset = BopPoseDataset(
        args.data,
        catalogue,
        tuple(info["input_size"]),
        OUTPUT_STRIDE,
        vector_field=info.get("vector_field", TO_CENTROID),
        offset_scale=float(info.get("offset_scale", DEFAULT_OFFSET_SCALE)),
    )
    result = corner_identity(model, dataset, args.images)
    print(
        f"corner identity {100 * result['corner_identity']:.1f} % (chance {100 / NUM_CORNERS:.1f} %, "
        f"{result['corners']} corners); centroid belief at the ground truth: median "
        f"{result['centroid_belief_median']:.2f}"
    )
    print(
        "centroid detection (recall, false peaks per image): "
        + "; ".join(
            f"at {t}: {100 * result[f'centroid_recall@{t}']:.0f} %, "
            f"{result[f'false_peaks_per_image@{t}']:.1f}"
            for t in DETECTION_THRESHOLDS
        )
    )
    if "offset_identity" in result:
        print(
            f"corner offsets: identity {100 * result['offset_identity']:.1f} % "
            f"({result['offset_corners']} corners), median error {result['offset_error_median_px']:.2f} "
            f"output px; placed cuboid size / true size: median {result['offset_size_ratio_median']:.3f}"
        )
        per_object = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("offset_identity/")}
        print(
            "offset identity by object: " + ", ".join(f"{n} {100 * v:.0f} %" for n, v in per_object.items())
        )


if __name__ == "__main__":
    main()
