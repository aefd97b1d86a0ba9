"""Draw a grid of BOP images with the projected cuboid and axes of every annotated object.

Reads the images back through the BOP loader, so the picture checks the whole chain:
generator -> files -> loader -> projection. Used for docs/synthetic_samples.png:

    hrpose-synth --out /tmp/synth --num-images 9 --seed 7
    python scripts/preview_bop.py /tmp/synth --out docs/synthetic_samples.png
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from hrpose_ros.data.bop import read_dataset
from hrpose_ros.geometry.camera import project_points
from hrpose_ros.geometry.draw import draw_axes, draw_cuboid
from hrpose_ros.geometry.objects import load_catalogue

REPO = Path(__file__).resolve().parents[1]
_LOG = logging.getLogger("preview_bop")


def preview_tile(image, catalogue, tile_wh: tuple[int, int]) -> np.ndarray:
    """One BGR tile: the image with each known object's cuboid (its catalogue colour) and axes."""
    bgr = cv2.imread(str(image.rgb_path), cv2.IMREAD_COLOR)
    for inst in image.instances:
        try:
            spec = catalogue.by_id(inst.obj_id)
        except KeyError:
            continue
        color = tuple(int(255 * c) for c in spec.color[::-1])
        draw_cuboid(bgr, project_points(spec.keypoints, inst.R, inst.t, image.K), color)
        draw_axes(bgr, inst.R, inst.t, image.K, length=0.5 * spec.diameter)
        label = f"{spec.name}"
        u, v = project_points(spec.keypoints[-1:], inst.R, inst.t, image.K)[0]
        if np.isfinite(u):
            org = (int(u) + 6, int(v) - 6)
            cv2.putText(bgr, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2, cv2.LINE_AA)
    return cv2.resize(bgr, tile_wh, interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    """Write the grid PNG."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", help="BOP dataset, split or scene folder")
    p.add_argument("--catalogue", default=str(REPO / "config" / "objects.yaml"))
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--count", type=int, default=9)
    p.add_argument("--cols", type=int, default=3)
    p.add_argument("--tile", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    catalogue = load_catalogue(args.catalogue)
    images = read_dataset(args.root)[: args.count]
    tiles = [preview_tile(im, catalogue, tuple(args.tile)) for im in images]
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % args.cols)
    grid = np.vstack([np.hstack(tiles[i : i + args.cols]) for i in range(0, len(tiles), args.cols)])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, grid)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}, {len(images)} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
