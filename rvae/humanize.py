"""Humanize: a stiff clip (hits on the grid, one velocity) takes its feel from a model, as
GrooVAE's Humanize does (Gillick et al., "Learning to Groove with Inverse Sequence
Transformations", ICML 2019), with the small VAE a user trained on their own grooves.

Each loop keeps its hits (which instrument on which step); their velocities and microtiming
come from the model decoded at the loop's own latent position (``own_z``: where its hits,
wearing the model's feel, encode to), or at a point the user chooses for another feel. ``amount``
blends: 0 keeps the clip's own values, 1 takes the model's. GrooVAE trains a model of its own
that maps scores to performances; here the decoder's velocity and offset heads give a value
to every cell, hit or not, so any set of hits can take them.

A file is humanized whole: every bar of the model's meter, in order, up to its end (its last
track end, or its last hit), so the clip written back is as long as the one read. The last
loop of a file whose bars do not fill whole loops of a multi-bar model is padded with
silence to be encoded, and only the file's bars are written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rvae.checkpoint import Checkpoint
from rvae.errors import UserError
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.latent import decode_probs, encode
from rvae.metrics import timing_mae_ms, velocity_mae
from rvae.midi_io import MidiFileLoops, MidiReadError, cut_loops, parse_midi
from rvae.text import counted, listing

__all__ = ["HumanizedClip", "humanize", "humanize_file", "own_z"]

# Encodings that settle a loop's own z (own_z). Measured on quantised copies (velocity 100,
# no microtiming) of training loops, velocity / timing MAE against the originals: the
# bundled groove-4-4.pt on its Groove clips, 1 encoding 10.2 / 4.46 ms, 3: 6.5 / 2.36 ms,
# 5: 4.9 / 2.02 ms, 10: 4.8 / 1.99 ms (the stiff copies: 52.1 / 6.88 ms).
SETTLE = 5


def humanize(ckpt: Checkpoint, grooves: list[Groove], z=None, amount: float = 1.0) -> tuple[list[Groove], np.ndarray]:
    """Each groove with its own hits and the model's velocities and offsets, blended by
    ``amount`` (0..1) with its own; and the latent points (N, latent) they came from: each
    groove's own position, or ``z`` (one point, 2 numbers or the model's latent size) for all."""
    if not (np.isfinite(amount) and 0 <= amount <= 1):
        raise UserError(f"amount {amount:g}: choose 0 (the clip's own feel) to 1 (the model's)")
    if not grooves:
        return [], np.zeros((0, ckpt.model.config.latent_dim), np.float32)
    if z is None:
        points = own_z(ckpt, grooves)
    else:
        point = np.zeros(ckpt.model.config.latent_dim, np.float32)
        given = np.asarray(z, np.float32).ravel()[: len(point)]
        point[: len(given)] = given
        points = np.tile(point, (len(grooves), 1))
    probs = decode_probs(ckpt, points)  # (N, 3, instruments, steps)
    out = []
    for g, p in zip(grooves, probs, strict=True):
        on = g.onsets
        velocities = ((1 - amount) * g.velocities + amount * p[1]) * on
        offsets = ((1 - amount) * g.offsets + amount * p[2]) * on
        out.append(replace(g, velocities=velocities, offsets=offsets))
    return out, points


def own_z(ckpt: Checkpoint, grooves: list[Groove]) -> np.ndarray:
    """Each groove's own latent position, for its hits: the point whose decoded feel, put on
    the groove's hits, encodes back to it. A stiff clip's posterior mean alone is pulled off
    by its flat velocities and zero offsets, which the encoder reads as a feel of their own;
    so encode, put the decoded feel on the hits, encode again, SETTLE times in all."""
    points = encode(ckpt, grooves)
    for _ in range(SETTLE - 1):
        probs = decode_probs(ckpt, points)
        worn = [
            replace(g, velocities=p[1] * g.onsets, offsets=p[2] * g.onsets) for g, p in zip(grooves, probs, strict=True)
        ]
        points = encode(ckpt, worn)
    return points


@dataclass
class HumanizedClip:
    """A file humanized: every bar of it, in order, ready for ``write_midi``."""

    bars: list[Groove]  # one bar each (the model's meter), humanized
    stiff: list[Groove]  # the same bars as read
    z: np.ndarray  # (loops, latent): where each loop's feel came from
    bpm: float  # the file's (first) tempo
    read: MidiFileLoops  # what reading counted: notes the kit does not map, merged hits, lines to say

    @property
    def hits(self) -> int:
        return sum(g.n_onsets for g in self.bars)

    @property
    def velocity_change(self) -> float:
        """Mean |change| of velocity on the hits, in MIDI units."""
        a, b = _arrays(self.bars), _arrays(self.stiff)
        return velocity_mae(a[:, 1], b[:, 1], b[:, 0])

    @property
    def timing_change_ms(self) -> float:
        """Mean |change| of timing on the hits, in milliseconds at the file's tempo."""
        a, b = _arrays(self.bars), _arrays(self.stiff)
        bpm = np.full(len(self.bars), self.bpm)
        return timing_mae_ms(a[:, 2], b[:, 2], b[:, 0], bpm, self.bars[0].grid.steps_per_quarter)


