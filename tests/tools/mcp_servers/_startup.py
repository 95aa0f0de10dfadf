"""Shared by the test servers (imported as a sibling module: a script's own folder is on sys.path)."""

from __future__ import annotations

import argparse
import os


def parse(*extra: tuple[str, dict]) -> argparse.Namespace:
    """Parse the common options (`--starts FILE`) and any extra ones; record this start."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", help="append this process's pid to FILE on start")
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    options = parser.parse_args()
    if options.starts:
        with open(options.starts, "a") as out:
            out.write(f"{os.getpid()}\n")
    return options
