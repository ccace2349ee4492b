"""Rhythm descriptors of loops, and comparisons of two sets of loops by their distributions.

Every descriptor is a pure function on a batch of loops, vectorised over it. Arrays are
``(N, instruments, steps)`` as the fields of a Groove (``rvae.groove.stack(gs)[:, k]``):
onsets 0/1, velocities in [0, 1] (MIDI velocity / 127), offsets in half steps (positive =
late). The meter is always an explicit argument (a Grid), so 6/8 and 7/8 are scored on
their own hierarchy. A descriptor that has no meaning for a loop (no onsets to measure)
is ``nan`` for that loop, never 0.

``describe`` gathers them all as a flat ``dict[str, (N,) array]``: per-instrument
descriptors get one key per instrument, ``<name>_<instrument>`` with the kit's class
names (spaces become ``_``: ``density_closed_hat``), so every value is one number per loop
and the set comparisons (``compare``) treat every key alike.

``compare`` puts two sets side by side per descriptor: overlapped area and KL divergence of
their kernel-density estimates. ``relative_compare`` is Yang & Lerch's (2020) protocol in
full: the same OA and KL, between the intra-set distances of the training set and the
inter-set distances from the training set to the generated one.

    >>> from rvae.groove import stack
    >>> x = stack(grooves)                       # (N, 3, instruments, steps)
    >>> d = describe(x[:, 0], x[:, 1], x[:, 2], grid, kit.names, bpm=120)
    >>> compare(d_train, d_generated)["syncopation"]
    {'oa': 0.83, 'kl': 0.12}
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from rvae.grid import Grid

__all__ = [
    "KL_FLOOR",
    "balance",
    "compare",
    "default_grouping",
    "describe",
    "distance_kdes",
    "distinct_steps",
    "inter_distances",
    "intra_distances",
    "kde_bandwidth",
    "metrical_weights",
    "onset_density",
    "overlap_and_kl",
    "relative_compare",
    "summarise",
    "symmetry",
    "syncopation",
    "timing_stats",
    "velocity_stats",
]


def _union(onsets: np.ndarray) -> np.ndarray:
    """(N, instruments, steps) -> (N, steps) bool: a step sounds if any instrument hits on it."""
    return np.asarray((np.asarray(onsets) > 0.5).any(axis=1))


# --------------------------------------------------------------------------- density


def onset_density(onsets: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Onsets per bar: ``(total (N,), per instrument (N, instruments))``.

    density = (number of onsets in the loop) / (bars per loop). Two instruments on one step
    count twice in the total. Always defined (an empty loop has density 0)."""
    on = np.asarray(onsets) > 0.5
    per_inst = on.sum(axis=2) / grid.bars  # (N, instruments)
    return per_inst.sum(axis=1), per_inst


def distinct_steps(onsets: np.ndarray) -> np.ndarray:
    """(N,) number of steps of the loop on which at least one instrument hits (the size of the
    union of the instruments' onset sets; for a one-voice rhythm, its number of onsets)."""
    return _union(onsets).sum(axis=1).astype(np.float64)


# --------------------------------------------------------------------------- syncopation


