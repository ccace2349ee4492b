"""Experiments: a grid of settings x seeds x folds of the files, run in parallel, resumable.

A TOML file describes the study; paths in it are relative to the file::

    data = ["../shared/data/groove-clips/medium"]   # MIDI files and folders
    seeds = [0, 1, 2]
    folds = 3            # k-fold cross-validation over the FILES; or: holdout = 0.25
    split_seed = 0       # which files land in which fold (the same for every run)
    jobs = 2             # worker processes (default: the CPU's cores)
    generation = true    # generation figures from rvae.judge, when it is installed
    # output = "study_results"   # default: <config stem>_results/ next to the config

    [fixed]              # settings shared by every run
    epochs = 300

    [grid]               # settings that vary: every combination is run
    steps_per_quarter = [4, 12, 24]

Keys of ``[fixed]`` and ``[grid]`` are the fields of DataConfig, VAEConfig and TrainConfig
under the same names (as the flags of ``rvae train``), plus ``microtiming`` (false: offsets
zeroed for training and evaluation) and ``files`` (how many of the fold's training files
to use, as in a learning curve; drawn with the run's seed).

Files, never loops, are split: loops of one file are on one side only, since bars of one
performance are near copies of each other and would flatter held-out figures.

Each run has an id, a hash of everything that decides its figures, so a second call skips
what ``results.json`` already holds; results are rewritten atomically after every run, so
an interruption loses only the runs in flight. A run that raises is recorded as failed,
with its reason, and the others go on.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import math
import os
import time
import tomllib
import types
import typing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from rvae.dataset import DataConfig, find_midi_files, load_dataset, load_loops
from rvae.errors import ConfigError, UserError
from rvae.files import json_clean, save_surface, write_atomic
from rvae.kit import KITS, load_kit
from rvae.model import VAEConfig
from rvae.train import TrainConfig

__all__ = [
    "ExperimentConfig",
    "ExperimentError",
    "ExperimentResult",
    "Run",
    "expand_runs",
    "load_experiment",
    "parse_experiment",
    "run_experiment",
    "run_one",
    "summary_markdown",
]

logger = logging.getLogger(__name__)

CONFIGS = (DataConfig, VAEConfig, TrainConfig)
# Fields that are not settings: the grid and kit decide the model's shape, ``seeds`` the seed.
NOT_SETTINGS = {"instruments", "steps", "seed"}
# Settings of the experiment itself, with their types and defaults.
EXTRA: dict[str, tuple[type, object]] = {"microtiming": (bool, True), "files": (int, None)}
TOP_KEYS = {"data", "seeds", "folds", "holdout", "split_seed", "jobs", "output", "generation", "fixed", "grid"}


class ExperimentError(UserError):
    """A config that cannot be run; the message names the key or path at fault."""


def _setting_types() -> dict[str, type]:
    """Setting name -> the Python type its TOML value must have (None dropped from X | None)."""
    out: dict[str, type] = {}
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in NOT_SETTINGS:
                continue
            t = hints[f.name]
            if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
                t = next(a for a in typing.get_args(t) if a is not type(None))
            out[f.name] = t
    for name, (t, _) in EXTRA.items():
        out[name] = t
    return out


SETTING_TYPES = _setting_types()


@dataclass
class ExperimentConfig:
    data: list[Path]  # MIDI files and folders, resolved against the config's folder
    seeds: list[int]
    grid: dict[str, list]  # varied settings, in the config's order
    fixed: dict[str, object] = field(default_factory=dict)  # settings shared by every run
    folds: int | None = 3  # k-fold over files; None when holdout is given
    holdout: float | None = None  # share of files held out (one split)
    split_seed: int = 0  # the file split is the same for every run: seeds vary training only
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    generation: bool = True  # generation figures from rvae.judge, if it imports
    output: Path = Path("experiment_results")
    source: Path | None = None  # the TOML file

    def __post_init__(self) -> None:
        # Field names are the TOML's keys, so each message names the key at fault.
        if not isinstance(self.seeds, list) or not self.seeds:
            raise ExperimentError("seeds: a non-empty list of integers, e.g. seeds = [0, 1, 2]")
        for s in self.seeds:
            if not _is_int(s) or s < 0:
                raise ExperimentError(f"seeds: {s!r} is not an integer of at least 0")
        if len(set(self.seeds)) < len(self.seeds):
            raise ExperimentError(f"seeds: a seed is repeated in {self.seeds!r}")
        if self.folds is not None and self.holdout is not None:
            raise ExperimentError("folds, holdout: give one of them, not both")
        if self.holdout is not None and not (_is_number(self.holdout) and 0 < self.holdout < 1):
            raise ExperimentError(f"holdout: {self.holdout!r} is not a share of the files between 0 and 1")
        if self.holdout is None and not (_is_int(self.folds) and self.folds >= 2):  # type: ignore[operator]
            raise ExperimentError(f"folds: {self.folds!r} is not an integer of at least 2")
        if not _is_int(self.split_seed) or self.split_seed < 0:
            raise ExperimentError(f"split_seed: {self.split_seed!r} is not an integer of at least 0")
        if not _is_int(self.jobs) or self.jobs < 1:
            raise ExperimentError(f"jobs: {self.jobs!r} must be at least 1")
        if not self.grid:
            raise ExperimentError("grid: empty: name at least one setting to vary, e.g. steps_per_quarter = [4, 24]")
        both = set(self.grid) & set(self.fixed)
        if both:
            raise ExperimentError(f"{sorted(both)[0]}: in both [fixed] and [grid]")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # bool is an int to Python, never to a config reader


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True)
class Run:
    """One training: the settings of one grid cell, a seed and a fold."""

    settings: dict  # every setting (fixed and varied) by name
    seed: int
    fold: int
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    split: str  # "3-fold" or "holdout 0.25", for the table

    @property
    def id(self) -> str:
        # Everything that decides the figures, so a changed config never reuses an old row.
        key = {
            "settings": self.settings,
            "seed": self.seed,
            "fold": self.fold,
            "split": self.split,
            "train": [Path(f).name for f in self.train_files],
            "test": [Path(f).name for f in self.test_files],
        }
        return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------- config


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(t, t.__name__)


def _check_value(key: str, value: object, t: type) -> None:
    # bool is an int to Python, never to a config reader; an int is a fine float.
    if t is bool:
        ok = isinstance(value, bool)
    else:
        ok = not isinstance(value, bool) and isinstance(value, int | float if t is float else t)
    if not ok:
        raise ExperimentError(f"{key}: {value!r} is not {_type_name(t)}")
    name = key.rsplit(".", 1)[-1]
    if name == "files" and value < 1:  # type: ignore[operator]
        raise ExperimentError(f"{key}: {value!r} must be at least 1")
    for cls in CONFIGS:  # the config's own check, with its message, named by the TOML key
        if name in {f.name for f in dataclasses.fields(cls)}:
            try:
                cls(**{name: value})
            except ConfigError as e:
                raise ExperimentError(f"{key}: {value!r} {e.problem}") from None
    if name == "kit" and str(value) not in KITS:
        try:
            load_kit(str(value))  # a kit file's contents; it is resolved against the config before this
        except UserError as e:
            raise ExperimentError(f"{key}: {e}") from None


def _settings_table(raw: object, section: str, is_grid: bool, base: Path) -> dict:
    if not isinstance(raw, dict):
        raise ExperimentError(f"[{section}] must be a table of settings")
    out: dict = {}
    for name, value in raw.items():
        key = f"{section}.{name}"
        if name == "seed":
            raise ExperimentError(f"{key}: give seeds as the top-level list 'seeds'")
        if name not in SETTING_TYPES:
            raise ExperimentError(f"{key}: unknown setting (known: {', '.join(sorted(SETTING_TYPES))})")
        values = value if is_grid else [value]
        if is_grid:
            if not isinstance(value, list):
                raise ExperimentError(f"{key}: a grid setting is a list of values, e.g. {name} = [{value!r}]")
            if not value:
                raise ExperimentError(f"{key}: empty list: give at least one value")
        if name == "kit":  # a kit file is relative to the config, like the data
            values = [str((base / v).resolve()) if isinstance(v, str) and v not in KITS else v for v in values]
        for v in values:
            _check_value(key, v, SETTING_TYPES[name])
        if is_grid and len({json.dumps(v) for v in values}) < len(values):
            raise ExperimentError(f"{key}: a value is repeated in {values!r}")
        out[name] = values if is_grid else values[0]
    return out


def load_experiment(path: str | Path, jobs: int | None = None) -> ExperimentConfig:
    """Read and check a TOML experiment; raises ExperimentError before anything is run."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExperimentError(f"{path}: cannot be read ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ExperimentError(f"{path}: not valid TOML ({e})") from None
    return parse_experiment(raw, path, jobs)


