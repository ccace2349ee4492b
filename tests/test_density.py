"""Density per instrument: an offset on one kit class's onset threshold, in log-odds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from performer.control import ControlState
from performer.decoder import instrument_thresholds, pattern_for
from rvae.checkpoint import load_checkpoint

CKPT_44 = Path(__file__).resolve().parents[1] / "checkpoints" / "groove-4-4.pt"


def test_zero_is_the_models_own_threshold_exactly():
    for t in (0.0, 0.3, 0.5, 1.0):
        assert (instrument_thresholds(t, (), 4) == t).all()
        assert (instrument_thresholds(t, (0.0, 0.0), 4) == t).all()
    assert instrument_thresholds(0.5, (), 9).shape == (9, 1)


def test_an_offset_moves_the_odds_and_stays_inside_0_1():
    t = instrument_thresholds(0.5, (1.0, -1.0, 0.5, 0.0, -0.5), 5)[:, 0]
    odds = t / (1 - t)
    assert odds == pytest.approx([1e-4, 1e4, 1e-2, 1.0, 1e2])
    for base in (0.05, 0.95):  # whatever the global threshold, never every step or none
        moved = instrument_thresholds(base, (1.0, -1.0), 2)
        assert ((moved > 0) & (moved < 1)).all()
        assert moved[0, 0] < base < moved[1, 0]


def test_density_changes_only_its_own_instrument_and_in_order():
    ckpt = load_checkpoint(CKPT_44)
    rng = np.random.default_rng(1)
    points = [tuple(float(v) for v in rng.uniform(-4, 4, 2)) for _ in range(20)]
    snare, hats = 1, 2

    def hits(z, density) -> np.ndarray:
        p = pattern_for(ckpt, ControlState(z=z, density=density), z, 0, 120.0)
        return np.bincount(p.instruments, minlength=len(ckpt.kit))

    counts = {d: sum(hits(z, (0.0, d)) for z in points) for d in (-1.0, -0.5, 0.0, 0.5, 1.0)}
    snares = [counts[d][snare] for d in sorted(counts)]
    assert snares == sorted(snares) and snares[0] < snares[2] / 3 and snares[-1] > 2 * snares[2]
    for d, c in counts.items():  # the others play as the model has them
        assert (np.delete(c, snare) == np.delete(counts[0.0], snare)).all(), d
    assert counts[0.0][hats] > 0
