"""Writing files so that nothing a user made is ever left half-written, and JSON without NaN."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_clean", "save_png", "save_surface", "write_atomic"]


def write_atomic(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the user's file should be like any other
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_surface(surface, path: str | Path) -> Path:
    """Write a pygame Surface as PNG, atomically."""
    import pygame

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object, so the name hint (not the .tmp name) picks PNG
            pygame.image.save(surface, f, "png")

    return write_atomic(path, write)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG, atomically, without opening a display."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    return save_surface(pygame.surfarray.make_surface(np.ascontiguousarray(rgb.swapaxes(0, 1))), path)


def json_clean(x: Any, digits: int | None = None) -> Any:
    """numpy scalars -> Python numbers, NaN/inf -> None (JSON has neither), recursively;
    floats rounded to ``digits`` when given."""
    if isinstance(x, dict):
        return {k: json_clean(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v, digits) for v in x]
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, (np.floating, float)):
        if not math.isfinite(x):
            return None
        return round(float(x), digits) if digits is not None else float(x)
    return x
