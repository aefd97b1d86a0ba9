"""Corner identity of a training checkpoint: does the network know *which* corner is where?

Why: PnP needs each 2D corner with its own 3D corner. A network can put peaks on every
corner of an object and still be useless when the peaks sit in the wrong channels, and
ADD(-S) then reads 0 % without saying why. This measures the step before PnP: at each
ground-truth corner of a held-out image (the 3x3 output pixels around it), is the right
corner channel of the object's class the strongest of its 8 corner channels? Chance is
1/8 = 12.5 %. It also reports the median centroid belief at the ground-truth centroids
(does the network find the objects at all).

    python scripts/corner_identity.py --checkpoint runs/lite/student/last.pt \\
        --data data/lite/heldout/test --images 30
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hrpose_ros.geometry.keypoints import NUM_CORNERS, NUM_KEYPOINTS, Keypoint
from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.geometry.targets import to_output_coords
from hrpose_ros.network.checkpoint import model_from_checkpoint
from hrpose_ros.network.model import OUTPUT_STRIDE
from hrpose_ros.training.dataset import BopPoseDataset


def corner_identity(model: torch.nn.Module, dataset: BopPoseDataset, images: int) -> dict[str, float]:
    """Share of visible ground-truth corners whose own channel wins, and the median
    centroid belief, over the first ``images`` samples of ``dataset`` (no augmentation)."""
    hits: list[bool] = []
    centroid: list[float] = []
    for index in range(min(images, len(dataset))):
        sample = dataset[index]
        with torch.no_grad():
            belief = model(sample["image"][None])["belief"][0].numpy()
        h, w = belief.shape[-2:]
        for m, c in enumerate(sample["class_index"].tolist()):
            if not sample["visible"][m]:
                continue
            out = np.round(to_output_coords(sample["keypoints_2d"][m].numpy(), OUTPUT_STRIDE)).astype(int)
            channels = belief[c * NUM_KEYPOINTS : (c + 1) * NUM_KEYPOINTS]
            for k, (x, y) in enumerate(out):
                if not (1 <= x < w - 1 and 1 <= y < h - 1):
                    continue
                peak = channels[:, y - 1 : y + 2, x - 1 : x + 2].reshape(NUM_KEYPOINTS, -1).max(axis=1)
                if k == Keypoint.CENTROID:
                    centroid.append(float(peak[k]))
                else:
                    hits.append(int(np.argmax(peak[:NUM_CORNERS])) == k)
    return {
        "corner_identity": float(np.mean(hits)) if hits else float("nan"),
        "corners": len(hits),
        "centroid_belief_median": float(np.median(centroid)) if centroid else float("nan"),
    }


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
    dataset = BopPoseDataset(args.data, catalogue, tuple(info["input_size"]), OUTPUT_STRIDE)
    result = corner_identity(model, dataset, args.images)
    print(
        f"corner identity {100 * result['corner_identity']:.1f} % (chance {100 / NUM_CORNERS:.1f} %, "
        f"{result['corners']} corners); centroid belief at the ground truth: median "
        f"{result['centroid_belief_median']:.2f}"
    )


if __name__ == "__main__":
    main()