def default_grouping(grid: Grid) -> tuple[int, ...] | None:
    """The beat grouping, in denominator units, of an additive (odd) meter, or None for a
    meter of equal beats. 5/8 -> 2+3, 7/8 -> 2+2+3, 11/8 -> 2+2+2+2+3: twos, then a three
    at the end (the most common reading of 7/8; pass an explicit grouping for 3+2+2).
    Only meters with an eighth (or shorter) denominator and a numerator that is neither a
    multiple of 2 nor of 3 are additive here: 5/4 and 7/4 are read as quarter beats."""
    num, den = grid.time_signature
    if den < 8 or num < 5 or num % 2 == 0 or num % 3 == 0:
        return None
    return (2,) * ((num - 3) // 2) + (3,)


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


def metrical_weights(grid: Grid, grouping: Sequence[int] | None = None) -> np.ndarray:
    """(steps_per_bar,) int metrical weights of one bar: 0 on the downbeat, -1 on the next
    level down, and so on to the grid step (the lowest, most negative weight).

    The hierarchy (Lerdahl & Jackendoff's metrical grid as used by Longuet-Higgins & Lee
    1984 and Witek et al. 2014, whose 4/4 weights are 0 / -1 / -2 / -3 / -4 for bar, half
    bar, quarter, eighth and sixteenth):
    - bar;
    - beats: the dotted quarter in compound meters (numerator a multiple of 3, at least 6:
      6/8, 9/8, 12/8, 6/4), the denominator unit in simple meters (quarter in 2/4, 3/4, 4/4,
      5/4). Between bar and beat one level per prime factor of the number of beats, smallest
      first: 4 beats -> half bar, then beat (Witek's 4/4), 2 -> beat, 3 -> beat;
    - additive meters (see ``default_grouping``, or an explicit ``grouping`` in denominator
      units that sums to the numerator, e.g. (3, 2, 2) for 7/8): one level for the group
      starts, whatever their lengths, then the denominator unit;
    - below the beat: thirds of a compound beat (its eighths), then halving while the period
      in steps is even, else dividing by its smallest prime factor, down to one step
      (at 24 steps per quarter: 24 -> 12 -> 6 -> 3 -> 1).
    Levels whose period is not a whole number of steps are left out.

    Caveat: the hierarchy is binary below the beat of simple meters, so triplets in 4/4 sit
    on the weakest levels and count as syncopated against it, as in LHL's original model."""
    num, den = grid.time_signature
    S = grid.steps_per_bar
    unit = Fraction(grid.steps_per_quarter * 4, den)  # steps per denominator unit
    pos = np.arange(S)
    masks = [pos == 0]

    def add(period: Fraction) -> None:
        if period.denominator == 1 and period >= 1:
            masks.append(pos % int(period) == 0)

    grouping = tuple(grouping) if grouping is not None else default_grouping(grid)
    if grouping is not None:
        if sum(grouping) != num or min(grouping) < 1:
            raise ValueError(f"grouping {grouping} does not add up to the {num} units of a {grid.meter} bar")
        starts = np.cumsum((0, *grouping[:-1])) * unit
        if all(Fraction(s).denominator == 1 for s in starts):
            masks.append(np.isin(pos, [int(s) for s in starts]))
        period = unit
        add(period)
    else:
        compound = num % 3 == 0 and num >= 6
        beats = num // 3 if compound else num
        period = Fraction(S)
        for f in _prime_factors(beats):
            period /= f
            add(period)
        if compound:  # the dotted beat divides in three eighths
            period /= 3
            add(period)
    while period > 1 and period.denominator == 1:
        p = int(period)
        period /= 2 if p % 2 == 0 else _prime_factors(p)[0]
        add(period)
    masks.append(np.ones(S, bool))  # the grid step, always the bottom level
    levels = np.stack(masks)  # (levels, S)
    return -np.argmax(levels, axis=0)  # the first (highest) level each position belongs to


def _next_stronger(weights: np.ndarray) -> np.ndarray:
    """(T,) for each position the index of the next position (cyclically, the loop repeats)
    with a strictly higher weight, or -1 where there is none (the downbeats)."""
    T = len(weights)
    out = np.full(T, -1)
    for t in range(T):
        later = np.flatnonzero(np.roll(weights, -t - 1) > weights[t])
        if len(later):
            out[t] = (t + 1 + later[0]) % T
    return out


def syncopation(
    onsets: np.ndarray, grid: Grid, grouping: Sequence[int] | None = None, per_instrument: bool = False
) -> np.ndarray:
    """Syncopation of each loop after Longuet-Higgins & Lee (1984), in the form used by
    Witek et al. (2014, "Syncopation, body-movement and pleasure in groove music", PLoS ONE)
    and Gómez-Marín et al. (2015): with the metrical weights ``w`` of ``metrical_weights``,

        S = sum over onsets t with w[t] < 0 and no onset at n(t) of  w[n(t)] - w[t]

    where n(t) is the next position after t (cyclically: the loop repeats, so the last
    notes look ahead to the next downbeat) with a weight strictly higher than w[t].

    Default: (N,), onsets and rests of the loop's merged pattern (any instrument): a hit is
    not syncopated if any instrument plays on the next stronger position, so a groove is
    syncopated as a whole (per instrument, a plain rock beat's backbeat snare would score 3
    per bar against its own rests). Steady hats on every eighth or sixteenth fill every
    stronger position and bring the merged figure to 0: ``per_instrument=True`` gives
    (N, instruments), each instrument's onsets against its own rests, to see under them.
    Weights repeat every bar. Sum over the loop, not per bar. ``nan`` without onsets."""
    w = np.tile(metrical_weights(grid, grouping), grid.bars)  # (T,)
    nxt = _next_stronger(w)
    has = nxt >= 0
    on = np.asarray(onsets) > 0.5
    u = on if per_instrument else np.asarray(on.any(axis=1))  # (N, I, T) or (N, T)
    strength = np.where(has, w[np.where(has, nxt, 0)] - w, 0)  # (T,) w[n(t)] - w[t], 0 on downbeats
    rest_next = ~u[..., np.where(has, nxt, 0)]  # no onset at n(t)
    s = (u & rest_next & has).astype(np.float64) @ strength
    return np.where(u.any(axis=-1), s, np.nan)


# --------------------------------------------------------------------------- balance, symmetry


def balance(onsets: np.ndarray) -> np.ndarray:
    """(N,) balance of the merged onset pattern (Milne & Herff 2020, "The perceptual relevance
    of balance, evenness, and entropy in musical rhythms", Cognition 203):

        balance = 1 - | (1/K) sum_k exp(2 pi i t_k / T) |

    over the K distinct steps t_k with an onset of any instrument, T the loop's steps (the
    period it repeats at). 1: the onsets' centre of gravity on the circle is its centre
    (four on the floor), 0: everything on one step. ``nan`` for a loop without onsets."""
    u = _union(onsets)  # (N, T)
    T = u.shape[1]
    k = u.sum(axis=1)
    phasors = np.exp(2j * np.pi * np.arange(T) / T)  # (T,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - np.abs(u.astype(np.float64) @ phasors) / k


def symmetry(onsets: np.ndarray, grid: Grid) -> np.ndarray:
    """(N,) share of onsets that are mirrored about the bar's midpoint by the same instrument:

        symmetry = #{(i, t) onset : onset at (i, m(t))} / #{onsets},
        m(t) = bar start + (S - (t - bar start)) mod S,  S = steps per bar

    i.e. each bar's cycle reflected about the axis through its downbeat and its midpoint
    (a step at time s after the downbeat mirrors the one s before the next downbeat; the
    downbeat and the midpoint mirror themselves). Our definition, in the spirit of the
    symmetry measures surveyed by Milne & Herff (2020): 1 for four on the floor, a backbeat
    or straight hats, 6/7 for the 6/8 bembé bell (two bars). ``nan`` without onsets."""
    on = np.asarray(onsets) > 0.5  # (N, I, T)
    S = grid.steps_per_bar
    t = np.arange(grid.steps)
    start = t // S * S
    mirror = start + (S - (t - start)) % S  # (T,)
    hits = on.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (on & on[:, :, mirror]).sum(axis=(1, 2)) / np.where(hits, hits, np.nan)


# --------------------------------------------------------------------------- timing, velocity


def _masked_mean_std(values: np.ndarray, mask: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of ``values`` where ``mask``, nan where the mask is empty."""
    n = mask.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mask, values, 0.0).sum(axis=axis) / np.where(n, n, np.nan)
        dev = np.where(mask, values - np.expand_dims(mean, axis), 0.0)
        std = np.sqrt((dev**2).sum(axis=axis) / np.where(n, n, np.nan))
    return mean, std


def timing_stats(
    onsets: np.ndarray, offsets: np.ndarray, grid: Grid, bpm: float | np.ndarray = 120.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Microtiming in milliseconds, positive = late: ``(mean (N,), std (N,), mean per
    instrument (N, I), std per instrument (N, I))`` over the loop's onsets.

    One offset unit is half a step, so ms = offset * 30000 / (bpm * steps_per_quarter)
    (as ``rvae.metrics.timing_mae_ms``); ``bpm`` is one tempo or one per loop (N,). Std is
    the population std (ddof 0): 0 for a single hit, ``nan`` where there is none. Milliseconds
    rather than steps so that figures from grids of 4, 12 and 24 steps per quarter compare."""
    on = np.asarray(onsets) > 0.5
    ms_per_unit = 30000.0 / (np.broadcast_to(np.asarray(bpm, np.float64), (on.shape[0],)) * grid.steps_per_quarter)
    ms = np.asarray(offsets, np.float64) * ms_per_unit[:, None, None]
    mean, std = _masked_mean_std(ms, on, axis=(1, 2))
    mean_i, std_i = _masked_mean_std(ms, on, axis=2)
    return mean, std, mean_i, std_i


def velocity_stats(onsets: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (N,), population std (N,)) of the MIDI velocities (0..127, i.e. the Groove's
    velocity * 127) of the loop's onsets; ``nan`` for a loop without onsets."""
    on = np.asarray(onsets) > 0.5
    return _masked_mean_std(np.asarray(velocities, np.float64) * 127.0, on, axis=(1, 2))


# --------------------------------------------------------------------------- all of them


def _key(name: str) -> str:
    return name.strip().replace(" ", "_")


def describe(
    onsets: np.ndarray,
    velocities: np.ndarray,
    offsets: np.ndarray,
    grid: Grid,
    kit: Sequence[str] | None = None,
    bpm: float | np.ndarray = 120.0,
    grouping: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Every descriptor of every loop: ``{name: (N,) float64 array}``.

    Keys: ``density``, ``density_<inst>``, ``syncopation`` (merged pattern),
    ``balance``, ``symmetry``, ``distinct_steps``, ``syncopation_<inst>`` (each instrument
    against its own rests; ``nan`` where it does not play), ``velocity_mean``, ``velocity_std``, ``timing_mean_ms``,
    ``timing_std_ms``, ``timing_mean_ms_<inst>``, ``timing_std_ms_<inst>``, with ``<inst>``
    the kit's class names (``kit``; default ``i0``, ``i1``, ...), spaces as ``_``."""
    onsets = np.asarray(onsets)
    if onsets.ndim != 3:
        raise ValueError(f"onsets must be (N, instruments, steps), got shape {onsets.shape}")
    if onsets.shape[2] != grid.steps:
        raise ValueError(f"loops have {onsets.shape[2]} steps, the grid {grid.steps}")
    names = [_key(n) for n in kit] if kit is not None else [f"i{i}" for i in range(onsets.shape[1])]
    if len(names) != onsets.shape[1]:
        raise ValueError(f"{len(names)} instrument names for {onsets.shape[1]} instruments")
    total, per_inst = onset_density(onsets, grid)
    t_mean, t_std, t_mean_i, t_std_i = timing_stats(onsets, offsets, grid, bpm)
    v_mean, v_std = velocity_stats(onsets, velocities)
    out = {"density": total}
    out |= {f"density_{n}": per_inst[:, i] for i, n in enumerate(names)}
    out |= {
        "syncopation": syncopation(onsets, grid, grouping),
        "balance": balance(onsets),
        "symmetry": symmetry(onsets, grid),
        "distinct_steps": distinct_steps(onsets),
        "velocity_mean": v_mean,
        "velocity_std": v_std,
        "timing_mean_ms": t_mean,
        "timing_std_ms": t_std,
    }
    sync_i = syncopation(onsets, grid, grouping, per_instrument=True)
    out |= {f"syncopation_{n}": sync_i[:, i] for i, n in enumerate(names)}
    out |= {f"timing_mean_ms_{n}": t_mean_i[:, i] for i, n in enumerate(names)}
    out |= {f"timing_std_ms_{n}": t_std_i[:, i] for i, n in enumerate(names)}
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


# --------------------------------------------------------------------------- set comparisons

KL_FLOOR = 1e-10  # added to the second density before KL: caps KL at about log(1/KL_FLOOR) = 23 nats
GRID_POINTS = 1000  # points of the shared evaluation grid (as mgeval, Yang & Lerch's code)


def kde_bandwidth(x: np.ndarray) -> float:
    """Scott's rule for one dimension, h = std(x, ddof=1) * n^(-1/5): the default of
    scipy's ``gaussian_kde``, which Yang & Lerch's mgeval uses. 0 for a constant set or one
    value (see ``overlap_and_kl`` for what happens then)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return 0.0
    return float(np.std(x, ddof=1) * len(x) ** (-1 / 5))


DIRECT_KDE = 2000  # samples up to which the KDE sums every kernel; beyond, linear binning


def _kde(x: np.ndarray, h: float, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of samples ``x`` with bandwidth ``h`` at ``grid`` points (evenly
    spaced). Up to DIRECT_KDE samples every kernel is summed; larger samples (the tens of
    thousands of pairwise distances of ``relative_compare``) are first spread onto the grid
    by linear binning, then convolved with the kernel: the same curve within rounding
    (h is at least 4 grid cells, so the binning error is O((cell / h)^2))."""
    if len(x) <= DIRECT_KDE:
        z = (grid[:, None] - x[None, :]) / h  # (G, n)
        return np.exp(-0.5 * z**2).sum(axis=1) / (len(x) * h * np.sqrt(2 * np.pi))
    dx = grid[1] - grid[0]
    pos = (x - grid[0]) / dx
    i = np.clip(np.floor(pos).astype(np.int64), 0, len(grid) - 2)
    w = np.clip(pos - i, 0.0, 1.0)
    counts = np.bincount(i, 1 - w, len(grid)) + np.bincount(i + 1, w, len(grid))
    half = int(np.ceil(5 * h / dx))
    offsets = np.arange(-half, half + 1) * dx
    kernel = np.exp(-0.5 * (offsets / h) ** 2) / (h * np.sqrt(2 * np.pi))
    return np.convolve(counts, kernel, mode="same")[: len(grid)] / len(x)


def overlap_and_kl(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Overlapped area and KL divergence of two samples of one descriptor (Yang & Lerch,
    "On the evaluation of generative models in music", Neural Computing and Applications
    32, 2020): each set's density p, q by Gaussian kernel density estimation, then

        OA = integral of min(p, q),   KL = D(p || q) = integral of p log(p / q)

    on a shared grid of 1000 points spanning both sets plus 4 bandwidths either side, each
    density renormalised to integrate to 1 on that grid. KL is asymmetric: pass the
    reference (e.g. the training set) as ``a``. Each grid cell's probability mass of ``q``
    gets KL_FLOOR added (then renormalised), so disjoint sets give a large finite KL (at
    most about 23 nats) rather than inf.

    ``nan`` values (loops where the descriptor is undefined) are dropped; if either set is
    left empty, both figures are ``nan``. A set with zero spread (constant, or one value)
    has no Scott bandwidth: it gets 5% of the pooled std of both sets, a narrow spike, so
    two different constants give OA near 0; two sets of one and the same value (equal within
    1e-9 relative) give OA 1 and KL 0 directly. No bandwidth is below 4 grid cells, so every
    kernel is resolved by the grid. Yang & Lerch apply OA and KL to pairwise
    distance distributions (intra-set vs inter-set); this compares the descriptor values
    themselves, which is what a table of per-descriptor OA needs."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan"), float("nan")
    pooled = np.concatenate([a, b])
    spread = float(np.std(pooled))
    lo, hi = float(pooled.min()), float(pooled.max())
    # equal up to rounding (a mean of equal offsets differs in the last bits): one spike
    if spread <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        return 1.0, 0.0
    # no kernel narrower than 5% of the pooled spread, nor than 4 grid cells (a spike that
    # falls between grid points would vanish)
    floor = max(0.05 * spread, 4 * (hi - lo) / (GRID_POINTS - 1))
    ha, hb = max(kde_bandwidth(a), floor), max(kde_bandwidth(b), floor)
    pad = 4 * max(ha, hb)
    x = np.linspace(lo - pad, hi + pad, GRID_POINTS)
    dx = x[1] - x[0]
    p, q = _kde(a, ha, x), _kde(b, hb, x)
    p /= p.sum() * dx  # unit mass on the grid: the tails cut off by the grid do not bias OA
    q /= q.sum() * dx
    oa = float(np.minimum(p, q).sum() * dx)
    pm, qm = p * dx, q * dx + KL_FLOOR  # probability masses per grid cell
    qm /= qm.sum()
    nz = pm > 0
    kl = float(np.sum(pm[nz] * np.log(pm[nz] / qm[nz])))
    return min(oa, 1.0), max(kl, 0.0)


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per descriptor (the keys both dicts share, in ``a``'s order), ``{"oa": ..., "kl": ...}``
    from ``overlap_and_kl(a[k], b[k])``; ``a`` is the reference set (KL(a || b))."""
    out = {}
    for k in a:
        if k in b:
            oa, kl = overlap_and_kl(a[k], b[k])
            out[k] = {"oa": oa, "kl": kl}
    return out


def summarise(comparison: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean OA and mean KL over the descriptors of a ``compare`` result, skipping those that
    are ``nan`` (undefined in one of the sets, e.g. the timing of an instrument never played),
    with how many descriptors entered the means. ``nan`` if none did."""
    oa = np.array([v["oa"] for v in comparison.values()], np.float64)
    kl = np.array([v["kl"] for v in comparison.values()], np.float64)
    ok = np.isfinite(oa) & np.isfinite(kl)
    return {
        "oa_mean": float(oa[ok].mean()) if ok.any() else float("nan"),
        "kl_mean": float(kl[ok].mean()) if ok.any() else float("nan"),
        "descriptors": int(ok.sum()),
    }


# --------------------------------------------------------------------------- Yang & Lerch's protocol

RELATIVE_SAMPLES = 200  # loops drawn from each set for pairwise distances (mgeval's demo uses 100)


def intra_distances(x: np.ndarray) -> np.ndarray:
    """Every |x_i - x_j| for i != j over the finite values of one descriptor: the intra-set
    distances of Yang & Lerch (2020), as mgeval's leave-one-out loop gives them (each pair
    twice, n (n - 1) values; the Euclidean distance of one-dimensional features)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    d = np.abs(x[:, None] - x[None, :])
    return d[~np.eye(len(x), dtype=bool)]


def inter_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Every |x_i - y_j| over the finite values of two sets of one descriptor: the inter-set
    distances (n m values)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    return np.abs(x[:, None] - y[None, :]).ravel()


def _subsample(d: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    size = len(next(iter(d.values()))) if d else 0
    if size <= n:
        return d
    pick = np.sort(rng.choice(size, n, replace=False))  # the same loops for every descriptor
    return {k: v[pick] for k, v in d.items()}


def relative_compare(
    train: dict[str, np.ndarray],
    generated: dict[str, np.ndarray],
    samples: int = RELATIVE_SAMPLES,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Yang & Lerch's relative measurement (2020, sec. 3.2; their mgeval's demo), per
    descriptor: the KDE of the intra-set distances of the training set, intra(train), against
    the KDE of the inter-set distances, inter(train, generated), compared by OA and
    KL(intra || inter) with ``overlap_and_kl`` (the same KDE, grid and floor as the direct
    comparison). OA near 1: a generated loop is as far from the training loops as they are
    from each other; near 0: generated loops are somewhere else (or all alike, far from the
    training set's spread).

    Also ``intra_mean`` and ``inter_mean``, the mean distances (mgeval's absolute summary).
    Each set is first reduced to ``samples`` loops drawn at random with ``seed`` (the same
    loops for every descriptor): the distances grow as n^2.

    Where mgeval differs, and why not here: its OA integrates min(p, q) only between the
    smallest and largest distance, cutting the tails (we integrate over a grid 4 bandwidths
    wider); its KL evaluates p on p's range and q on q's range, 1000 points each, and
    compares the two vectors point by point, which mixes distances of different sizes
    (we evaluate both on one shared grid)."""
    rng = np.random.default_rng(seed)
    a = _subsample(train, samples, rng)
    b = _subsample(generated, samples, rng)
    out = {}
    for k in a:
        if k not in b:
            continue
        intra, inter = intra_distances(a[k]), inter_distances(a[k], b[k])
        oa, kl = overlap_and_kl(intra, inter)
        out[k] = {
            "oa": oa,
            "kl": kl,
            "intra_mean": float(intra.mean()) if len(intra) else float("nan"),
            "inter_mean": float(inter.mean()) if len(inter) else float("nan"),
        }
    return out


def distance_kdes(train: np.ndarray, generated: np.ndarray, points: int = 200) -> dict[str, np.ndarray]:
    """The curves of Yang & Lerch's figures for one descriptor: ``x`` (distances), and the
    KDEs of ``intra_train``, ``intra_generated`` and ``inter`` on it (Scott's bandwidth, as
    ``overlap_and_kl``), for a plot of the three. Empty arrays where a set has no value."""
    sets = {
        "intra_train": intra_distances(train),
        "intra_generated": intra_distances(generated),
        "inter": inter_distances(train, generated),
    }
    every = np.concatenate([v for v in sets.values()])
    if not len(every) or any(len(v) < 2 for v in sets.values()):
        return {"x": np.array([])} | {k: np.array([]) for k in sets}
    spread = float(np.std(every)) or 1.0
    hs = {k: max(kde_bandwidth(v), 0.05 * spread) for k, v in sets.items()}
    pad = 4 * max(hs.values())
    x = np.linspace(max(0.0, every.min() - pad), every.max() + pad, points)
    return {"x": x} | {k: _kde(v, hs[k], x) for k, v in sets.items()}
