"""Rhythm descriptors on hand-made loops whose values are worked out by hand, and the set
comparisons (overlapped area, KL) on sets whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rvae import descriptors
from rvae.descriptors import (
    balance,
    compare,
    describe,
    distance_kdes,
    inter_distances,
    intra_distances,
    metrical_weights,
    overlap_and_kl,
    relative_compare,
    summarise,
    symmetry,
    syncopation,
)
from rvae.grid import Grid

FOUR_FOUR = Grid((4, 4), 24)  # 96 steps, a quarter every 24
BEMBE_GRID = Grid((6, 8), 24, bars=2)  # 12 eighths of 12 steps = 144 steps
KIT = ["kick", "snare", "closed hat"]


def loop(grid: Grid, hits: dict[int, list[int]], instruments: int = 3) -> np.ndarray:
    """{instrument: [steps]} -> one loop's onsets, (1, instruments, steps)."""
    on = np.zeros((1, instruments, grid.steps), np.float32)
    for i, steps in hits.items():
        on[0, i, steps] = 1
    return on


KICK_4 = loop(FOUR_FOUR, {0: [0, 24, 48, 72]})  # four on the floor
OFFBEAT_HAT = loop(FOUR_FOUR, {2: [12, 36, 60, 84]})  # hats on the "and"s
BEMBE = loop(BEMBE_GRID, {2: [12 * e for e in (0, 2, 4, 5, 7, 9, 11)]})  # x.x.xx.x.x.x in eighths


def test_weights_follow_the_meter():
    # Witek et al.'s 4/4: bar 0, half bar -1, quarters -2, eighths -3, sixteenths -4
    w = metrical_weights(Grid((4, 4), 4))
    assert w.tolist() == [0, -4, -3, -4, -2, -4, -3, -4, -1, -4, -3, -4, -2, -4, -3, -4]
    # 6/8: dotted-quarter beats, then eighths, then sixteenths
    assert metrical_weights(Grid((6, 8), 4)).tolist() == [0, -3, -2, -3, -2, -3, -1, -3, -2, -3, -2, -3]
    # 7/8 as 2+2+3 by default, or 3+2+2 when asked
    assert metrical_weights(Grid((7, 8), 2)).tolist() == [0, -2, -1, -2, -1, -2, -2]
    assert metrical_weights(Grid((7, 8), 2), grouping=(3, 2, 2)).tolist() == [0, -2, -2, -1, -2, -1, -2]
    # 3/4: three quarter beats directly under the bar
    assert metrical_weights(Grid((3, 4), 2)).tolist() == [0, -2, -1, -2, -1, -2]
    with pytest.raises(ValueError, match="does not add up"):
        metrical_weights(Grid((7, 8), 2), grouping=(3, 3))


def test_four_on_the_floor():
    d = describe(KICK_4, KICK_4 * 100 / 127, np.zeros_like(KICK_4), FOUR_FOUR, KIT)
    assert d["density"].tolist() == [4.0]
    assert d["density_kick"].tolist() == [4.0] and d["density_closed_hat"].tolist() == [0.0]
    assert d["syncopation"].tolist() == [0.0]
    assert d["balance"][0] == pytest.approx(1.0, abs=1e-12)
    assert d["symmetry"].tolist() == [1.0]
    assert d["distinct_steps"].tolist() == [4.0]
    assert d["velocity_mean"][0] == pytest.approx(100.0) and d["velocity_std"][0] == pytest.approx(0.0)
    assert math.isnan(d["timing_mean_ms_snare"][0])  # no snare: undefined, not 0


def test_offbeat_hat_is_syncopated():
    # each "and" (eighth, -3) is followed by a rest on the next stronger position:
    # 12 -> 24 (quarter, -2): 1; 36 -> 48 (half, -1): 2; 60 -> 72: 1; 84 -> next downbeat (0): 3
    assert syncopation(OFFBEAT_HAT, FOUR_FOUR).tolist() == [7.0]
    # with the kick on every beat, no rest follows any hat: not syncopated any more
    both = np.maximum(OFFBEAT_HAT, KICK_4)
    assert syncopation(both, FOUR_FOUR).tolist() == [0.0]
    assert balance(OFFBEAT_HAT)[0] == pytest.approx(1.0)
    # each instrument against its own rests: the hats stay syncopated, the kick is not
    per_inst = syncopation(both, FOUR_FOUR, per_instrument=True)
    assert per_inst[0, [0, 2]].tolist() == [0.0, 7.0] and math.isnan(per_inst[0, 1])
    d = describe(both, both, both * 0, FOUR_FOUR, KIT)
    assert d["syncopation_closed_hat"].tolist() == [7.0] and d["syncopation"].tolist() == [0.0]


