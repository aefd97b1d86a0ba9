"""Link the `data_files` of setup.py into a prefix, as `colcon build --symlink-install` does.

An editable `pip install -e .` installs the Python package and the console scripts but not
setup.py's `data_files` (the ament index marker, package.xml, launch/, config/, models/).
Without them `ament_index_python.get_package_share_directory("hrpose_ros")` fails in the
development environment. `scripts/setup_env.sh` therefore runs this script, which creates
`<prefix>/<destination>/<name>` as a symbolic link to each source file: edits in the
checkout are seen at once, and a second run changes nothing. Links under those
destinations that point into the checkout but are no longer listed are removed.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from pathlib import Path
from typing import Any

__all__ = ["data_files", "link_data_files", "main", "setup_arguments"]

_LOG = logging.getLogger("link_data_files")


def setup_arguments(root: Path) -> dict[str, Any]:
    """Run `root/setup.py` with `setuptools.setup` replaced by a recorder; return its arguments."""
    import setuptools  # noqa: PLC0415  (only needed here)

    recorded: dict[str, Any] = {}
    original, cwd = setuptools.setup, Path.cwd()
    setuptools.setup = lambda **kwargs: recorded.update(kwargs)
    os.chdir(root)  # setup.py globs relative to the current directory
    try:
        runpy.run_path(str(root / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return recorded


def data_files(root: Path) -> list[tuple[str, list[str]]]:
    """Return setup.py's `data_files` (destination, [source paths relative to root])."""
    return [(dest, list(sources)) for dest, sources in setup_arguments(root).get("data_files", [])]


def link_data_files(
    root: Path, prefix: Path, entries: list[tuple[str, list[str]]], dry_run: bool = False
) -> int:
    """Create or repair the links; return how many links were (or, with dry_run, would be)
    created or removed."""
    changes = 0
    for dest, sources in entries:
        target_dir = prefix / dest
        wanted = {Path(source).name: (root / source).resolve() for source in sources}
        existing = list(target_dir.iterdir()) if target_dir.is_dir() else []
        for link in existing:
            points_into_root = link.is_symlink() and Path(os.readlink(link)).is_relative_to(root)
            if points_into_root and link.name not in wanted:
                changes += 1
                if not dry_run:
                    link.unlink()
        for name, source in wanted.items():
            link = target_dir / name
            if link.is_symlink() and Path(os.readlink(link)) == source:
                continue
            if link.is_dir() and not link.is_symlink():
                raise IsADirectoryError(f"{link} is a directory; expected a link to {source}")
            changes += 1
            if dry_run:
                continue
            target_dir.mkdir(parents=True, exist_ok=True)
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(source)
    return changes


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix))
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a link is due")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[link-data-files] %(message)s")
    root = args.root.resolve()
    changes = link_data_files(root, args.prefix.absolute(), data_files(root), dry_run=args.check)
    verb = "would change" if args.check else "changed"
    _LOG.info("%d link(s) %s under %s", changes, verb, args.prefix)
    return 1 if args.check and changes else 0


if __name__ == "__main__":
    sys.exit(main())
