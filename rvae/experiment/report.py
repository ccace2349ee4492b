"""An experiment's report: the summary tables and paired comparisons (summary.md), and figures
(matplotlib, the optional extra ``rvae[research]``)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import TypeGuard

import numpy as np

from rvae.errors import UserError
from rvae.experiment.config import ExperimentConfig
from rvae.files import write_atomic
from rvae.stats import mean_ci, paired

__all__ = [
    "metric_columns",
    "paired_markdown",
    "plot_results",
    "require_matplotlib",
    "require_research",
    "summary_markdown",
]

FIRST = (
    "heldout_onset_f1",
    "heldout_onset_f1_tolerant",
    "train_onset_f1",
    "heldout_velocity_mae",
    "heldout_timing_mae_ms",
    "heldout_kl",
)
# The generation figures of the summary and plots (every one is in results.csv): how close
# prior samples and the map are to the training set (mean OA / KL over descriptors), the
# same for the two baselines, and the map's smoothness, coverage and novelty.
GEN_HEADLINE = (
    "gen_prior_summary_oa_mean",
    "gen_prior_summary_kl_mean",
    "gen_prior_relative_summary_oa_mean",
    "gen_map_summary_oa_mean",
    "gen_baseline_nearest_summary_oa_mean",
    "gen_baseline_random_summary_oa_mean",
    "gen_prior_copy_share",
    "gen_smoothness_hamming_per_cell",
    "gen_coverage_share",
    "gen_novelty_map",
)


def metric_columns(rows: list[dict], group: str = "all") -> list[str]:
    """The figures worth a table: ``reconstruction`` (held-out and training, and seconds),
    ``generation`` (GEN_HEADLINE where present) or ``all``."""
    present: list[str] = []
    for r in rows:
        present += [k for k in r if k not in present]
    rec = [c for c in present if c.startswith(("heldout_", "train_onset"))]
    rec = [c for c in rec if c not in ("heldout_loops", "heldout_files")]  # sizes, not figures
    rec = [c for c in FIRST if c in rec] + [c for c in rec if c not in FIRST] + ["seconds"]
    gen = [c for c in GEN_HEADLINE if c in present]
    return {"reconstruction": rec, "generation": gen}.get(group, rec[:-1] + gen + rec[-1:])


def _stats(values: list) -> tuple[float, float, float, float, int]:
    a = np.array([v for v in values if _finite(v)], float)
    if not len(a):
        return (math.nan,) * 4 + (0,)  # type: ignore[return-value]
    return float(a.mean()), float(a.std()), float(a.min()), float(a.max()), len(a)


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    digits = 1 if abs(mean) >= 10 else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cell(keys: list[str], values: tuple) -> str:
    return ", ".join(f"{k} = {v}" for k, v in zip(keys, values, strict=True))


def _num(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.3g}" if abs(x) >= 0.001 or x == 0 else f"{x:.1e}"


def paired_markdown(cfg: ExperimentConfig, ok: list[dict]) -> list[str]:
    """For every metric, each pair of grid cells (settings A and B) compared on the runs they
    share a (seed, fold) with: mean difference B - A, its bootstrap 95 % CI, and Wilcoxon's p
    where there are at least 6 pairs (``rvae.stats.paired``). A CI that excludes 0 says B
    differs from A beyond the spread over seeds and folds."""
    keys = list(cfg.grid)
    cells = list(itertools.product(*(cfg.grid[k] for k in keys)))
    if len(cells) < 2:
        return []
    by_cell = {
        c: {(r.get("seed"), r.get("fold")): r for r in ok if all(r.get(k) == v for k, v in zip(keys, c, strict=True))}
        for c in cells
    }
    lines = [
        "## paired comparisons",
        "",
        "Each pair of settings on the runs with the same seed and fold: n pairs, mean difference B − A with "
        "a bootstrap 95 % CI (10,000 resamples), Wilcoxon signed-rank p (two-sided) where n ≥ 6. "
        "`*`: the CI excludes 0.",
        "",
    ]
    for col in metric_columns(ok):
        rows = []
        for a, b in itertools.combinations(cells, 2):
            shared = sorted(set(by_cell[a]) & set(by_cell[b]), key=str)
            if not shared:
                continue
            r = paired([by_cell[a][k].get(col) for k in shared], [by_cell[b][k].get(col) for k in shared])
            if not r["n"]:
                continue
            star = " *" if r["low"] > 0 or r["high"] < 0 else ""
            rows.append(
                f"| {_cell(keys, a)} | {_cell(keys, b)} | {r['n']} | {_num(r['diff'])}{star} | "
                f"[{_num(r['low'])}, {_num(r['high'])}] | {_num(r['p'])} |"
            )
        if rows:
            lines += [f"### {col}", "", "| A | B | n | B − A | 95 % CI | p |", "|---|---|---|---|---|---|", *rows, ""]
    return lines


def summary_markdown(cfg: ExperimentConfig, rows: list[dict]) -> str:
    """Per value of each varied setting: mean ± std (population) of each figure over seeds,
    folds and the other settings' values; then each grid cell, when more than one setting varies."""
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    lines = [
        f"# {cfg.source.stem if cfg.source else 'experiment'}",
        "",
        f"{len(rows)} runs ({len(ok)} ok, {len(failed)} failed): {len(cfg.seeds)} seed(s) x "
        + (f"{cfg.folds}-fold cross-validation" if cfg.folds else f"a held-out {cfg.holdout:g} of the files")
        + " over the files. Mean ± std over seeds and folds.",
        "",
    ]
    if cfg.fixed:
        lines += ["Fixed: " + ", ".join(f"{k} = {v}" for k, v in cfg.fixed.items()), ""]
    groups: list[tuple[str, list[str]]] = [(k, [k]) for k in cfg.grid]
    if len(cfg.grid) > 1:
        groups.append(("every combination", list(cfg.grid)))
    for part in ("reconstruction", "generation"):
        cols = metric_columns(ok, part)
        if not cols:
            continue
        for title, keys in groups:
            lines += [
                f"## {part}: {title}",
                "",
                "| " + " | ".join([*keys, "runs", *cols]) + " |",
                "|" + "---|" * (len(keys) + 1 + len(cols)),
            ]
            for values in itertools.product(*(cfg.grid[k] for k in keys)):
                sel = [r for r in ok if all(r.get(k) == v for k, v in zip(keys, values, strict=True))]
                cells = [_fmt(*_stats([r.get(c) for r in sel])[:2]) for c in cols]
                lines.append("| " + " | ".join([str(v) for v in values] + [str(len(sel))] + cells) + " |")
            lines.append("")
    if cfg.figures:
        lines += paired_markdown(cfg, ok)
    if failed:
        lines += ["## failed runs", ""]
        lines += [
            f"- {r['id']} ({', '.join(f'{k}={r.get(k)}' for k in cfg.grid)}, seed {r.get('seed')}, "
            f"fold {r.get('fold')}): {r.get('error')}"
            for r in failed
        ]
        lines.append("")
    gen = {r.get("generation") for r in ok}
    if gen and gen != {"ok"}:
        lines += ["Generation figures: " + "; ".join(sorted(str(g) for g in gen)), ""]
    return "\n".join(lines)