def test_bembe_bell_in_six_eight():
    d = describe(BEMBE, BEMBE * 0.8, np.zeros_like(BEMBE), BEMBE_GRID, KIT)
    assert d["distinct_steps"].tolist() == [7.0]
    assert d["density"].tolist() == [3.5]  # 7 hits over two bars of 6/8
    # sum of e^(2 pi i k/12) over the bell's eighths = -(the sum over the 5 silent ones),
    # whose modulus is sqrt(7 - 4 sqrt 3) = 2 - sqrt 3
    assert d["balance"][0] == pytest.approx(1 - (2 - math.sqrt(3)) / 7, abs=1e-12)
    # eighths 2 -> 3 (beat): 1; 4 -> 6 (downbeat): 2; 5 -> 6: 2; 7 -> 9, 9 -> 12, 11 -> 12 land on hits
    assert d["syncopation"].tolist() == [5.0]
    # per bar, mirrored about the bar's midpoint: bar 1 {0,2,4,5} keeps 0, 2, 4; bar 2 {1,3,5} all
    assert d["symmetry"][0] == pytest.approx(6 / 7)


def test_seven_eight_syncopation_uses_its_grouping():
    grid = Grid((7, 8), 2)  # one step per eighth
    on = loop(grid, {0: [0, 1, 3]}, 1)
    # 2+2+3 (weights 0 -2 -1 -2 -1 -2 -2): eighth 1 rests on 2, eighth 3 on 4, each 1 stronger
    assert syncopation(on, grid).tolist() == [2.0]
    # 3+2+2 (0 -2 -2 -1 -2 -1 -2): eighth 1 leads to the hit on 3, which leads to the downbeat
    assert syncopation(on, grid, grouping=(3, 2, 2)).tolist() == [0.0]


def test_undefined_where_there_is_nothing_to_measure():
    empty = np.zeros((1, 3, 96), np.float32)
    d = describe(empty, empty, empty, FOUR_FOUR, KIT)
    for k in ("syncopation", "balance", "symmetry", "velocity_mean", "timing_std_ms"):
        assert math.isnan(d[k][0]), k
    assert d["density"].tolist() == [0.0] and d["distinct_steps"].tolist() == [0.0]


def test_batched_and_timing_in_ms():
    on = np.concatenate([KICK_4, OFFBEAT_HAT])
    off = on * np.array([0.5, 0.0, -1.0], np.float32)[None, :, None]  # kick late, hat early
    d = describe(on, on * 0.5, off, FOUR_FOUR, KIT, bpm=125.0)
    assert d["syncopation"].tolist() == [0.0, 7.0]
    half_step_ms = 30000 / (125 * 24)  # 10 ms
    assert d["timing_mean_ms_kick"][0] == pytest.approx(0.5 * half_step_ms)
    assert d["timing_mean_ms_closed_hat"][1] == pytest.approx(-half_step_ms)
    assert d["timing_std_ms"].tolist() == [0.0, 0.0]
    assert all(v.shape == (2,) for v in d.values())
    # per-loop tempi
    d2 = describe(on, on, off, FOUR_FOUR, KIT, bpm=np.array([125.0, 62.5]))
    assert d2["timing_mean_ms"][1] == pytest.approx(-2 * half_step_ms)


def test_symmetry_counts_the_same_instrument():
    # kick on 1, snare on its mirror's place (beat 4 mirrors beat 2): neither is mirrored by itself
    on = loop(FOUR_FOUR, {0: [24], 1: [72]})
    assert symmetry(on, FOUR_FOUR).tolist() == [0.0]


def test_overlap_of_a_set_with_itself_and_with_a_disjoint_set():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 200)
    oa, kl = overlap_and_kl(a, a)
    assert oa == pytest.approx(1.0, abs=1e-6) and kl == pytest.approx(0.0, abs=1e-6)
    oa, kl = overlap_and_kl(a, a + 100)
    assert oa < 1e-3 and kl > 10
    # half-overlapping normals: OA of N(0,1) and N(1,1) is 2 Phi(-1/2) = 0.617
    oa, _ = overlap_and_kl(rng.normal(0, 1, 4000), rng.normal(1, 1, 4000))
    assert oa == pytest.approx(0.617, abs=0.05)


