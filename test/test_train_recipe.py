"""scripts/train_lmo.sh, the shipped model's recipe, and scripts/device_train.sh, its
wrapper for a GPU loan: every step runs, the files to bring back land in $OUT, and a
re-run resumes.

Tiny sizes (a few images, one optimiser step per network): this checks the plumbing of
the recipe a GPU session will run, not the accuracy it reaches. device_train.sh runs
without --install, so nothing is installed on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hrpose_ros.geometry.objects import load_catalogue
from hrpose_ros.network.checkpoint import load_checkpoint
from hrpose_ros.runtime.bundle import load_bundle

ROOT = Path(__file__).resolve().parents[1]


def _run_recipe(
    run: Path, script: str = "train_lmo.sh", out: Path | None = None, **extra: str
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "RUN": str(run),
        "IMAGES": "4",
        "TEST_IMAGES": "2",
        "WIDTH": "128",
        "HEIGHT": "96",
        "RENDER_WIDTH": "128",
        "RENDER_HEIGHT": "96",
        "BACKGROUNDS": "",
        "WORKERS": "1",
        "DEVICE": "cpu",
        "EPOCHS": "1",
        "TRAIN_ARGS": "--max-steps 1 --batch-size 2 --set threads=1",
        "OUT": str(out or ""),
        **extra,
    }
    cmd = ["bash", str(ROOT / "scripts" / script)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_recipe_makes_data_teacher_distilled_student_bundle_and_tables(tmp_path: Path) -> None:
    run, out = tmp_path / "lmo", tmp_path / "out"
    out.mkdir()
    first = _run_recipe(run, "device_train.sh", out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    brought_back = sorted(p.name for p in out.iterdir())
    assert brought_back == [
        "eval_heldout.md",
        "eval_sample_stream.md",
        "hrpose_student.json",
        "hrpose_student.onnx",
        "log.txt",
        "results.tar.gz",
    ]
    assert all((out / name).stat().st_size < 16 * 2**20 for name in brought_back)  # the device tool's limit
    assert "== student" in (out / "log.txt").read_text()

    student = load_checkpoint(run / "student" / "last.pt")
    assert student["config"]["role"] == "student"
    assert student["config"]["teacher_checkpoint"] == str(run / "teacher" / "last.pt")
    assert (student["config"]["distill"]["alpha"], student["config"]["distill"]["beta"]) == (0.5, 5e-5)

    bundle = load_bundle(run / "bundle" / "hrpose_student.json")
    assert list(bundle.classes) == load_catalogue(ROOT / "config" / "objects.yaml").names
    assert tuple(bundle.input_size) == (128, 96)

    heldout = json.loads((run / "eval_heldout" / "eval.json").read_text())
    stream = json.loads((run / "eval_sample_stream" / "eval.json").read_text())
    assert heldout["images"] == 2 and stream["images"] == 40
    assert "| **average** |" in (run / "eval_sample_stream.md").read_text()

    # train_lmo.sh itself, the recipe device_train.sh chose: nothing to redo: data kept, both
    # trainings resume at their end
    second = _run_recipe(run, RECIPE="hrnet")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "training images" not in second.stdout and "held-out test images" not in second.stdout
    assert second.stderr.count("resumed") >= 2, second.stderr[-3000:]


@pytest.mark.slow
def test_default_cpu_recipe_distils_lite0_from_lite2_on_crops(tmp_path: Path) -> None:
    run = tmp_path / "lite"
    result = _run_recipe(run, CROP="64")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    teacher = load_checkpoint(run / "teacher" / "last.pt")
    student = load_checkpoint(run / "student" / "last.pt")
    assert (teacher["model_name"], student["model_name"]) == ("hrpose_lite2", "hrpose_lite0")
    assert teacher["config"]["pretrained"] == student["config"]["pretrained"] == "imagenet"
    assert student["config"]["teacher_checkpoint"] == str(run / "teacher" / "last.pt")
    assert (student["config"]["data"]["crop_width"], student["config"]["data"]["crop_height"]) == (64, 64)
    bundle = load_bundle(run / "bundle" / "hrpose_student.json")
    assert bundle.model_name == "hrpose_lite0" and tuple(bundle.input_size) == (128, 96)
    assert "| **average** |" in (run / "eval_heldout.md").read_text()