# Shorter names for figure titles; every column keeps its full name in results.csv.
LABELS = {
    "heldout_onset_f1": "held-out onset F1",
    "heldout_onset_f1_tolerant": "held-out onset F1 (±1 step)",
    "train_onset_f1": "training onset F1",
    "heldout_velocity_mae": "held-out velocity MAE (MIDI)",
    "heldout_timing_mae_ms": "held-out timing MAE (ms)",
    "heldout_kl": "held-out KL (nats)",
    "heldout_onset_precision": "held-out onset precision",
    "heldout_onset_recall": "held-out onset recall",
    "gen_prior_summary_oa_mean": "prior samples: mean OA",
    "gen_prior_summary_kl_mean": "prior samples: mean KL",
    "gen_prior_relative_summary_oa_mean": "prior samples: Yang & Lerch OA",
    "gen_map_summary_oa_mean": "latent map: mean OA",
    "gen_baseline_nearest_summary_oa_mean": "baseline copy: mean OA",
    "gen_baseline_random_summary_oa_mean": "baseline random: mean OA",
    "gen_prior_copy_share": "prior samples copying a loop",
    "gen_smoothness_hamming_per_cell": "map: hits changed per cell",
    "gen_coverage_share": "map coverage",
    "gen_novelty_map": "map novelty",
    "seconds": "seconds per run",
}
INSTALL_RESEARCH = (
    "figures and paired statistics need matplotlib and scipy, an optional extra: pip install 'rvae[research]' "
    "(or figures = false in the study's TOML)"
)