def test_constant_and_empty_sets():
    assert overlap_and_kl(np.full(5, 3.0), np.full(9, 3.0)) == (1.0, 0.0)
    oa, kl = overlap_and_kl(np.full(5, 3.0), np.full(9, 4.0))
    assert oa < 1e-3 and kl > 10
    oa, kl = overlap_and_kl(np.array([np.nan, np.nan]), np.array([1.0, 2.0]))
    assert math.isnan(oa) and math.isnan(kl)
    oa, kl = overlap_and_kl(np.array([1.0, np.nan, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))  # nan dropped
    assert oa == pytest.approx(1.0) and kl == pytest.approx(0.0, abs=1e-9)


def test_compare_and_summary():
    rng = np.random.default_rng(1)
    on = (rng.random((40, 3, 96)) < 0.1).astype(np.float32)
    d = describe(on, on * 0.7, on * 0.1, FOUR_FOUR, KIT)
    same = compare(d, d)
    assert set(same) == set(d)
    s = summarise(same)
    assert s["oa_mean"] == pytest.approx(1.0, abs=1e-6) and s["kl_mean"] == pytest.approx(0.0, abs=1e-6)
    assert s["descriptors"] == len(d)
    other = describe(np.roll(on, 6, axis=2), on, on, FOUR_FOUR, KIT)
    assert summarise(compare(d, other))["oa_mean"] < 1.0


def test_yang_lerch_protocol_on_sets_whose_answer_is_known():
    rng = np.random.default_rng(0)
    train = {"d": rng.normal(0.0, 1.0, 300)}
    same = relative_compare(train, train)["d"]
    # inter(train, train) is intra(train) plus each loop's zero distance to itself
    assert same["oa"] > 0.98 and same["kl"] < 0.01
    far = relative_compare(train, {"d": rng.normal(100.0, 1.0, 300)})["d"]
    assert far["oa"] < 0.01 and far["kl"] > 10
    assert far["inter_mean"] == pytest.approx(100, abs=1) and far["intra_mean"] == pytest.approx(
        2 / np.sqrt(np.pi), abs=0.15
    )  # E|X - Y| of N(0, 1)
    assert sorted(intra_distances(np.array([0.0, 1.0, 3.0]))) == [1, 1, 2, 2, 3, 3]
    assert sorted(inter_distances(np.array([0.0, np.nan]), np.array([1.0, -2.0]))) == [1, 2]


def test_yang_lerch_protocol_matches_mgevals_demo():
    # mgeval's demo (total_used_pitch of two sets of 100 pieces) prints OA(intra(set1), inter)
    # 0.556 and OA(intra(set2), inter) 0.537, with set means 6.87 and 11.3 and stds 2.11 and
    # 1.97. Its MIDI files are not public: sets of integers with those statistics stand in.
    oas = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        s1, s2 = np.round(rng.normal(6.87, 2.105, 100)), np.round(rng.normal(11.3, 1.967, 100))
        oas += [relative_compare({"p": s1}, {"p": s2})["p"]["oa"], relative_compare({"p": s2}, {"p": s1})["p"]["oa"]]
    assert np.mean(oas) == pytest.approx((0.556 + 0.537) / 2, abs=0.05)


def test_distance_kdes_and_binned_kde_agree_with_direct_sums():
    rng = np.random.default_rng(1)
    x, grid = rng.normal(0, 1, 5000), np.linspace(-6, 6, 1000)
    binned = descriptors._kde(x, 0.3, grid)
    direct = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / 0.3) ** 2).sum(1) / (len(x) * 0.3 * np.sqrt(2 * np.pi))
    assert np.abs(binned - direct).max() < 1e-4
    curves = distance_kdes(rng.normal(0, 1, 50), rng.normal(3, 1, 60))
    assert set(curves) == {"x", "intra_train", "intra_generated", "inter"}
    dx = curves["x"][1] - curves["x"][0]
    for k in ("intra_train", "intra_generated", "inter"):
        assert curves[k].sum() * dx == pytest.approx(1, abs=0.05)
    assert curves["x"][np.argmax(curves["inter"])] > curves["x"][np.argmax(curves["intra_train"])]
