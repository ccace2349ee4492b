"""Using a trained model: decode points of the latent space into Grooves, encode Grooves
into points, walk between two grooves, and decode the whole plane as a map.

All functions take a Checkpoint (``load_checkpoint(path)``) so that grid, kit and weights
always travel together.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch

from rvae.checkpoint import Checkpoint
from rvae.dataset import Dataset, load_loops
from rvae.errors import UserError
from rvae.groove import Groove, stack
from rvae.latent import MAP_EXTENT
from rvae.midi_io import read_midi

__all__ = [
    "MAP_EXTENT",
    "MIN_CELL",
    "decode",
    "decode_probs",
    "encode",
    "encode_files",
    "eval_loops",
    "grid_names",
    "grid_points",
    "interpolate",
    "latent_map",
    "map_image",
]

MIN_CELL = 3  # pixels per map cell: a border each side and one for the bars (the first instrument's)


def _z(ckpt: Checkpoint, z) -> torch.Tensor:
    """Points (N, k) or one point (k,) -> (N, latent), padding missing dimensions with 0."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).reshape(-1, np.shape(z)[-1] if np.ndim(z) else 1)
    d = ckpt.model.config.latent_dim
    if z.shape[1] < d:
        z = torch.cat([z, torch.zeros(z.shape[0], d - z.shape[1])], dim=1)
    return z[:, :d]


@torch.inference_mode()
def decode_probs(ckpt: Checkpoint, z) -> np.ndarray:
    """Points (N, 2) -> (N, 3, instruments, steps): onset probability, velocity, offset."""
    return ckpt.model.decode(_z(ckpt, z)).numpy()


def to_groove(ckpt: Checkpoint, probs: np.ndarray, threshold: float = 0.5, bpm: float = 120.0) -> Groove:
    """One decoded (3, instruments, steps) array -> a Groove, onsets where probability >= threshold."""
    on = (probs[0] >= threshold).astype(np.float32)
    return Groove(on, probs[1] * on, probs[2] * on, ckpt.grid, ckpt.kit, bpm)


def decode(ckpt: Checkpoint, z, threshold: float = 0.5, bpm: float = 120.0) -> Groove | list[Groove]:
    """One point (x, y) -> a Groove; several points (N, 2) -> a list of Grooves."""
    probs = decode_probs(ckpt, z)
    grooves = [to_groove(ckpt, p, threshold, bpm) for p in probs]
    return grooves[0] if np.ndim(z) == 1 else grooves


@torch.inference_mode()
def encode(ckpt: Checkpoint, grooves: list[Groove]) -> np.ndarray:
    """Grooves -> (N, latent) posterior means. Grooves must be on the model's grid and kit."""
    for g in grooves:
        if g.grid != ckpt.grid or g.kit.names != ckpt.kit.names:
            raise UserError(
                f"{g.source or 'groove'} is on {g.grid.meter} x {g.grid.steps} steps, "
                f"the model on {ckpt.grid.meter} x {ckpt.grid.steps}"
            )
    if not grooves:
        return np.zeros((0, ckpt.model.config.latent_dim), np.float32)
    return ckpt.model.encode(torch.from_numpy(stack(grooves)))[0].numpy()


def encode_files(
    ckpt: Checkpoint, paths, force: bool = False, skipped: list | None = None
) -> list[tuple[Groove, np.ndarray]]:
    """Every loop of each file with its latent position. Files the model cannot read are
    appended to ``skipped`` as (path, reason), or raise MidiReadError if it is None."""
    from rvae.midi_io import MidiReadError

    out = []
    for p in paths:
        try:
            loops = read_midi(p, ckpt.grid, ckpt.kit, force=force).loops
        except MidiReadError as e:
            if skipped is None:
                raise MidiReadError(f"{p} {e}") from None
            skipped.append((str(p), str(e)))
            continue
        out += zip(loops, encode(ckpt, loops), strict=True)
    return out


def eval_loops(ckpt: Checkpoint, paths, force: bool = False) -> Dataset:
    """The loops of MIDI files and folders that ``rvae eval`` scores: on the model's grid and
    kit, without those training would have dropped (fewer than the checkpoint's ``min_onsets``
    hits; ``sparse_loops`` counts them), files that gave none in ``skipped``."""
    return load_loops(paths, ckpt.grid, ckpt.kit, force, ckpt.min_onsets)


def interpolate(ckpt: Checkpoint, a: Groove, b: Groove, steps: int = 8, threshold: float = 0.5) -> list[Groove]:
    """Decode ``steps`` (2 or more: a and b included) evenly spaced points on the line from
    a's latent position to b's."""
    if steps < 2:
        raise UserError(f"steps {steps}: an interpolation has at least 2 loops, A and B")
    za, zb = encode(ckpt, [a, b])
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode(ckpt, (1 - t) * za + t * zb, threshold, a.bpm)


def grid_points(size: int, extent: float = MAP_EXTENT) -> np.ndarray:
    """(size, size, 2) points over [-extent, extent]^2; [row, col] = (x of col, y of row),
    row 0 at the top (largest y), as a picture is read. Size 1 is the centre, (0, 0)."""
    axis = np.linspace(-extent, extent, size, dtype=np.float32) if size > 1 else np.zeros(size, np.float32)
    x, y = np.meshgrid(axis, axis[::-1])
    return np.stack([x, y], axis=-1)


def grid_names(size: int, extent: float = MAP_EXTENT) -> list[str]:
    """File names for the clips of ``grid_points(size, extent)``, in its row-major order:
    ``r{row}_c{col}_x{x}_y{y}.mid``, row and column zero-padded so that sorting the names by
    text sorts the clips as the grid reads (signed coordinates alone would put + before -)."""
    width = len(str(size - 1))
    return [
        f"r{r:0{width}d}_c{c:0{width}d}_x{x:+.2f}_y{y:+.2f}.mid"
        for r, row in enumerate(grid_points(size, extent))
        for c, (x, y) in enumerate(row)
    ]


def latent_map(ckpt: Checkpoint, size: int = 30, extent: float = MAP_EXTENT) -> np.ndarray:
    """The plane decoded on a size x size grid: (size, size, 3, instruments, steps)."""
    pts = grid_points(size, extent).reshape(-1, 2)
    probs = decode_probs(ckpt, pts)  # (size * size, 3, instruments, steps)
    return probs.reshape(size, size, *probs.shape[1:])


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