def _arrays(grooves: list[Groove]) -> np.ndarray:
    return np.stack([np.stack([g.onsets, g.velocities, g.offsets]) for g in grooves])


def humanize_file(
    ckpt: Checkpoint, path: str | Path, z=None, amount: float = 1.0, force_meter: bool = False
) -> HumanizedClip:
    """Every bar of the MIDI file ``path``, humanized loop by loop (``humanize``). A file with
    bars in another meter than the model's is refused (its bars could not all be written back),
    unless ``force_meter`` reads it all in the model's meter."""
    grid = ckpt.grid
    bar_grid = Grid(grid.time_signature, grid.steps_per_quarter, 1)
    try:
        src = parse_midi(path)
        read = cut_loops(src, bar_grid, ckpt.kit, force_meter, ckpt.all_channels)
    except MidiReadError as e:
        raise MidiReadError(f"{path} {e}") from None
    if read.bars_other_meter:
        parts = [f"{counted(bars, 'bar')} of {m}" for m, (bars, _) in read.other_meters.items()]
        raise UserError(
            f"{path} has {listing(parts)} besides its {grid.meter} bars: humanize writes every bar back, so give "
            f"a clip all in the model's {grid.meter} (--force-meter reads it all as {grid.meter})"
        )
    stiff = list(read.loops)
    # Bars after the last hit up to the file's end (a clip ending in silence) are kept too.
    tpq = src.ticks_per_quarter
    bar_ticks = float(bar_grid.quarters_per_bar) * tpq
    half_step = tpq / (2 * grid.steps_per_quarter)  # a note-off a hair past a bar line opens no bar
    end = int(src.track_end.max()) if len(src.track_end) else 0
    n_bars = max(len(stiff), int(np.ceil((end - half_step) / bar_ticks)))
    empty = Groove.empty(bar_grid, ckpt.kit, read.bpm)
    stiff += [replace(empty, file=str(path), bar=len(stiff) + k + 1) for k in range(n_bars - len(stiff))]
    # Loops of the model's length; the last one padded with silence.
    padded = stiff + [empty] * (-len(stiff) % grid.bars)
    loops = [_join(padded[i : i + grid.bars], grid) for i in range(0, len(padded), grid.bars)]
    done, points = humanize(ckpt, loops, z, amount)
    bars = [bar for loop in done for bar in _split(loop, bar_grid)][: len(stiff)]
    bars = [replace(b, file=s.file, bar=s.bar) for b, s in zip(bars, stiff, strict=True)]
    return HumanizedClip(bars, stiff, points, read.bpm, read)


def _join(bars: list[Groove], grid: Grid) -> Groove:
    """Consecutive one-bar grooves -> one loop on ``grid``."""
    first = bars[0]
    on, vel, off = (
        np.concatenate([getattr(b, name) for b in bars], axis=1) for name in ("onsets", "velocities", "offsets")
    )
    return Groove(on, vel, off, grid, first.kit, first.bpm, first.file, first.bar)


def _split(loop: Groove, bar_grid: Grid) -> list[Groove]:
    """A loop -> its one-bar grooves."""
    n = bar_grid.steps
    return [
        Groove(
            loop.onsets[:, i : i + n],
            loop.velocities[:, i : i + n],
            loop.offsets[:, i : i + n],
            bar_grid,
            loop.kit,
            loop.bpm,
        )
        for i in range(0, loop.grid.steps, n)
    ]
