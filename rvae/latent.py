"""The latent plane a performer and a map move over: points in, grooves' places out.

``encode`` puts Grooves on the plane (their posterior means), ``decode_probs`` says what a
point holds (onset probabilities, velocities, offsets), and ``grid_points`` / ``latent_map``
lay a grid over the square a map shows: ``MAP_EXTENT`` (±3, R-VAE's) unless given, and a
checkpoint's own square, which holds all its training loops, is ``ckpt.extent``. Turning
decoded arrays into Grooves and MIDI is ``rvae.generate``'s; drawing the map, ``rvae.picture``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from rvae.checkpoint import MAP_EXTENT, Checkpoint
from rvae.groove import Groove, stack
from rvae.midi_io import MidiReadError, read_midi

__all__ = ["MAP_EXTENT", "decode_probs", "encode", "encode_files", "grid_names", "grid_points", "latent_map"]


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


@torch.inference_mode()
def encode(ckpt: Checkpoint, grooves: list[Groove]) -> np.ndarray:
    """Grooves -> (N, latent) posterior means. Grooves must be on the model's grid and kit."""
    ckpt.check_fits(grooves)
    if not grooves:
        return np.zeros((0, ckpt.model.config.latent_dim), np.float32)
    return ckpt.model.encode(torch.from_numpy(stack(grooves)))[0].numpy()


def encode_files(
    ckpt: Checkpoint, paths: Iterable[str | Path], force: bool = False, skipped: list | None = None
) -> list[tuple[Groove, np.ndarray]]:
    """Every loop of each file with its latent position. Files the model cannot read are
    appended to ``skipped`` as (path, reason), or raise MidiReadError if it is None."""
    out: list[tuple[Groove, np.ndarray]] = []
    for p in paths:
        try:
            loops = read_midi(p, ckpt.grid, ckpt.kit, force=force, all_channels=ckpt.all_channels).loops
        except MidiReadError as e:
            if skipped is None:
                raise MidiReadError(f"{p} {e}") from None
            skipped.append((str(p), str(e)))
            continue
        out += zip(loops, encode(ckpt, loops), strict=True)
    return out


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