def parse_experiment(raw: dict, source: Path, jobs: int | None = None) -> ExperimentConfig:
    """The checks of load_experiment on an already-parsed table (``source`` anchors paths)."""
    base = source.resolve().parent
    for key in raw:
        if key not in TOP_KEYS:
            raise ExperimentError(
                f"{key}: unknown key (known: {', '.join(sorted(TOP_KEYS))}; settings go in [fixed] or [grid])"
            )
    for key in ("data", "grid"):
        if key not in raw:
            raise ExperimentError(f"{key}: missing")

    data = raw["data"]
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(d, str) for d in data):
        raise ExperimentError('data: a list of MIDI files and folders, e.g. data = ["loops/"]')
    paths = [(base / d).resolve() for d in data]
    for d, p in zip(data, paths, strict=True):
        if not p.exists():
            raise ExperimentError(f"data: {d} ({p}) does not exist")

    holdout = raw.get("holdout")
    folds = raw.get("folds", None if holdout is not None else 3)

    def scalar(key: str, t: type, default):
        v = raw.get(key, default)
        if key in raw:
            _check_value(key, v, t)
        return v

    split_seed = scalar("split_seed", int, 0)
    generation = scalar("generation", bool, True)
    jobs = jobs if jobs is not None else scalar("jobs", int, os.cpu_count() or 1)
    output = scalar("output", str, None)
    out = (base / output).resolve() if output else base / f"{source.stem}_results"

    grid = _settings_table(raw["grid"], "grid", True, base)
    fixed = _settings_table(raw.get("fixed", {}), "fixed", False, base)
    seeds = raw.get("seeds", [0])
    cfg = ExperimentConfig(paths, seeds, grid, fixed, folds, holdout, split_seed, jobs, generation, out, source)
    files, _ = find_midi_files(cfg.data)
    n_test = folds or 1
    if len(files) < n_test + 1:
        raise ExperimentError(
            f"data: {len(files)} MIDI file(s) in {', '.join(data)}; the split needs at least {n_test + 1}"
        )
    return cfg


