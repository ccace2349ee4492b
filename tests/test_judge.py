"""Judging a model: a tiny model trained on data/6-8 gives a complete, JSON-clean report that
the same seed reproduces; the map figures on hand-made maps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rvae.dataset import load_dataset
from rvae.judge import (
    density_baseline,
    judge,
    map_coverage,
    map_smoothness,
    nearest_loops,
    summary_text,
)
from rvae.model import VAEConfig
from rvae.train import TrainConfig, train

DATA_6_8 = Path(__file__).resolve().parents[1] / "data" / "6-8"


@pytest.fixture(scope="module")
def tiny():
    """A small model trained for 20 epochs on data/6-8 (about a second on one thread)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # other jobs share the cores: OpenMP spinning slows small models
    try:
        ds = load_dataset([DATA_6_8])
        ckpt = train(ds, VAEConfig(hidden=16), TrainConfig(epochs=20), progress=False)
    finally:
        torch.set_num_threads(n)
    return ckpt, ds.loops


@pytest.mark.slow
def test_judge_report_is_complete_finite_and_reproducible(tiny):
    ckpt, loops = tiny
    a = judge(ckpt, loops, n_samples=64, size=8, seed=3)
    b = judge(ckpt, loops, n_samples=64, size=8, seed=3)
    assert json.dumps(a) == json.dumps(b)  # same seed, same report
    json.dumps(a, allow_nan=False)  # plain JSON: no numpy types, no nan
    for part in ("prior", "map", "baseline_nearest", "baseline_random"):
        s = a[part]["summary"]
        assert 0.0 <= s["oa_mean"] <= 1.0 and s["kl_mean"] >= 0.0 and s["descriptors"] > 10, part
        assert 0.0 <= a[part]["copy_share"] <= 1.0 and a[part]["nearest_hamming"] >= 0.0
        for name, v in a[part]["descriptors"].items():
            # None only where a set never defines the descriptor (an instrument never played)
            assert (v["oa"] is None) == (v["kl"] is None), name
        for name in ("density", "syncopation", "balance", "symmetry", "distinct_steps"):
            assert a[part]["descriptors"][name]["oa"] is not None, (part, name)
    assert a["baseline_nearest"]["copy_share"] == 1.0 and a["baseline_nearest"]["nearest_hamming"] == 0.0
    assert a["coverage"]["cells"] == 64 and 1 <= a["coverage"]["distinct"] <= 64
    assert a["smoothness"]["cell_spacing"] == pytest.approx(6 / 7)
    assert a["novelty"]["map"] == pytest.approx(1 - a["map"]["copy_share"])
    for part, k in (("smoothness", "hamming_per_unit"), ("coverage", "share"), ("novelty", "prior")):
        assert isinstance(a[part][k], float) and math.isfinite(a[part][k]), (part, k)
    assert isinstance(a["prior"]["summary"]["oa_mean"], float)
    c = judge(ckpt, loops, n_samples=64, size=8, seed=4)
    assert c["prior"] != a["prior"]  # a different seed draws different samples


@pytest.mark.slow
def test_judge_without_prior_samples_says_so(tiny):
    ckpt, loops = tiny
    with pytest.raises(ValueError, match="n_samples 0: judge needs at least 1 prior sample"):
        judge(ckpt, loops, n_samples=0, size=4)
    assert judge(ckpt, loops, n_samples=1, size=4)["n_samples"] == 1


def table_rows(text: str) -> dict[str, list[str]]:
    """The table of summary_text: row label (its first 18 characters) -> the figures after it."""
    return {line[:18].strip(): line[18:].split() for line in text.splitlines() if line.startswith("  ")}


@pytest.mark.slow
def test_summary_text_is_a_short_table_of_the_headline_figures(tiny):
    ckpt, loops = tiny
    report = judge(ckpt, loops, n_samples=64, size=8, seed=3)
    text = summary_text(report)
    lines = text.splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 120
    rows = table_rows(text)
    for label, key in (
        ("prior samples", "prior"),
        ("latent map", "map"),
        ("baseline: copy", "baseline_nearest"),
        ("baseline: random", "baseline_random"),
    ):
        part = report[key]
        s = part["summary"]
        assert rows[label] == [
            f"{s['oa_mean']:.3f}",
            f"{s['kl_mean']:.3f}",
            f"{part['relative']['summary']['oa_mean']:.3f}",
            f"{1 - part['copy_share']:.0%}",
            f"{part['nearest_hamming']:.1f}",
            str(s["descriptors"]),
        ]
    assert f"{report['coverage']['distinct']} distinct patterns in 64 cells" in text
    assert f"{report['smoothness']['hamming_per_cell']:.2f} hits change" in text
    # an undefined figure (None in the report) shows as a dash, not a crash
    report["map"]["summary"]["oa_mean"] = None
    assert table_rows(summary_text(report))["latent map"][0] == "-"


def test_map_figures_on_hand_made_maps():
    flat = np.zeros((3, 3, 2, 8), np.float32)
    assert map_smoothness(flat)["hamming_per_cell"] == 0.0
    assert map_coverage(flat) == {"distinct": 1, "cells": 9, "share": 1 / 9, "empty_share": 1.0}
    stripes = flat.copy()
    stripes[:, 1, 0, 0] = 1  # the middle column differs from its neighbours in one cell
    s = map_smoothness(stripes, extent=3.0)
    # 12 neighbour pairs: 6 horizontal ones cross the middle column, 6 vertical ones do not
    assert s["hamming_per_cell"] == pytest.approx(0.5)
    assert s["hamming_per_unit"] == pytest.approx(0.5 / 3.0)  # cells 3 latent units apart
    assert map_coverage(stripes)["distinct"] == 2


def test_nearest_and_density_baseline():
    train = np.zeros((2, 3, 2, 8), np.float32)
    train[0, 0, 0, [0, 4]] = 1
    train[1, 0, 1, :] = 1
    train[:, 1] = train[:, 0] * 0.5
    probe = train[[1, 0], 0].copy()
    probe[0, 1, 0] = 0  # one hit away from loop 1
    idx, dist = nearest_loops(probe, train[:, 0])
    assert idx.tolist() == [1, 0] and dist.tolist() == [1, 0]
    r = density_baseline(train, 2000, np.random.default_rng(0))
    p = r[:, 0].mean(axis=(0, 2))
    assert p[0] == pytest.approx(2 / 16, abs=0.01) and p[1] == pytest.approx(8 / 16, abs=0.01)
    assert set(np.unique(r[:, 1][r[:, 0] > 0])) == {0.5}  # velocities drawn from the training hits