def require_matplotlib():
    """matplotlib.pyplot on the file-only Agg backend, or a UserError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no window, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(INSTALL_RESEARCH) from None
    return plt


def require_research() -> None:
    """Raise the one-sentence UserError unless matplotlib and scipy both import: called before
    any run, so a missing extra never costs a study's time."""
    require_matplotlib()
    try:
        import scipy.stats  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_RESEARCH) from None


def _numeric(values: list) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _series(cfg: ExperimentConfig) -> tuple[str, list[tuple[str, dict]]]:
    """The x setting (the first varied one) and one series per combination of the others:
    (legend label, {setting: value})."""
    keys = list(cfg.grid)
    x, rest = keys[0], keys[1:]
    combos = list(itertools.product(*(cfg.grid[k] for k in rest)))
    return x, [
        (", ".join(f"{k} = {v}" for k, v in zip(rest, c, strict=True)), dict(zip(rest, c, strict=True))) for c in combos
    ]


def _draw(ax, cfg: ExperimentConfig, ok: list[dict], col: str) -> None:
    """One metric against the first varied setting on ``ax``: each run a small dot, the mean
    over seeds and folds with its 95 % CI as error bars, one line per combination of the
    other varied settings."""
    x, series = _series(cfg)
    values = cfg.grid[x]
    numeric = _numeric(values)
    pos = [float(v) for v in values] if numeric else list(range(len(values)))
    span = (max(pos) - min(pos)) or 1.0
    step = 0.012 * span * (1 if numeric else 8)  # series side by side, not on top of each other
    for s, (label, fixed) in enumerate(series):
        shift = (s - (len(series) - 1) / 2) * step
        means, lows, highs, xs = [], [], [], []
        for p, v in zip(pos, values, strict=True):
            runs = [r.get(col) for r in ok if r.get(x) == v and all(r.get(k) == w for k, w in fixed.items())]
            runs = [r for r in runs if _finite(r)]
            if not runs:
                continue
            m, lo, hi, _ = mean_ci(runs)
            beside = p + shift + step / 2  # each run just right of its mean's bar
            ax.plot([beside] * len(runs), runs, ".", color=f"C{s}", alpha=0.35, markersize=4, zorder=1)
            means.append(m)
            lows.append(m - lo)
            highs.append(hi - m)
            xs.append(p + shift)
        if xs:
            ax.errorbar(
                xs, means, yerr=[lows, highs], fmt="o-", color=f"C{s}", capsize=3, label=label or None, zorder=2
            )
    ax.set_xticks(pos, [str(v) for v in values])
    ax.set_xlabel(x)
    ax.set_title(LABELS.get(col, col), fontsize=10)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)


FORMATS = ("png", "svg")


def plot_results(cfg: ExperimentConfig, rows: list[dict], out: Path) -> tuple[list[Path], str]:
    """One figure per metric (``figures/<metric>.png`` and ``.svg``) and a sheet of them all
    (``figures/sheet.png``, ``.svg``), drawn with matplotlib: the metric against the first
    varied setting (a numeric axis when its values are numbers), the mean over seeds and
    folds with its 95 % CI (``rvae.stats.mean_ci``), each run as a faint dot, one line per
    combination of the other varied settings."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return [], "no figures: no run finished"
    plt = require_matplotlib()
    cols = [c for c in metric_columns(ok) if any(_finite(r.get(c)) for r in ok)]
    n = sum(1 for r in ok)
    written: list[Path] = []

    def save(fig, name: str) -> None:
        for ext in FORMATS:

            def write(tmp: str, ext: str = ext) -> None:
                fig.savefig(tmp, format=ext, dpi=150)

            written.append(write_atomic(out / "figures" / f"{name}.{ext}", write))
        plt.close(fig)

    for col in cols:
        fig, ax = plt.subplots(figsize=(4.2, 3.2), layout="constrained")
        _draw(ax, cfg, ok, col)
        save(fig, col)
    ncol = 4
    nrow = -(-len(cols) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), layout="constrained", squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=False):
        _draw(ax, cfg, ok, col)
    for ax in axes.flat[len(cols) :]:
        ax.set_axis_off()
    name = cfg.source.stem if cfg.source else "experiment"
    fig.suptitle(f"{name}: mean ± 95 % CI over seeds and folds (dots: the {n} runs)")
    save(fig, "sheet")
    return written, f"figures: figures/<metric>.png and .svg for {len(cols)} metrics, and figures/sheet.png, .svg"


def _finite(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