# ---------------------------------------------------------------------------------- runs


def split_files(files: list[Path], cfg: ExperimentConfig) -> list[tuple[list[Path], list[Path]]]:
    """(train files, held-out files) per fold; one pair with a holdout."""
    order = [files[i] for i in np.random.default_rng(cfg.split_seed).permutation(len(files))]
    if cfg.holdout is not None:
        n_test = min(len(files) - 1, max(1, round(len(files) * cfg.holdout)))
        return [(sorted(order[n_test:]), sorted(order[:n_test]))]
    k = cfg.folds or 3
    return [(sorted(f for j, f in enumerate(order) if j % k != i), sorted(order[i::k])) for i in range(k)]


def expand_runs(cfg: ExperimentConfig) -> list[Run]:
    """Grid x seeds x folds, in a stable order: settings outermost, so early results cover
    every fold of the first settings."""
    files, _ = find_midi_files(cfg.data)
    splits = split_files(sorted(files), cfg)
    split = f"holdout {cfg.holdout:g}" if cfg.holdout is not None else f"{cfg.folds}-fold"
    keys = list(cfg.grid)
    runs = []
    for values in itertools.product(*(cfg.grid[k] for k in keys)):
        settings = {**cfg.fixed, **dict(zip(keys, values, strict=True))}
        for seed in cfg.seeds:
            for fold, (tr, te) in enumerate(splits):
                runs.append(Run(settings, seed, fold, tuple(map(str, tr)), tuple(map(str, te)), split))
    return runs


