"""The defaults trade-off as one figure: prior OA against the share of prior samples that copy a
training loop, one point (mean ± 95 % CI over seeds and folds) per setting of each study, with
the issue's targets drawn in. Reads the studies' results.json; writes PNG and SVG.

    .venv/bin/python scripts/plot_tradeoff.py OUT_STEM RESULTS_DIR[:LABEL] ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rvae.experiment.report import require_matplotlib  # noqa: E402
from rvae.files import write_atomic  # noqa: E402
from rvae.stats import mean_ci  # noqa: E402

X, Y = "gen_prior_copy_share", "gen_prior_summary_oa_mean"
SETTINGS = ("beta", "kl_warmup", "epochs")
MIN_RUNS = 6  # cells with fewer runs (an interrupted setting) are left out


def main() -> None:
    stem, studies = Path(sys.argv[1]), sys.argv[2:]
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for i, spec in enumerate(studies):
        folder, _, label = spec.partition(":")
        rows = [r for r in json.loads(Path(folder, "results.json").read_text()) if r.get("status") == "ok"]
        cells: dict[tuple, list[dict]] = {}
        for r in rows:
            cells.setdefault(tuple((k, r.get(k)) for k in SETTINGS if k in r), []).append(r)
        cells = {k: v for k, v in cells.items() if len(v) >= MIN_RUNS}
        for key, runs in sorted(cells.items(), key=lambda kv: str(kv[0])):
            mx, lx, hx, _ = mean_ci([r[X] for r in runs])
            my, ly, hy, _ = mean_ci([r[Y] for r in runs])
            ax.errorbar(
                mx,
                my,
                xerr=[[mx - lx], [hx - mx]],
                yerr=[[my - ly], [hy - my]],
                fmt="o",
                color=f"C{i}",
                capsize=2,
                alpha=0.8,
                label=label or folder if key == sorted(cells, key=str)[0] else None,
            )
            ax.annotate(
                ", ".join(f"{k} {v}" for k, v in key), (mx, my), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
    ax.axhline(0.65, color="grey", ls="--", lw=1)
    ax.text(ax.get_xlim()[1], 0.65, " prior OA 0.65", va="bottom", ha="right", fontsize=7, color="grey")
    ax.set_xlabel("prior samples that copy a training loop (share)")
    ax.set_ylabel("prior samples: mean OA against the training loops")
    ax.set_title("copying against fidelity: mean ± 95 % CI over 2 seeds x 3 folds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for ext in ("png", "svg"):

        def write(tmp: str, ext: str = ext) -> None:
            fig.savefig(tmp, format=ext, dpi=150)

        write_atomic(stem.with_suffix(f".{ext}"), write)


if __name__ == "__main__":
    main()
