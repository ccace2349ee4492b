"""The latent map as a picture: what plays where, and how densely, drawn as an RGB array.

``map_image`` is the map alone (the performer shows it under its cursor); ``map_figure``
puts it in a figure a reader can take in without the code: z axes with ticks, the
instrument colour key, and the training loops that lie outside the square as arrows on
its edge (``rvae map`` writes it with ``rvae.files.save_png``)."""

from __future__ import annotations

import colorsys
import math
import os

import numpy as np

from rvae.checkpoint import Checkpoint
from rvae.errors import UserError
from rvae.latent import MAP_EXTENT

__all__ = ["FIGURE_ORIGIN", "MIN_CELL", "instrument_colours", "map_figure", "map_image"]

MIN_CELL = 3  # pixels per map cell: a border each side and one for the bars (the first instrument's)
FIGURE_ORIGIN = (64, 20)  # where map_figure puts the map's top-left pixel: room for the y axis and arrows
ARROW = (3, 11)  # an arrow for a loop outside the map spans these pixels off its edge; ticks start beyond
BACKGROUND, INK, FAINT = (18, 18, 18), (225, 225, 225), (130, 130, 130)


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


def _to_pixel(z: np.ndarray, extent: float, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Latent (N, 2) -> pixel columns and rows in a side x side map: the square spans
    [-extent, extent]^2 edge to edge, y up, as the training dots and the performer place z."""
    px = (z[:, 0] + extent) / (2 * extent) * (side - 1)
    py = (extent - z[:, 1]) / (2 * extent) * (side - 1)
    return px, py


def _ticks(extent: float) -> list[float]:
    """Round values from -extent to extent, at most 7 of them."""
    step = 10 ** math.floor(math.log10(extent))
    while 2 * extent / step > 6:
        step *= 2 if str(step)[0] == "1" else 2.5
    n = math.floor(extent / step + 1e-9)
    return [k * step for k in range(-n, n + 1)]


def map_figure(
    ckpt: Checkpoint, probs: np.ndarray, threshold: float = 0.5, cell: int = 24, extent: float = MAP_EXTENT
) -> np.ndarray:
    """``map_image`` with its z axes (ticks at round values), the instrument colour key
    (kick at the top, as in each cell), and each training loop outside the drawn square as
    an arrow just off the edge, pointing the way it lies. The map itself is unchanged at
    ``FIGURE_ORIGIN``. (H, W, 3) uint8."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.font.init()
    font = pygame.font.Font(None, 18)
    img = map_image(ckpt, probs, threshold, cell, extent)
    side = img.shape[0]
    left, top = FIGURE_ORIGIN
    names, colours = ckpt.kit.names, instrument_colours(len(ckpt.kit.names))
    notes = ["bar length: how much", "it plays there", "white: training loops", "arrows: loops outside"]
    key_w = 24 + max(font.size(t)[0] for t in [*names, *notes])
    key_h = 18 * (len(names) + len(notes) + 1)
    surf = pygame.Surface((left + side + 24 + key_w, top + max(side, key_h) + 56))
    surf.fill(BACKGROUND)
    surf.blit(pygame.surfarray.make_surface(np.ascontiguousarray(img.swapaxes(0, 1))), (left, top))

    ticks = np.array(_ticks(extent))
    tx, ty = _to_pixel(np.stack([ticks, ticks], axis=1), extent, side)
    for value, x, y in zip(ticks, tx, ty, strict=True):
        label = f"{value:g}"
        x, y = left + round(x), top + round(y)
        reach = ARROW[1] + 1  # ticks beyond the arrows' band
        pygame.draw.line(surf, FAINT, (x, top + side + reach), (x, top + side + reach + 4))
        number = font.render(label, True, INK)
        surf.blit(number, (x - number.get_width() // 2, top + side + reach + 6))
        pygame.draw.line(surf, FAINT, (left - reach - 4, y), (left - reach, y))
        surf.blit(number, (left - reach - 7 - number.get_width(), y - number.get_height() // 2))
    for axis, pos in (("z1", (left + side // 2, top + side + 40)), ("z2", (12, top + side // 2))):
        rendered = font.render(axis, True, INK)
        surf.blit(rendered, (pos[0] - rendered.get_width() // 2, pos[1] - rendered.get_height() // 2))

    if ckpt.latents is not None and len(ckpt.latents):
        z = np.asarray(ckpt.latents, dtype=np.float64)[:, :2]
        outside = np.abs(z).max(axis=1) > extent
        direction = z[outside] / np.abs(z[outside]).max(axis=1, keepdims=True)  # on the square's edge
        px, py = _to_pixel(direction * extent, extent, side)
        for (dx, dy), x, y in zip(direction, px, py, strict=True):
            ux, uy = dx / math.hypot(dx, dy), -dy / math.hypot(dx, dy)  # pointing out, in pixels
            tip = (left + x + ARROW[1] * ux, top + y + ARROW[1] * uy)
            base = (left + x + ARROW[0] * ux, top + y + ARROW[0] * uy)
            wing = (-uy * 4, ux * 4)
            corners = [tip, (base[0] + wing[0], base[1] + wing[1]), (base[0] - wing[0], base[1] - wing[1])]
            pygame.draw.polygon(surf, INK, corners)

    kx = left + side + 24
    for i, (name, colour) in enumerate(zip(names, colours, strict=True)):
        pygame.draw.rect(surf, tuple(int(c) for c in colour), (kx, top + 18 * i + 3, 14, 10))
        surf.blit(font.render(name, True, INK), (kx + 20, top + 18 * i))
    for i, note in enumerate(notes):
        surf.blit(font.render(note, True, FAINT), (kx, top + 18 * (len(names) + 1 + i)))
    return np.ascontiguousarray(pygame.surfarray.array3d(surf).swapaxes(0, 1))