def _configs(settings: dict, seed: int) -> tuple[DataConfig, VAEConfig, TrainConfig]:
    def pick(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    return pick(DataConfig), pick(VAEConfig), dataclasses.replace(pick(TrainConfig), seed=seed)


def _no_microtiming(loops: list) -> list:
    # Offsets zeroed on both sides: the model is then asked about the grid only.
    return [dataclasses.replace(g, offsets=np.zeros_like(g.offsets)) for g in loops]


# Echoes of judge's arguments and per-descriptor details: kept in generation/<id>.json, out
# of the one-line-per-run tables (the descriptors alone would add ~270 columns).
GEN_DROP = {
    "loops",
    "n_samples",
    "map_size",
    "seed",
    "threshold",
    "bpm",
    "meter",
    "descriptors",
    "cell_spacing",
    "cells",
}


def _flatten(prefix: str, d: dict) -> dict:
    """Numeric scalars of a nested judge report as prefix_key columns, without GEN_DROP."""
    out: dict = {}
    for k, v in d.items():
        name = f"{prefix}_{k}"
        if k in GEN_DROP:
            continue
        if isinstance(v, dict):
            out.update(_flatten(name, v))
        elif isinstance(v, bool | int | float | np.integer | np.floating):
            out[name] = float(v) if isinstance(v, float | np.floating) else int(v)
    return out


def run_one(run: Run, generation: bool = True) -> dict:
    """Train and evaluate one run; returns its row. Never raises: a failure is a row too."""
    from rvae.metrics import evaluate
    from rvae.train import train

    t0 = time.perf_counter()
    row: dict = {
        "id": run.id,
        "status": "ok",
        "error": "",
        **run.settings,
        "seed": run.seed,
        "fold": run.fold,
        "split": run.split,
    }
    try:
        dc, mc, tc = _configs(run.settings, run.seed)
        train_files = list(run.train_files)
        n = run.settings.get("files")
        if n is not None:
            if n > len(train_files):
                raise ValueError(f"files = {n}, but the fold has only {len(train_files)} training files")
            # A learning curve's subset is drawn with the run's seed: the seeds' spread covers
            # which files were chosen as well as the initialisation.
            pick = np.random.default_rng(run.seed).permutation(len(train_files))[:n]
            train_files = sorted(train_files[i] for i in pick)
        ds = load_dataset(train_files, dc)
        if not ds.loops:
            raise ValueError(
                f"no training loops: {len(ds.skipped)} of {len(train_files)} files skipped"
                + (f" (e.g. {ds.skipped[0][1]})" if ds.skipped else "")
            )
        # Held-out files are read on the training grid, whatever meter they would vote for, and
        # as `rvae eval` reads them (rvae.metrics.eval_loops): the same min_onsets as training.
        test = load_loops(list(run.test_files), ds.grid, ds.kit, dc.force_meter, dc.min_onsets)
        if not test.loops:
            raise ValueError(
                f"no held-out loops: {len(test.skipped)} of {len(run.test_files)} files skipped"
                + (f" (e.g. {test.skipped[0][1]})" if test.skipped else "")
            )
        microtiming = run.settings.get("microtiming", True)
        if not microtiming:
            ds.loops, test.loops = _no_microtiming(ds.loops), _no_microtiming(test.loops)
        ckpt = train(ds, mc, tc, progress=False)
        held = evaluate(ckpt, test.loops)
        if not microtiming:
            held["timing_mae_ms"] = float("nan")  # both sides are on the grid: nothing was measured
        row |= {
            "train_files": len(ds.files),
            "train_loops": len(ds.loops),
            "heldout_files": len(test.files),
            "epochs": ckpt.summary.epochs,
        }
        row |= {f"heldout_{k}": v for k, v in held.items()}
        row["train_onset_f1"] = evaluate(ckpt, ds.loops)["onset_f1"]
        if generation:
            try:
                from rvae.judge import judge

                report = judge(ckpt, ds.loops, seed=run.seed)
                row |= _flatten("gen", report)
                row["_generation_report"] = report  # the parent writes it to generation/<id>.json
                row["generation"] = "ok"
            except ImportError as e:
                row["generation"] = f"missing (rvae.judge: {e})"
            except Exception as e:  # judge's failure must not void the reconstruction figures
                row["generation"] = f"failed: {type(e).__name__}: {e}"
        else:
            row["generation"] = "off"
    except Exception as e:  # any failure becomes a row, the others go on
        row["status"] = "failed"
        row["error"] = f"{type(e).__name__}: {e}"
        logger.debug("run %s failed", run.id, exc_info=True)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["finished_at"] = datetime.now().isoformat(sep=" ", timespec="milliseconds")
    return row


def _worker_init() -> None:
    # One thread per worker: torch's default (every core) oversubscribes the CPU when
    # several workers each start as many threads as there are cores.
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------- output


def _read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExperimentError(f"{path}: cannot be read to resume ({e}); move it away to start again") from None
    return rows if isinstance(rows, list) else []


def _write_results(out: Path, rows: list[dict]) -> None:
    rows = [json_clean(r, digits=5) for r in rows]  # type: ignore[misc]
    write_atomic(out / "results.json", lambda p: Path(p).write_text(json.dumps(rows, indent=1) + "\n"))
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "results.csv", lambda p: Path(p).write_text(buf.getvalue()))


