"""Judging what a trained model generates, against its training loops and two baselines.

``judge(ckpt, loops)`` answers, with numbers a paper can print:
- do prior samples (z ~ N(0, I)) and the decoded latent map look like the training set?
  Overlapped area and KL per rhythm descriptor (``rvae.descriptors``), and their means;
- is the map smooth? Mean Hamming distance between the onset patterns of neighbouring cells;
- how much does it hold? Distinct onset patterns among its cells;
- does it copy? Share of decoded patterns equal to a training loop's onsets;
- what do those figures mean? The same comparison for two baselines: a model that only
  copies (each prior sample replaced by its nearest training loop), and random patterns with
  the training set's per-instrument densities.

Everything is a pure function of the checkpoint, the loops and ``seed``: the same inputs
give the same report. The report is plain JSON: Python floats and ints, ``nan`` written as
``None`` (a figure that is undefined, e.g. the timing of an instrument the training set never
plays), nested dicts; ``summary_text`` turns it into a dozen lines for a person (``rvae experiment``
flattens its headline figures into result columns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rvae.checkpoint import Checkpoint
from rvae.descriptors import compare, describe, relative_compare, summarise
from rvae.files import json_clean
from rvae.groove import Groove, stack
from rvae.latent import MAP_EXTENT, decode_probs, latent_map

__all__ = [
    "density_baseline",
    "hamming",
    "judge",
    "map_coverage",
    "map_smoothness",
    "nearest_loops",
    "summary_text",
]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Na, Nb) number of (instrument, step) cells where onset patterns a (Na, I, T) and
    b (Nb, I, T) differ."""
    fa = (np.asarray(a) > 0.5).reshape(len(a), -1).astype(np.float32)
    fb = (np.asarray(b) > 0.5).reshape(len(b), -1).astype(np.float32)
    # |a xor b| = |a| + |b| - 2 a.b: one matrix product instead of an (Na, Nb, I*T) array
    return np.rint(fa.sum(1)[:, None] + fb.sum(1)[None, :] - 2 * fa @ fb.T).astype(np.int64)


