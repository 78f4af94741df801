"""What every golden-vector script does first: refuse to overwrite without ``--force``."""

from __future__ import annotations

import argparse
from pathlib import Path


def may_write(out: Path) -> bool:
    """True when ``out`` is absent or ``--force`` was given; else say why not."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--force", action="store_true")
    if not ap.parse_args().force and out.exists():
        print(f"{out} exists; pass --force to overwrite (read the docstring first)")
        return False
    return True
