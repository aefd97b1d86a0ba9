"""scripts/camera_info_latency.py: plays a BOP folder with the real player and reports how
late each topic arrives, per Fast DDS transport choice (real DDS on loopback)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT / "test" / "data" / "fixture_stream"


def test_reports_every_frame_of_both_topics(ros_domain_id):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "camera_info_latency.py"), "--stream", str(STREAM),
         "--frames", "4", "--rate", "10", "--drain-s", "1", "--late-ms", "1000",
         "--subscriber-transports", "UDPv4", "--domain-id", str(ros_domain_id)],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "player unset, receiver UDPv4, 0 CPU burners, 4 frames at 10 Hz" in out.stdout
    rows = dict(re.findall(r"^\| (image|camera_info) \| (\d+ / 4) \|", out.stdout, flags=re.M))
    # over UDP nothing was lost in any measurement (ros/dds_transport.py)
    assert rows == {"image": "4 / 4", "camera_info": "4 / 4"}, out.stdout
