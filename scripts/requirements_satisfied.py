"""Say whether every `name==version` pin of a requirements file is installed.

`scripts/setup_env.sh` runs this with the virtual environment's Python so that a
second `make setup` can skip `pip install -r requirements.txt` (which takes many
seconds even when nothing changes). It reads installed distributions through
`importlib.metadata` and never touches the network.

Exit status: 0 when every pin is satisfied, 1 otherwise (the differences are printed),
2 for a requirements line it does not understand.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["RequirementsFormatError", "main", "parse_pins", "unsatisfied"]

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)$")


class RequirementsFormatError(ValueError):
    """A requirements line is not a plain `name==version` pin."""


def _normalise(name: str) -> str:
    """PEP 503 name normalisation (`ROS_rclpy` and `ros-rclpy` are the same project)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(path: Path) -> dict[str, str]:
    """Return {normalised name: version} for every pin in a requirements file.

    Blank lines and `#` comments are skipped; any other line must be `name==version`.
    """
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise RequirementsFormatError(f"{path}:{number}: expected 'name==version', got {raw!r}")
        pins[_normalise(match["name"])] = match["version"]
    return pins


def _installed_versions() -> dict[str, str]:
    """Return {normalised name: version} of the distributions visible to this Python."""
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(_normalise(name), dist.version)
    return versions


def unsatisfied(pins: dict[str, str]) -> list[str]:
    """Return one line per pin that is missing or installed at another version.

    A local version label (`2.14.1+cu130`) satisfies the pin `2.14.1`, as in pip.
    """
    installed = _installed_versions()
    problems = []
    for name, wanted in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}: not installed (want {wanted})")
        elif have.split("+", 1)[0] != wanted.split("+", 1)[0]:
            problems.append(f"{name}: {have} installed, want {wanted}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring for the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path, help="requirements file with name==version pins")
    args = parser.parse_args(argv)
    try:
        problems = unsatisfied(parse_pins(args.requirements))
    except RequirementsFormatError as error:
        print(error, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
