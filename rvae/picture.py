"""The latent map as a picture: what plays where, and how densely, drawn as an RGB array
(``rvae.files.save_png`` writes it; the performer shows it under its cursor)."""

from __future__ import annotations

import colorsys

import numpy as np

from rvae.checkpoint import Checkpoint
from rvae.errors import UserError
from rvae.latent import MAP_EXTENT

__all__ = ["MIN_CELL", "instrument_colours", "map_image"]

MIN_CELL = 3  # pixels per map cell: a border each side and one for the bars (the first instrument's)


def instrument_colours(n: int) -> np.ndarray:
    """(n, 3) uint8, evenly spaced hues: instrument i has the same colour everywhere."""
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(i / n, 0.65, 1.0)] for i in range(n)], np.uint8)


def map_image(
    ckpt: Checkpoint,
    probs: np.ndarray,
    threshold: float = 0.5,
    cell: int = 24,
    extent: float = MAP_EXTENT,
    show_training: bool = True,
) -> np.ndarray:
    """A picture of a latent map: (H, W, 3) uint8, H = W = size * cell.

    Each cell holds one bar per instrument (kick at the top), its colour the instrument's
    and its length the share of steps on which it plays: what plays there, and how densely.
    Training loops are white dots at their latent positions."""
    if cell < MIN_CELL:
        raise UserError(f"cell {cell}: a map cell needs {MIN_CELL} pixels or more")
    size = probs.shape[0]
    n_inst = probs.shape[3]
    colours = instrument_colours(n_inst)
    density = (probs[:, :, 0] >= threshold).mean(axis=-1)  # (size, size, instruments)
    # A dense instrument (hats on every 16th = 1/6 of the steps at 24 per quarter) fills the
    # bar: scale by the busiest that a groove commonly gets, not by 1.
    scale = 1.0 / max(1e-6, 4.0 / ckpt.grid.steps_per_quarter)
    row_h = max(1, (cell - 2) // n_inst)
    width = np.clip(np.rint(density * scale * (cell - 2)), 0, cell - 2).astype(int)  # (size, size, instruments)
    # Whole arrays, not a Python loop over 30x30x9 bars: one bar row per (cell, instrument),
    # coloured, then stretched to its band's height.
    x = np.arange(cell - 2)
    on = x[None, None, None, :] < width[..., None]  # (size, size, instruments, cell - 2)
    bars = np.where(on[..., None], colours[None, None, :, None, :], np.uint8(18))  # (..., cell - 2, 3)
    block = np.full((size, size, cell, cell, 3), 18, np.uint8)
    rows = min(n_inst * row_h, cell - 2)  # tiny cells show the first instruments only
    block[:, :, 1 : 1 + rows, 1 : cell - 1] = np.repeat(bars, row_h, axis=2)[:, :, :rows]
    img = np.ascontiguousarray(block.transpose(0, 2, 1, 3, 4).reshape(size * cell, size * cell, 3))
    if show_training and ckpt.latents is not None and len(ckpt.latents):
        z = np.asarray(ckpt.latents)[:, :2]
        px = np.rint((z[:, 0] + extent) / (2 * extent) * (size * cell - 1)).astype(int)
        py = np.rint((extent - z[:, 1]) / (2 * extent) * (size * cell - 1)).astype(int)
        for x, y in zip(px, py, strict=True):
            if 0 <= x < size * cell and 0 <= y < size * cell:
                img[max(0, y - 2) : y + 3, max(0, x - 1) : x + 2] = 255
                img[max(0, y - 1) : y + 2, max(0, x - 2) : x + 3] = 255
    return img
