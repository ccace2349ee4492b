"""Experiments: a grid of settings x seeds x folds of the files, run in parallel, resumable.

A TOML file describes the study; paths in it are relative to the file::

    data = ["../shared/data/groove-clips/medium"]   # MIDI files and folders
    seeds = [0, 1, 2]
    folds = 3            # k-fold cross-validation over the FILES; or: holdout = 0.25
    split_seed = 0       # which files land in which fold (the same for every run)
    jobs = 2             # worker processes (default: the CPU's cores)
    generation = true    # generation figures from rvae.judge, when it is installed
    figures = true       # matplotlib figures and paired statistics (the extra rvae[research])
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

Where runs execute is a backend (``runner.Backend``): ``LocalPool(jobs)`` (processes on this
machine, the default) or ``ray_backend.RayBackend`` (Ray tasks on a local Ray or a cluster,
``rvae experiment --ray``). The runner alone decides what runs and writes every file, so
results, resume and failed rows are the same on either.

The report: ``summary.md`` (mean ± std per setting, then every pair of settings compared on
the same seeds and folds, ``rvae.stats.paired``) and ``figures/`` (one PNG and SVG per
metric, mean ± 95 % CI, and a sheet of them all).
"""

from rvae.experiment.config import ExperimentConfig, ExperimentError, load_experiment, parse_experiment
from rvae.experiment.report import paired_markdown, plot_results, summary_markdown
from rvae.experiment.runner import (
    Backend,
    ExperimentResult,
    LocalPool,
    Run,
    expand_runs,
    failed_row,
    run_experiment,
    run_one,
)

__all__ = [
    "Backend",
    "ExperimentConfig",
    "ExperimentError",
    "ExperimentResult",
    "LocalPool",
    "Run",
    "expand_runs",
    "failed_row",
    "load_experiment",
    "paired_markdown",
    "parse_experiment",
    "plot_results",
    "run_experiment",
    "run_one",
    "summary_markdown",
]