# Headline figures first: the table is read left to right.
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


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ---------------------------------------------------------------------------------- runner


@dataclass
class ExperimentResult:
    rows: list[dict]  # every row of the config's runs, in run order
    ran: int  # runs trained by this call (0 when everything was already done)
    skipped: int  # runs found finished in results.json
    output: Path
    notes: list[str] = field(default_factory=list)  # plots, generation availability


def _judge_available() -> str:
    try:
        import rvae.judge  # noqa: F401
    except Exception as e:  # any import failure means: not available
        return f"missing (rvae.judge does not import: {type(e).__name__}: {e})"
    return "ok"


def run_experiment(
    cfg: ExperimentConfig, report: Callable[[str], None] | None = None, retry_failed: bool = False
) -> ExperimentResult:
    """Run every run of ``cfg`` not already in ``<output>/results.json``; write results,
    plots and summary.md. ``report(line)`` hears of each finished run."""
    say = report or (lambda line: None)
    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    runs = expand_runs(cfg)
    ids = [r.id for r in runs]
    by_id = {r["id"]: r for r in _read_results(out / "results.json") if isinstance(r, dict) and "id" in r}
    done = {i for i in ids if i in by_id and (by_id[i].get("status") == "ok" or not retry_failed)}
    todo = [r for r in runs if r.id not in done]
    generation = cfg.generation
    notes = []
    if generation:
        avail = _judge_available()
        if avail != "ok":
            generation = False
            notes.append(f"generation figures: {avail}")
    say(
        f"{len(runs)} runs: {len(done)} already done, {len(todo)} to run on {min(cfg.jobs, len(todo) or 1)} "
        f"worker(s); results in {out}"
    )

    def finish(row: dict) -> None:
        if not generation and cfg.generation and row.get("status") == "ok":
            row["generation"] = notes[0].split(": ", 1)[1]
        report = row.pop("_generation_report", None)
        if report is not None:
            text = json.dumps(report, indent=1) + "\n"
            write_atomic(out / "generation" / f"{row['id']}.json", lambda p: Path(p).write_text(text))
        by_id[row["id"]] = row
        # Rows of runs this config no longer has stay in the file (never throw work away);
        # tables and plots use the config's runs only.
        _write_results(out, [by_id[i] for i in ids if i in by_id] + [r for k, r in by_id.items() if k not in ids])
        n = sum(1 for i in ids if i in by_id)
        what = (
            f"failed: {row['error']}"
            if row["status"] != "ok"
            else (f"held-out F1 {row.get('heldout_onset_f1', float('nan')):.3f}")
        )
        say(
            f"[{n}/{len(runs)}] {row['id']} {', '.join(f'{k}={row.get(k)}' for k in cfg.grid)} seed {row['seed']} "
            f"fold {row['fold']}: {what} ({row['seconds']:.1f} s)"
        )

    if todo and cfg.jobs == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same arithmetic as a worker: same figures either way
        try:
            for run in todo:
                finish(run_one(run, generation))
        finally:
            torch.set_num_threads(threads)
    elif todo:
        # spawn, not fork: a forked child of a process that already ran torch can hang on
        # its inherited thread pool.
        with ProcessPoolExecutor(min(cfg.jobs, len(todo)), get_context("spawn"), initializer=_worker_init) as pool:
            pending: set[Future] = {pool.submit(run_one, run, generation) for run in todo}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        finish(fut.result())
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise

    rows = [by_id[i] for i in ids if i in by_id]
    _, note = plot_results(cfg, rows, out)
    notes.append(note)
    md = summary_markdown(cfg, rows) + "\n" + "\n".join(notes) + "\n"
    write_atomic(out / "summary.md", lambda p: Path(p).write_text(md))
    return ExperimentResult(rows, len(todo), len(done), out, notes)
