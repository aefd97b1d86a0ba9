"""``hrpose-train`` as one torchrun rank, observed: the script test_distributed.py launches.

Runs ``hrpose_ros.training.train.main`` with this script's arguments, exactly as the console
script does, and records through a Python audit hook (``sys.addaudithook``, which sees every
``open``, ``os.open``, rename, mkdir and remove of the interpreter) each file-system write
under ``$HRPOSE_TEST_WATCH`` into ``$HRPOSE_TEST_AUDIT/rank<RANK>.json``. Faults for the
failure tests, on the rank named by ``$HRPOSE_TEST_FAULT_RANK`` only:
``HRPOSE_TEST_FAULT=raise`` raises in its first training step, ``hang`` sleeps there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_WRITE_EVENTS = {"os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.copyfile"}


def _install_audit(watch: Path, record: list[dict]) -> None:
    def writes(event: str, args: tuple) -> bool:
        if event == "open":
            mode, flags = args[1], args[2]
            return bool(mode and set(str(mode)) & set("wax+")) or bool(flags and flags & _WRITE_FLAGS)
        return event in _WRITE_EVENTS

    def hook(event: str, args: tuple) -> None:
        if (event == "open" or event in _WRITE_EVENTS) and args and isinstance(args[0], str | bytes | Path):
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(str(watch)) and writes(event, args):
                record.append({"event": event, "path": path})

    sys.addaudithook(hook)


def _inject_fault(kind: str) -> None:
    from hrpose_ros.training.train import Trainer  # noqa: PLC0415

    def faulty_step(self: Trainer, batch: dict) -> dict:
        if kind == "hang":
            time.sleep(3600)
        raise RuntimeError(f"injected fault on rank {os.environ['RANK']}")

    Trainer.train_step = faulty_step


def main() -> int:
    from hrpose_ros.training.train import main as train_main  # noqa: PLC0415

    rank = os.environ.get("RANK", "0")
    record: list[dict] = []
    watch = os.environ.get("HRPOSE_TEST_WATCH")
    if watch:
        _install_audit(Path(watch).resolve(), record)
    if os.environ.get("HRPOSE_TEST_FAULT_RANK") == rank:
        _inject_fault(os.environ.get("HRPOSE_TEST_FAULT", "raise"))
    try:
        return train_main(sys.argv[1:])
    finally:
        audit = os.environ.get("HRPOSE_TEST_AUDIT")
        if audit:
            Path(audit, f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    sys.exit(main())
