"""The defaults study's trade-off (issue 13: a space that copies less): for each setting tried
on a set (at least MIN_RUNS runs), training onset F1, prior OA, the share of prior samples that copy a training loop and
the map's novelty (mean ± 95 % CI over seeds and folds), as a Markdown table and a figure
(prior OA against copy share, one panel per set, the targets shaded).

    .venv/bin/python scripts/plot_tradeoff.py OUT_STEM LABEL=RESULTS_DIR[,RESULTS_DIR...] ...

Each RESULTS_DIR is an `rvae experiment` output folder (its results.json). The studies of one
set may overlap (each has today's defaults as one cell): runs are told apart by their settings
with the defaults filled in, seed and fold, and a run found twice counts once. The updates a
run took are its epochs times the batches of one (trained_updates): on R-VAE's grid an epoch
of these sets is one batch, on the default grid the small set's is two. Writes OUT_STEM.md
(the table), .csv (every run counted: set, setting, seed, fold and the four figures), .png
and .svg.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rvae.dataset import DataConfig  # noqa: E402
from rvae.experiment.report import require_matplotlib  # noqa: E402
from rvae.files import write_atomic  # noqa: E402
from rvae.stats import mean_ci  # noqa: E402
from rvae.train import TrainConfig  # noqa: E402

# The settings studied, at the defaults the study set out to improve (issue 13), written out so
# that the table reads the same should a default change; "updates" is read from the epochs a
# run trained, and None when those defaults' automatic count (default_updates).
DEFAULTS = {
    "beta": 0.2,
    "kl_warmup": 0.3,
    "dropout": 0.0,
    "latent_noise": 0.0,
    "hidden": 256,
    "lr": 0.01,
    "w_velocity": 1.0,
    "w_offset": 1.0,
    "fit_f1": 0.0,  # none: every update trained
}
BASELINE = "today's defaults"


def default_updates(loops: int) -> int:
    """The automatic count of those defaults (rvae.train before round 6): 12 updates a loop, at
    least 300, at most 4000."""
    return min(4000, max(300, 12 * loops))


METRICS = {
    "train_onset_f1": "training onset F1",
    "gen_prior_summary_oa_mean": "prior OA",
    "gen_prior_copy_share": "prior copy share",
    "gen_novelty_map": "map novelty",
}
OA_TARGET, F1_TARGET = 0.65, 0.95
MIN_LOOPS, BATCH = DataConfig.min_loops, TrainConfig.batch_size
MIN_RUNS = 3  # cells with fewer runs (a setting tried once, an interrupted study) are left out


def trained_updates(row: dict) -> int:
    """The optimiser steps a run took, whatever asked for them (epochs, updates or neither): its
    epochs times the batches of one, its training loops duplicated up to DataConfig.min_loops
    and cut into TrainConfig.batch_size (neither varied in these studies)."""
    loops = row["train_loops"]
    rows = loops * (-(-MIN_LOOPS // loops) if loops < MIN_LOOPS else 1)
    return row["epochs"] * -(-rows // BATCH)


def setting(row: dict) -> tuple:
    """The run's studied settings, defaults filled in; updates None when automatic, or when
    fit_f1 stopped the run (its count is each run's own)."""
    values = tuple(row.get(k, d) for k, d in DEFAULTS.items())
    if row.get("fit_f1", 0.0) > 0:
        return (*values, None)
    updates = trained_updates(row)
    return (*values, None if updates == default_updates(row["train_loops"]) else updates)


def changed(key: tuple) -> dict[str, float]:
    """The settings of ``key`` that differ from today's defaults (DEFAULTS)."""
    names = [*DEFAULTS, "updates"]
    return {n: v for n, v, d in zip(names, key, [*DEFAULTS.values(), None], strict=True) if v is not None and v != d}


def label(key: tuple) -> str:
    return ", ".join(f"{n} {v:g}" for n, v in changed(key).items()) or BASELINE


def family(key: tuple) -> str:
    """What a point varies (its colour): "beta", "dropout + latent_noise"..."""
    return " + ".join(changed(key)) or BASELINE


def cells(folders: list[str]) -> dict[tuple, list[dict]]:
    rows = [r for f in folders for r in json.loads(Path(f, "results.json").read_text()) if r.get("status") == "ok"]
    out: dict[tuple, dict[tuple, dict]] = {}
    for r in rows:
        key = setting(r)
        out.setdefault(key, {}).setdefault((r["seed"], r["fold"]), r)  # one run found twice counts once
    return {k: list(v.values()) for k, v in out.items() if len(v) >= MIN_RUNS}


def summarise(runs: list[dict]) -> dict[str, tuple[float, float, float]]:
    return {m: mean_ci([r.get(m) for r in runs])[:3] for m in METRICS}


def main() -> None:
    stem, specs = Path(sys.argv[1]), sys.argv[2:]
    plt = require_matplotlib()
    sets = {}
    for spec in specs:
        name, _, folders = spec.partition("=")
        sets[name] = cells(folders.split(","))
    lines = [
        "# Defaults that copy less: every setting tried",
        "",
        f"Written by `scripts/plot_tradeoff.py` from the `rvae experiment` results of "
        f"`examples/defaults_study_*.toml`. Mean ± 95 % CI half-width over seeds x folds; targets: "
        f"training onset F1 ≥ {F1_TARGET}, prior OA ≥ {OA_TARGET}, prior copy share at most half of "
        "today's defaults' on the same set.",
        "",
        "| set | setting | runs | " + " | ".join(METRICS.values()) + " | meets the targets |",
        "|---|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(["set", "setting", "seed", "fold", *METRICS])
    for name, found in sets.items():
        for key, runs in sorted(found.items(), key=lambda kv: label(kv[0])):
            for r in sorted(runs, key=lambda r: (r["seed"], r["fold"])):
                table.writerow([name, label(key), r["seed"], r["fold"], *(r.get(m) for m in METRICS)])
    write_atomic(stem.with_suffix(".csv"), lambda p: Path(p).write_text(buf.getvalue()))
    fig, axes = plt.subplots(1, len(sets), figsize=(7.6 * len(sets), 5.0), layout="constrained", squeeze=False)
    for ax, (name, found) in zip(axes[0], sets.items(), strict=True):
        default = summarise(found[(*DEFAULTS.values(), None)])
        copy_target = default["gen_prior_copy_share"][0] / 2
        order = sorted(found, key=lambda k: (label(k) != BASELINE, label(k)))
        families = sorted({family(k) for k in order}, key=lambda f: (f != BASELINE, f))
        shown: set[str] = set()
        for key in order:
            fam = families.index(family(key))
            s = summarise(found[key])
            f1, oa, copies = (s[m][0] for m in ("train_onset_f1", "gen_prior_summary_oa_mean", "gen_prior_copy_share"))
            meets = f1 >= F1_TARGET and oa >= OA_TARGET and copies <= copy_target
            lines.append(
                f"| {name} | {label(key)} | {len(found[key])} | "
                + " | ".join(f"{m:.3f} ± {(hi - lo) / 2:.3f}" if math.isfinite(m) else "–" for m, lo, hi in s.values())
                + f" | {'yes' if meets else 'no'} |"
            )
            (mx, lx, hx), (my, ly, hy) = s["gen_prior_copy_share"], s["gen_prior_summary_oa_mean"]
            ax.errorbar(
                mx,
                my,
                xerr=[[mx - lx], [hx - mx]],
                yerr=[[my - ly], [hy - my]],
                fmt="s" if fam == 0 else "o",
                color="black" if fam == 0 else f"C{fam % 10}",
                capsize=2,
                alpha=0.85,
                markerfacecolor="none" if f1 < F1_TARGET else None,
                label=None if family(key) in shown else family(key),
            )
            shown.add(family(key))
            ax.annotate(label(key), (mx, my), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.fill_between([0, copy_target], OA_TARGET, 1.0, color="C2", alpha=0.12, label="targets (F1 ≥ 0.95 too)")
        ax.set_xlim(left=0)
        ax.set_ylim(min(0.3, ax.get_ylim()[0]), 0.85)
        ax.set_xlabel("prior samples that copy a training loop (share)")
        ax.set_ylabel("prior samples: mean OA against the training loops")
        ax.set_title(f"{name}: mean ± 95 % CI over seeds x folds (hollow: training F1 < 0.95)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    write_atomic(stem.with_suffix(".md"), lambda p: Path(p).write_text("\n".join(lines) + "\n"))
    for ext in ("png", "svg"):

        def write(tmp: str, ext: str = ext) -> None:
            fig.savefig(tmp, format=ext, dpi=150)

        write_atomic(stem.with_suffix(f".{ext}"), write)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