def nearest_loops(patterns: np.ndarray, train_onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each onset pattern, the index of the training loop nearest in Hamming distance (the
    first one on ties) and that distance: two (N,) int arrays."""
    d = hamming(patterns, train_onsets)
    idx = d.argmin(axis=1)
    return idx, d[np.arange(len(d)), idx]


def map_smoothness(map_onsets: np.ndarray, extent: float = MAP_EXTENT) -> dict[str, float]:
    """Latent smoothness of a decoded map, map_onsets (size, size, I, T):

    - ``hamming_per_cell``: mean Hamming distance between the onset patterns of 4-neighbours
      (the 2 * size * (size - 1) horizontally and vertically adjacent pairs of cells);
    - ``hamming_per_unit``: the same divided by the cell spacing in latent units,
      2 * extent / (size - 1), so maps of different sizes compare: onsets changed per unit
      of z (one prior standard deviation);
    - ``cell_spacing``: that spacing.
    0 is a constant map; small values a map where a small move changes a few hits."""
    on = np.asarray(map_onsets) > 0.5
    size = on.shape[0]
    if size < 2:
        return {"hamming_per_cell": float("nan"), "hamming_per_unit": float("nan"), "cell_spacing": float("nan")}
    horiz = (on[:, 1:] != on[:, :-1]).sum(axis=(2, 3))  # (size, size - 1)
    vert = (on[1:] != on[:-1]).sum(axis=(2, 3))  # (size - 1, size)
    per_cell = float(np.concatenate([horiz.ravel(), vert.ravel()]).mean())
    spacing = 2 * extent / (size - 1)
    return {"hamming_per_cell": per_cell, "hamming_per_unit": per_cell / spacing, "cell_spacing": spacing}


def _distinct(onsets: np.ndarray) -> int:
    """Number of distinct onset patterns in (N, I, T)."""
    flat = np.packbits((np.asarray(onsets) > 0.5).reshape(len(onsets), -1), axis=1)
    return len(np.unique(flat, axis=0)) if len(flat) else 0


def map_coverage(map_onsets: np.ndarray) -> dict[str, float]:
    """How many distinct onset patterns the map's cells hold (``distinct``), as a share of
    its cells (``share``: 1 when every cell decodes differently), and the share of cells that
    decode to silence (``empty_share``)."""
    on = np.asarray(map_onsets) > 0.5
    cells = on.reshape(-1, *on.shape[2:])
    n = _distinct(cells)
    return {
        "distinct": n,
        "cells": len(cells),
        "share": n / len(cells),
        "empty_share": float((~cells.any(axis=(1, 2))).mean()),
    }


def _copy_share(patterns: np.ndarray, train_onsets: np.ndarray) -> float:
    """Share of patterns equal, onset for onset, to some training loop (Hamming distance 0)."""
    if not len(patterns):
        return float("nan")
    return float((nearest_loops(patterns, train_onsets)[1] == 0).mean())


def density_baseline(train: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n random loops (n, 3, I, T) with the training set's per-instrument densities: each
    cell of instrument i is a hit with probability p_i = (hits of i) / (loops * steps), drawn
    independently (Bernoulli). Each hit takes the velocity and offset of a hit of the same
    instrument drawn at random from the training set (none if the instrument never plays),
    so velocity and timing descriptors have the training marginals and only the rhythm is
    random."""
    on_t = train[:, 0] > 0.5  # (N, I, T)
    _, n_inst, steps = on_t.shape
    p = on_t.mean(axis=(0, 2))  # (I,)
    on = rng.random((n, n_inst, steps)) < p[None, :, None]
    vel = np.zeros((n, n_inst, steps), np.float32)
    off = np.zeros((n, n_inst, steps), np.float32)
    for i in range(n_inst):
        pool_v = train[:, 1, i][on_t[:, i]]
        pool_o = train[:, 2, i][on_t[:, i]]
        k = int(on[:, i].sum())
        if k and len(pool_v):
            pick = rng.integers(0, len(pool_v), k)
            vel[:, i][on[:, i]] = pool_v[pick]
            off[:, i][on[:, i]] = pool_o[pick]
    return np.stack([on.astype(np.float32), vel, off], axis=1)


def _binarise(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Decoded (N, 3, I, T) probabilities -> loops as a Groove holds them: onsets where
    p >= threshold, velocity and offset kept only there (as ``rvae.generate.to_groove``)."""
    on = (probs[:, 0] >= threshold).astype(np.float32)
    return np.stack([on, probs[:, 1] * on, probs[:, 2] * on], axis=1)


def judge(
    ckpt: Checkpoint,
    loops: Sequence[Groove],
    n_samples: int = 500,
    size: int = 30,
    seed: int = 0,
    threshold: float = 0.5,
    grouping: Sequence[int] | None = None,
) -> dict:
    """The generation report of a model against its training ``loops`` (on its grid and kit).

    Sets, each described with ``rvae.descriptors.describe`` at one tempo (the median bpm of
    the loops, so microtiming in ms is measured alike everywhere):
    - ``prior``: ``n_samples`` points z ~ N(0, I) (numpy, seeded), decoded at ``threshold``;
    - ``map``: the size x size latent map over [-3, 3]^2 (``rvae.latent.latent_map``);
    - ``baseline_nearest``: each prior sample replaced by its nearest training loop (Hamming
      distance on onsets), velocities and offsets included: a model that only memorises;
    - ``baseline_random``: ``n_samples`` loops of ``density_baseline``.
    Each gets ``descriptors`` ({name: {"oa", "kl"}}, KL(training || set)) and ``summary``
    (``rvae.descriptors.summarise``), plus ``copy_share`` (share of its patterns equal to a
    training loop's onsets) and ``nearest_hamming`` (mean Hamming distance to the nearest
    training loop), and ``relative``: Yang & Lerch's protocol in full
    (``rvae.descriptors.relative_compare``: OA and KL between intra(training) and
    inter(training, set) pairwise distances, per descriptor, with their summary). Then
    ``smoothness`` (``map_smoothness``), ``coverage``
    (``map_coverage``) and ``novelty`` (1 - the map's copy share, the prior's likewise)."""
    if not loops:
        raise ValueError("judge needs the training loops to compare with")
    if n_samples < 1:
        raise ValueError(f"n_samples {n_samples}: judge needs at least 1 prior sample")
    for g in loops:
        if g.grid != ckpt.grid or g.kit.names != ckpt.kit.names:
            raise ValueError(f"{g.source or 'a loop'} is not on the model's {ckpt.grid.meter} grid and kit")
    rng = np.random.default_rng(seed)
    grid, names = ckpt.grid, ckpt.kit.names
    bpm = float(np.median([g.bpm for g in loops]))
    train = stack(list(loops))  # (N, 3, I, T)

    z = rng.standard_normal((n_samples, ckpt.model.config.latent_dim)).astype(np.float32)
    prior = _binarise(decode_probs(ckpt, z), threshold)
    mp = latent_map(ckpt, size)  # (size, size, 3, I, T)
    map_loops = _binarise(mp.reshape(-1, *mp.shape[2:]), threshold)
    idx, _ = nearest_loops(prior[:, 0], train[:, 0])
    sets = {
        "prior": prior,
        "map": map_loops,
        "baseline_nearest": train[idx],
        "baseline_random": density_baseline(train, n_samples, rng),
    }

    def desc(x: np.ndarray) -> dict[str, np.ndarray]:
        return describe(x[:, 0], x[:, 1], x[:, 2], grid, names, bpm, grouping)

    ref = desc(train)
    report: dict = {
        "loops": len(loops),
        "n_samples": n_samples,
        "map_size": size,
        "seed": seed,
        "threshold": threshold,
        "bpm": bpm,
        "meter": grid.meter,
    }
    for name, x in sets.items():
        d = desc(x)
        cmp = compare(ref, d)
        rel = relative_compare(ref, d, seed=seed)
        report[name] = {
            "summary": summarise(cmp),
            "copy_share": _copy_share(x[:, 0], train[:, 0]),
            "nearest_hamming": float(nearest_loops(x[:, 0], train[:, 0])[1].mean()),
            "descriptors": cmp,
            "relative": {"summary": summarise(rel), "descriptors": rel},
        }
    map_on = map_loops[:, 0].reshape(size, size, *map_loops.shape[2:])
    report["smoothness"] = map_smoothness(map_on)
    report["coverage"] = map_coverage(map_on)
    report["novelty"] = {"map": 1.0 - report["map"]["copy_share"], "prior": 1.0 - report["prior"]["copy_share"]}
    return json_clean(report)


_ROWS = {  # report key -> row label in summary_text: the model's two sets, then what they mean
    "prior": "prior samples",
    "map": "latent map",
    "baseline_nearest": "baseline: copy",
    "baseline_random": "baseline: random",
}


def _fig(x: float | None, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)  # None: the report's nan, a figure undefined here


def summary_text(report: dict) -> str:
    """The headline figures of a ``judge`` report as a short table, one row per compared set,
    then the map's smoothness and coverage: what a person reads first. The report itself
    holds every figure, per descriptor."""
    r = report
    lines = [
        f"generation: {r['n_samples']} prior samples and a {r['map_size']}x{r['map_size']} map against "
        f"{r['loops']} loops ({r['meter']}, seed {r['seed']}, threshold {r['threshold']:g})",
        f"  {'':16s} {'OA mean':>8s} {'KL mean':>8s} {'rel. OA':>8s} {'novel':>6s} {'Hamming':>8s} "
        f"{'descriptors':>11s}",
    ]
    for key, label in _ROWS.items():
        s, copy = r[key]["summary"], r[key]["copy_share"]
        rel = r[key].get("relative", {}).get("summary", {}).get("oa_mean")
        novel = None if copy is None else 1.0 - copy
        lines.append(
            f"  {label:16s} {_fig(s['oa_mean']):>8s} {_fig(s['kl_mean']):>8s} {_fig(rel):>8s} {_fig(novel, '.0%'):>6s} "
            f"{_fig(r[key]['nearest_hamming'], '.1f'):>8s} {s['descriptors']:>11d}"
        )
    sm, cov = r["smoothness"], r["coverage"]
    lines += [
        "  OA: overlap of each descriptor's distribution with the loops' (1 = alike); KL: lower = closer;",
        "  rel. OA: Yang & Lerch's, intra-set distances of the loops against distances from them to the set;",
        "  novel: share that copies no loop; Hamming: mean hits changed to reach the nearest loop",
        f"map smoothness: {_fig(sm['hamming_per_cell'], '.2f')} hits change between neighbouring cells "
        f"({_fig(sm['hamming_per_unit'], '.2f')} per unit of z)",
        f"map coverage: {cov['distinct']} distinct patterns in {cov['cells']} cells ({_fig(cov['share'], '.0%')}), "
        f"{_fig(cov['empty_share'], '.0%')} silent",
    ]
    return "\n".join(lines)
