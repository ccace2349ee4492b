"""Making grooves with a trained model: decode points of the latent plane into Grooves, and
walk between two grooves.

All functions take a Checkpoint (``load_checkpoint(path)``) so that grid, kit and weights
always travel together. Where the rest lives: encoding, grids of points and the decoded map
in ``rvae.latent``; the map's picture in ``rvae.picture``; the loops ``rvae eval`` scores in
``rvae.metrics``.
"""

from __future__ import annotations

import numpy as np

from rvae.checkpoint import Checkpoint
from rvae.errors import UserError
from rvae.groove import Groove
from rvae.latent import decode_probs, encode

__all__ = ["decode", "decode_all", "interpolate", "to_groove"]


def to_groove(ckpt: Checkpoint, probs: np.ndarray, threshold: float | np.ndarray = 0.5, bpm: float = 120.0) -> Groove:
    """One decoded (3, instruments, steps) array -> a Groove, onsets where probability >= threshold
    (one for all, or one per instrument: an (instruments, 1) array)."""
    on = (probs[0] >= threshold).astype(np.float32)
    return Groove(on, probs[1] * on, probs[2] * on, ckpt.grid, ckpt.kit, bpm)


def decode_all(ckpt: Checkpoint, z, threshold: float = 0.5, bpm: float = 120.0) -> list[Groove]:
    """Points (N, 2), or one point (2,), -> a list of Grooves."""
    return [to_groove(ckpt, p, threshold, bpm) for p in decode_probs(ckpt, z)]


def decode(ckpt: Checkpoint, z, threshold: float = 0.5, bpm: float = 120.0) -> Groove | list[Groove]:
    """One point (x, y) -> a Groove; several points (N, 2) -> a list of Grooves."""
    grooves = decode_all(ckpt, z, threshold, bpm)
    return grooves[0] if np.ndim(z) == 1 else grooves


def interpolate(ckpt: Checkpoint, a: Groove, b: Groove, steps: int = 8, threshold: float = 0.5) -> list[Groove]:
    """Decode ``steps`` (2 or more: a and b included) evenly spaced points on the line from
    a's latent position to b's."""
    if steps < 2:
        raise UserError(f"steps {steps}: an interpolation has at least 2 loops, A and B")
    za, zb = encode(ckpt, [a, b])
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode_all(ckpt, (1 - t) * za + t * zb, threshold, a.bpm)
