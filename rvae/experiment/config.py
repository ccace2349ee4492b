"""An experiment's TOML file, read and checked before anything runs: ``load_experiment``
gives an ExperimentConfig or raises an ExperimentError naming the key at fault."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from rvae.dataset import DataConfig, find_midi_files
from rvae.errors import ConfigError, UserError
from rvae.kit import KITS, load_kit
from rvae.model import VAEConfig
from rvae.train import TrainConfig

__all__ = ["SETTING_TYPES", "ExperimentConfig", "ExperimentError", "load_experiment", "parse_experiment"]

CONFIGS = (DataConfig, VAEConfig, TrainConfig)
# Fields that are not settings: the grid and kit decide the model's shape, ``seeds`` the seed.
NOT_SETTINGS = {"instruments", "steps", "seed"}
# Settings of the experiment itself, with their types and defaults.
EXTRA: dict[str, tuple[type, object]] = {"microtiming": (bool, True), "files": (int, None)}
TOP_KEYS = {
    "data",
    "seeds",
    "folds",
    "holdout",
    "split_seed",
    "jobs",
    "output",
    "generation",
    "figures",
    "fixed",
    "grid",
}


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
    # matplotlib figures and paired statistics in summary.md (scipy): the extra rvae[research]
    figures: bool = True

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
                cls(**{name: value})  # type: ignore[arg-type]  # its type is checked above
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
    if "data" not in raw:
        raise ExperimentError(f'{source.name}: no data: give the MIDI files and folders, e.g. data = ["loops/"]')
    if "grid" not in raw:
        raise ExperimentError(
            f"{source.name}: no [grid] table: name at least one setting to vary, e.g. steps_per_quarter = [4, 24]"
        )

    data = raw["data"]
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(d, str) for d in data):
        raise ExperimentError('data: a list of MIDI files and folders, e.g. data = ["loops/"]')
    paths = [(base / d).resolve() for d in data]
    for d, p in zip(data, paths, strict=True):
        if not p.exists():
            where = "" if str(p) == d else f" ({p})"  # a relative path: say where it was looked for
            raise ExperimentError(f"data: {d}{where} does not exist")

    holdout = raw.get("holdout")
    folds = raw.get("folds", None if holdout is not None else 3)

    def scalar(key: str, t: type, default):
        v = raw.get(key, default)
        if key in raw:
            _check_value(key, v, t)
        return v

    split_seed = scalar("split_seed", int, 0)
    generation = scalar("generation", bool, True)
    figures = scalar("figures", bool, True)
    jobs = jobs if jobs is not None else scalar("jobs", int, os.cpu_count() or 1)
    output = scalar("output", str, None)
    out = (base / output).resolve() if output else base / f"{source.stem}_results"

    grid = _settings_table(raw["grid"], "grid", True, base)
    fixed = _settings_table(raw.get("fixed", {}), "fixed", False, base)
    seeds = raw.get("seeds", [0])
    cfg = ExperimentConfig(
        paths, seeds, grid, fixed, folds, holdout, split_seed, jobs, generation, out, source, figures
    )
    files, _ = find_midi_files([*cfg.data])
    n_test = folds or 1
    if len(files) < n_test + 1:
        raise ExperimentError(
            f"data: {len(files)} MIDI file(s) in {', '.join(data)}; the split needs at least {n_test + 1}"
        )
    return cfg
