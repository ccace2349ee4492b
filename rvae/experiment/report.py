"""An experiment's report: the summary tables (summary.md) and one chart per varied setting."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import TypeGuard

import numpy as np

from rvae.experiment.config import ExperimentConfig
from rvae.files import save_surface

__all__ = ["metric_columns", "plot_results", "summary_markdown"]

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


def _panel(
    pygame,
    surf,
    font,
    origin: tuple[int, int],
    size: tuple[int, int],
    title: str,
    labels: list[str],
    per: list[list[float]],
) -> None:
    """One figure against one setting: per[j] holds the runs' values at labels[j]."""
    ox, oy = origin
    left, right, top, bottom = ox + 50, ox + size[0] - 15, oy + 25, oy + size[1] - 30
    surf.blit(font.render(title, True, (0, 0, 0)), (left, oy + 5))
    pygame.draw.rect(surf, (160, 160, 160), (left, top, right - left, bottom - top), 1)
    every = [x for p in per for x in p]
    if not every:
        surf.blit(font.render("no values", True, (120, 120, 120)), (left + 10, top + 10))
        return
    lo, hi = min(every), max(every)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.08 * (hi - lo)

    def xy(j: int, y: float) -> tuple[int, int]:
        x = left + (right - left) * (j + 0.5) / len(labels)
        return round(x), round(bottom - (bottom - top) * (y - lo + pad) / (hi - lo + 2 * pad))

    for y in (lo, hi):
        surf.blit(font.render(f"{y:.3g}", True, (90, 90, 90)), (ox + 4, xy(0, y)[1] - 6))
    means = []
    for j, (label, p) in enumerate(zip(labels, per, strict=True)):
        text = font.render(label, True, (0, 0, 0))
        surf.blit(text, (xy(j, lo)[0] - text.get_width() // 2, bottom + 6))
        if not p:
            continue
        pygame.draw.line(surf, (120, 160, 220), xy(j, min(p)), xy(j, max(p)), 3)  # min-max over seeds, folds
        for x in p:
            cx, cy = xy(j, x)
            pygame.draw.circle(surf, (60, 60, 60), (cx + 6, cy), 2)  # each run, beside the bar
        means.append(xy(j, sum(p) / len(p)))
    if len(means) > 1:
        pygame.draw.lines(surf, (200, 40, 40), False, means, 2)
    for m in means:
        pygame.draw.circle(surf, (200, 40, 40), m, 4)


def plot_results(cfg: ExperimentConfig, rows: list[dict], out: Path) -> tuple[list[Path], str]:
    """One PNG per varied setting, a panel per figure: the mean over seeds and folds (and
    the other settings) as a red line, the min–max range as a blue bar, each run as a dot.
    Values are equally spaced in the config's order. Drawn with pygame, already a dependency
    of the performer (matplotlib is not one of rvae's)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return [], "no plots: no run finished"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        return [], "no plots: pygame is not installed"
    pygame.font.init()
    font = pygame.font.Font(None, 18)
    cols = metric_columns(ok)
    pw, ph, ncol = 330, 200, 3
    written = []
    for key, values in cfg.grid.items():
        surf = pygame.Surface((pw * ncol, ph * -(-len(cols) // ncol) + 30))
        surf.fill((255, 255, 255))
        head = f"each figure against {key} (red: mean; blue bar: min-max; dots: runs; n = {len(ok)} runs)"
        surf.blit(font.render(head, True, (0, 0, 0)), (10, 8))
        for i, col in enumerate(cols):
            per = [[x for r in ok if r.get(key) == v and _finite(x := r.get(col))] for v in values]
            _panel(
                pygame,
                surf,
                font,
                ((i % ncol) * pw, 30 + (i // ncol) * ph),
                (pw, ph),
                col,
                [str(v) for v in values],
                per,
            )
        written.append(save_surface(surf, out / f"plot_{key}.png"))  # atomic, as the results
    return written, f"plots: {', '.join(p.name for p in written)}"


def _finite(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
