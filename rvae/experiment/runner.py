"""Running an experiment: the runs (settings x seeds x folds of the files), each trained
and scored in a worker process, their rows kept in results.json/results.csv so a second call
resumes."""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

import numpy as np

from rvae.dataset import DataConfig, Dataset, find_midi_files, load_dataset, load_loops
from rvae.experiment.config import ExperimentConfig, ExperimentError
from rvae.experiment.report import plot_results, require_research, summary_markdown
from rvae.files import json_clean, write_atomic
from rvae.model import VAEConfig
from rvae.train import TrainConfig

__all__ = [
    "Backend",
    "ExperimentResult",
    "LocalPool",
    "Run",
    "expand_runs",
    "failed_row",
    "run_experiment",
    "run_one",
    "split_files",
]

logger = logging.getLogger(__name__)


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
    files, _ = find_midi_files([*cfg.data])
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


def _no_loops(side: str, ds: Dataset, n_files: int) -> ValueError:
    example = f" (e.g. {ds.skipped[0][1]})" if ds.skipped else ""
    return ValueError(f"no {side} loops: {len(ds.skipped)} of {n_files} files skipped{example}")


def _row(run: Run) -> dict:
    return {
        "id": run.id,
        "status": "ok",
        "error": "",
        **run.settings,
        "seed": run.seed,
        "fold": run.fold,
        "split": run.split,
    }


def failed_row(run: Run, error: str, seconds: float = 0.0) -> dict:
    """The row of a run that did not finish (it raised, its node was lost, its data was
    missing): the run's settings, status "failed" and the reason."""
    return _row(run) | {
        "status": "failed",
        "error": error,
        "seconds": round(seconds, 2),
        "finished_at": datetime.now().isoformat(sep=" ", timespec="milliseconds"),
    }


def run_one(run: Run, generation: bool = True) -> dict:
    """Train and evaluate one run; returns its row. A failure is a row too; only an
    interruption (Ctrl-C, even one that train() caught) raises."""
    from rvae.metrics import evaluate
    from rvae.train import train

    t0 = time.perf_counter()
    row = _row(run)
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
        ds = load_dataset([*train_files], dc)
        if not ds.loops:
            raise _no_loops("training", ds, len(train_files))
        # Held-out files are read on the training grid, whatever meter they would vote for, and
        # as `rvae eval` reads them (rvae.metrics.eval_loops): the same min_onsets as training.
        test = load_loops(list(run.test_files), ds.grid, ds.kit, dc.force_meter, dc.min_onsets)
        if not test.loops:
            raise _no_loops("held-out", test, len(run.test_files))
        microtiming = run.settings.get("microtiming", True)
        if not microtiming:
            ds.loops, test.loops = _no_microtiming(ds.loops), _no_microtiming(test.loops)
        ckpt = train(ds, mc, tc, progress=False)
        if ckpt.summary.interrupted:
            # train() keeps the best model so far on Ctrl-C, as `rvae train` wants; a study
            # must not keep a half-trained run as done: stop, and resume runs it again.
            raise KeyboardInterrupt
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


def _worker_init(study: int) -> None:
    if sys.platform == "linux":
        # End with the study: a parent killed by SIGTERM or SIGKILL (only Ctrl-C reaches the
        # workers too) left them training for nobody, each holding a core.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != study:  # it died while this worker was starting
            os._exit(1)
    # One thread per worker: torch's default (every core) oversubscribes the CPU when
    # several workers each start as many threads as there are cores.
    import torch

    torch.set_num_threads(1)


def _read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExperimentError(f"{path}: cannot be read to resume ({e}); move it away to start again") from None
    return rows if isinstance(rows, list) else []


def _write_results(out: Path, rows: list[dict]) -> None:
    rows = [json_clean(r, digits=5) for r in rows]
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


class Backend(Protocol):
    """Where runs execute. The runner decides what to run and writes every result; a backend
    only calls ``run_one`` (or returns a ``failed_row``) for each run and hands each row to
    ``finish`` as it arrives, in any order. On an interruption it stops what it can and
    re-raises: rows already handed over are kept."""

    def where(self, n: int) -> str: ...  # "2 worker(s)", for the first line

    def execute(self, runs: list[Run], generation: bool, finish: Callable[[dict], None]) -> None: ...


@dataclass
class LocalPool:
    """Runs in this process (jobs = 1) or in ``jobs`` spawned worker processes, one torch
    thread each."""

    jobs: int

    def where(self, n: int) -> str:
        return f"{min(self.jobs, n or 1)} worker(s)"

    def execute(self, runs: list[Run], generation: bool, finish: Callable[[dict], None]) -> None:
        if self.jobs == 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # the same arithmetic as a worker: same figures either way
            try:
                for run in runs:
                    finish(run_one(run, generation))
            finally:
                torch.set_num_threads(threads)
            return
        # spawn, not fork: a forked child of a process that already ran torch can hang on
        # its inherited thread pool.
        with ProcessPoolExecutor(
            min(self.jobs, len(runs)), get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),)
        ) as pool:
            pending: set[Future] = {pool.submit(run_one, run, generation) for run in runs}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        finish(fut.result())
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise


def run_experiment(
    cfg: ExperimentConfig,
    report: Callable[[str], None] | None = None,
    retry_failed: bool = False,
    backend: Backend | None = None,
) -> ExperimentResult:
    """Run every run of ``cfg`` not already in ``<output>/results.json`` on ``backend``
    (default: ``LocalPool(cfg.jobs)``); write results, plots and summary.md.
    ``report(line)`` hears of each finished run."""
    say = report or (lambda line: None)
    backend = backend or LocalPool(cfg.jobs)
    if cfg.figures:
        require_research()  # before any run: a missing extra must not cost a study's time
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
        f"{len(runs)} runs: {len(done)} already done, {len(todo)} to run on {backend.where(len(todo))}; "
        f"results in {out}"
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

    if todo:
        backend.execute(todo, generation, finish)

    rows = [by_id[i] for i in ids if i in by_id]
    if cfg.figures:
        _, note = plot_results(cfg, rows, out)
        notes.append(note)
    md = summary_markdown(cfg, rows) + "\n" + "\n".join(notes) + "\n"
    write_atomic(out / "summary.md", lambda p: Path(p).write_text(md))
    return ExperimentResult(rows, len(todo), len(done), out, notes)
