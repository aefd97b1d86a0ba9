#!/usr/bin/env bash
# Real photographs for synthetic-data backgrounds, from Debian's wallpaper packages.
#
# Why: the network is judged on real camera images, and procedural textures alone leave
# a gap; photos behind the rendered objects (hrpose-synth --backgrounds DIR) close part of
# it. These packages come from Debian's own registry, so this works on machines that reach
# only the package registries. The packages are downloaded, not installed: nothing in the
# system changes. Each wallpaper keeps its largest picture (screenshots and SVGs are
# skipped), resized to at most 1024 px on its longest side as JPEG, so that reading one
# per synthetic image stays cheap.
#
# A second folder holds photographs that training never sees, for a held-out test set
# with other backgrounds: scikit-image's sample photographs (a pinned dev dependency).
#
# Usage: scripts/get_backgrounds.sh [OUT_DIR [HELDOUT_DIR]]
#        (defaults data/backgrounds and data/backgrounds_heldout)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data/backgrounds}
HELDOUT=${2:-data/backgrounds_heldout}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
PACKAGES=(gnome-backgrounds plasma-workspace-wallpapers ukui-wallpapers)

if [ -z "$(ls -A "$HELDOUT" 2>/dev/null)" ]; then
  mkdir -p "$HELDOUT"
  "$PY" - "$HELDOUT" <<'PYEOF'
import sys
from pathlib import Path

import cv2
import numpy as np
import skimage.data

out, seen, written = Path(sys.argv[1]), set(), 0
for name in sorted(n for n in dir(skimage.data) if not n.startswith("_")):
    loader = getattr(skimage.data, name)
    if not callable(loader) or name in {"download_all", "lbp_frontal_face_cascade_filename"}:
        continue
    try:
        image = loader()
    except Exception:  # loaders that need a download, or return no image
        continue
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or min(image.shape[:2]) < 200:
        continue
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.tobytes()[:4096] in seen:
        continue
    seen.add(image.tobytes()[:4096])
    cv2.imwrite(str(out / f"{name}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    written += 1
print(f"[backgrounds] {written} held-out photos in {out}")
PYEOF
fi
if [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "[backgrounds] $OUT already holds $(ls "$OUT" | wc -l) photos; remove it to fetch again"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1) || {
  apt-get update -q >/dev/null
  (cd "$work" && apt-get download "${PACKAGES[@]}" >/dev/null)
}
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
mkdir -p "$OUT"
"$PY" - "$work/root" "$OUT" <<'PYEOF'
import sys
from pathlib import Path

import cv2

root, out = Path(sys.argv[1]), Path(sys.argv[2])
best: dict[str, tuple[int, Path]] = {}
for path in root.rglob("*"):
    if path.suffix.lower() not in {".jpg", ".jpeg", ".png"} or "screenshot" in path.name:
        continue
    # plasma: wallpapers/<Name>/contents/images*/<WxH>.ext ; others: one file per picture
    parts = path.relative_to(root).parts
    name = parts[parts.index("wallpapers") + 1] + ("_dark" if "images_dark" in parts else "") \
        if "wallpapers" in parts and "contents" in parts else path.stem
    size = path.stat().st_size
    if name not in best or size > best[name][0]:
        best[name] = (size, path)
written = 0
for name, (_, path) in sorted(best.items()):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or min(image.shape[:2]) < 256:
        continue
    scale = 1024 / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    written += 1
print(f"[backgrounds] {written} photos in {out}")
PYEOF
