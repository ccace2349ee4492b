"""The ``rvae`` command: a thin layer over the library. Every option of train maps onto one
field of DataConfig, VAEConfig or TrainConfig, under the same name."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import sys
import types
import typing
from collections.abc import Callable
from importlib.metadata import entry_points, version
from pathlib import Path

import numpy as np

from rvae.checkpoint import load_checkpoint
from rvae.dataset import DataConfig, find_midi_files
from rvae.errors import ConfigError, UserError, shown
from rvae.files import json_clean
from rvae.latent import MAP_EXTENT
from rvae.midi_io import MidiReadError, write_midi
from rvae.model import VAEConfig
from rvae.picture import MIN_CELL
from rvae.text import counted
from rvae.train import NoDataError, TrainConfig

HELP = {
    "time_signature": "the model's meter, e.g. 6/8 (default: the most common meter of the files)",
    "steps_per_quarter": "grid resolution; 24 = one step per MIDI clock pulse",
    "bars": "bars per loop",
    "kit": "drum map: default, rvae, mpc, mpk, maschine, battery, or a .toml/.json file",
    "force_meter": "read every file in the model's meter, ignoring its time signature",
    "min_onsets": "drop loops with fewer hits",
    "min_loops": "duplicate smaller sets up to this many loops",
    "hidden": "width of the hidden layers",
    "latent_dim": "size of z (2 = a plane to perform on)",
    "w_velocity": "weight of the velocity error",
    "w_offset": "weight of the microtiming error",
    "epochs": "passes over the data (default: see --updates)",
    "max_seconds": "stop after this many seconds, keeping the best model",
    "batch_size": "at most this many loops per optimiser step (an epoch splits into equal batches)",
    "val_fraction": "share of files held out for validation",
    "min_val_loops": "hold out files only with at least this many loops",
    "patience": "with validation, stop after this many epochs without improvement",
    "seed": "random seed: same seed, same model on the same machine",
    "device": "cpu, or cuda where available",
    "threads": "torch threads for training; 1 leaves the other cores free and, when they are busy, trains fastest",
}
SKIP = {"instruments", "steps"}  # VAEConfig fields that come from the grid and kit
MAX_GRID = 64  # generate --grid: 4,096 clips; more only with --force (500 once wrote 250,000 files, 990 MB)


def add_config_options(
    parser: argparse.ArgumentParser,
    cls,
    skip: set[str] = SKIP,
    help: dict[str, str] = HELP,
    title: str | None = None,
) -> None:
    """One option per field of the config dataclass ``cls``, named after the field, under the
    heading ``title`` (default: the class name). A field's metadata may hold its ``help``
    (else ``help[name]``) and ``argparse``: settings its type does not imply (choices,
    metavar, nargs, const; a type or default of the option's own). A bool is ``--x`` if it
    defaults to False, ``--no-x`` if it defaults to True, both if it defaults to None; a
    ``tuple[float, float]`` takes two values."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title or cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata.get("help", help.get(f.name))
        extra = dict(f.metadata.get("argparse", {}))
        t = hints[f.name]
        if isinstance(t, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        if t is bool:
            if f.default is None:  # unset means "it depends": both --x and --no-x
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            elif f.default is True:
                group.add_argument(f"--no-{flag[2:]}", dest=f.name, action="store_false", help=text)
            else:
                group.add_argument(flag, action="store_true", help=text)
            continue
        if typing.get_origin(t) is tuple:
            extra.setdefault("nargs", len(typing.get_args(t)))
            t = typing.get_args(t)[0]
        default = extra.pop("default", f.default)
        text = text or ""
        if "(default" not in text:  # some say what their default None means
            text += f" (default: {default})"
        group.add_argument(flag, type=extra.pop("type", t), default=default, help=text.strip(), **extra)


def config_from_args(cls, args: argparse.Namespace, skip: set[str] = SKIP):
    """The config dataclass ``cls`` from the options ``add_config_options`` made for it; a
    field it refuses is named as the flag the user typed."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip})
    except ConfigError as e:
        raise UserError(f"--{e.field.replace('_', '-')} {shown(e.value)}: {e.problem}") from None


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _missing_folder(path: Path) -> Path | None:
    """The outermost folder that writing ``path`` will create (rvae.files makes them), if any."""
    missing = None
    for folder in path.parents:  # nearest first
        if folder.exists():
            break
        missing = folder
    return missing


def _say_created(folder: Path | None) -> None:
    if folder is not None:
        _say(f"created the folder {folder}/")


def _may_write(path: Path, force: bool) -> None:
    """Never overwrite what a user made without asking."""
    if path.exists() and not force:
        if sys.stdin.isatty():
            if input(f"{path} exists. Overwrite it? [y/N] ").strip().lower() in ("y", "yes"):
                return
        raise UserError(f"{path} exists; pass --force to overwrite it")


# With --init training counts its own updates, holds nothing out, warms nothing up and has no
# fit stop (rvae.train.continue_training): these options would be ignored, so they are refused.
NOT_WITH_INIT = ("fit_f1", "kl_warmup", "val_fraction", "min_val_loops", "patience")


def _from_init(args) -> None:
    """With --init the grid, kit, reading and model come from the checkpoint, and training
    continues as continue_training does: refuse the options that would be ignored."""
    for cls in (DataConfig, VAEConfig):
        for f in dataclasses.fields(cls):
            if f.name not in SKIP and getattr(args, f.name) != f.default:
                flag = f"--{'no-' if f.default is True else ''}{f.name.replace('_', '-')}"
                raise UserError(f"{flag}: with --init the data and model settings are {args.init}'s own")
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_WITH_INIT and getattr(args, f.name) != f.default:
            raise UserError(
                f"--{f.name.replace('_', '-')}: with --init training continues without a warm-up, a held-out "
                "share or a fit stop (it counts its own updates: --updates sets them)"
            )


def cmd_train(args) -> int:
    from rvae.train import continue_files, train_files

    # every option checked before a question about the output
    data, model, training = (config_from_args(cls, args) for cls in (DataConfig, VAEConfig, TrainConfig))
    init = None
    if args.init is not None:
        _from_init(args)
        init = load_checkpoint(args.init)
        init.training_loops()  # --no-keep-loops: one sentence before asking about the output
    out = Path(args.output)
    _may_write(out, args.force)
    created = _missing_folder(out)
    if init is not None:
        ckpt = continue_files(init, args.data, out, training, progress=not args.quiet, report=_say)
    else:
        ckpt = train_files(args.data, out, data, model, training, progress=not args.quiet, report=_say)
    s = ckpt.summary
    val = f", validation on {s.val_loops} loops" if s.val_loops else ""
    kept = "the loops fit, kept the model" if s.fit else "best loss"
    _say(
        f"trained {s.epochs} epochs ({s.updates} updates) in {s.seconds:.1f} s, {kept} at epoch {s.best_epoch} "
        f"(loss {s.best_loss}, {s.monitored}{val}); {s.stopped}"
    )
    print(f"wrote {out}")
    _say_created(created)
    if s.interrupted:  # Ctrl-C: the best model so far is written, but say it was cut short
        _say(f"interrupted: kept the best model so far (epoch {s.best_epoch}) in {out}")
        return 130
    return 0


def _check_threshold(args) -> None:
    if not 0 <= args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold:g}: choose 0 to 1 (an onset probability)")


def _check_writing(args) -> None:
    """The options of ``writing``: --bpm (None: the file's) and --microtiming."""
    if args.bpm is not None and not (math.isfinite(args.bpm) and args.bpm > 0):
        raise UserError(f"--bpm {args.bpm:g}: the tempo must be above 0")
    if not 0 <= args.microtiming <= 100:
        raise UserError(f"--microtiming {args.microtiming:g}: choose 0 to 100 (percent)")


def _z_arg(args, ckpt) -> tuple[np.ndarray, int | None]:
    """The latent point to decode, and the seed it was drawn with (None: given by --z)."""
    d = ckpt.model.config.latent_dim
    if args.z is not None:
        if not min(2, d) <= len(args.z) <= d:
            want = f"{d}" if d <= 2 else f"2 to {d}"
            raise UserError(f"--z takes {want} numbers for this model (its z has {d} dimensions)")
        if not all(map(math.isfinite, args.z)):
            raise UserError(f"--z {' '.join(f'{v:g}' for v in args.z)}: give finite numbers")
        return np.array(args.z, np.float32), None
    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(2**31))  # fresh each run
    return np.random.default_rng(seed).standard_normal(d).astype(np.float32), seed


def cmd_generate(args) -> int:
    from rvae.generate import decode_all
    from rvae.latent import grid_names, grid_points

    ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.output)
    _check_threshold(args)
    _check_writing(args)
    if args.loops < 1:
        raise UserError(f"--loops {args.loops}: give 1 or more")
    if args.grid is not None:
        extent = ckpt.extent if args.extent is None else args.extent
        if args.grid < 1:
            raise UserError(f"--grid {args.grid}: give the number of clips per side, 1 or more")
        if not (math.isfinite(extent) and extent > 0):
            raise UserError(f"--extent {extent:g}: give a distance above 0")
        if out.is_file():
            raise UserError(f"--grid writes a folder of clips, but -o {out} is a file")
        pts = grid_points(args.grid, extent).reshape(-1, 2)
        if args.grid > MAX_GRID:
            size = f"{counted(len(pts), 'clip')} ({_grid_bytes(ckpt, args, len(pts), out)})"
            if not args.force:
                raise UserError(
                    f"--grid {args.grid} would write {size} to {out}/; choose {MAX_GRID} or fewer per side, "
                    "or pass --force to write them"
                )
            _say(f"writing {size} to {out}/")
        names = grid_names(args.grid, extent)
        for name in names:
            _may_write(out / name, args.force)
        created = _missing_folder(out / names[0])
        for name, g in zip(names, decode_all(ckpt, pts, args.threshold, args.bpm), strict=True):
            write_midi([g] * args.loops, out / name, args.bpm, microtiming=args.microtiming / 100)
        span = f"over [-{extent:g}, {extent:g}]^2" if args.grid > 1 else "at the centre, z = (0, 0)"
        print(f"wrote {counted(len(pts), 'clip')} ({args.grid}x{args.grid} {span}) to {out}/")
        _say_created(created)
        return 0
    z, seed = _z_arg(args, ckpt)
    _may_write(out, args.force)
    created = _missing_folder(out)
    g = decode_all(ckpt, z, args.threshold, args.bpm)[0]
    write_midi([g] * args.loops, out, args.bpm, microtiming=args.microtiming / 100)
    zs = " ".join(f"{v:.3f}" for v in z)
    drawn = f" (random: --seed {seed} draws it again)" if seed is not None else ""
    print(
        f"wrote {out}: z = ({zs}){drawn}, {counted(g.n_onsets, 'hit')} per loop, "
        f"{counted(args.loops, 'loop')} of {ckpt.grid.meter} at {args.bpm:g} BPM"
    )
    _say_created(created)
    return 0


def _grid_bytes(ckpt, args, clips: int, out: Path) -> str:
    """What ``clips`` clips like the centre's will take: their bytes, and on disk, where each
    file fills whole blocks (250,000 clips of ~140 bytes took 990 MB)."""
    import tempfile

    from rvae.generate import decode_all

    g = decode_all(ckpt, np.zeros(2, np.float32), args.threshold, args.bpm)[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mid"
        write_midi([g] * args.loops, path, args.bpm, microtiming=args.microtiming / 100)
        size = path.stat().st_size
    existing = next(p for p in (out, *out.parents) if p.exists())
    block = os.statvfs(existing).f_bsize
    on_disk = -(-size // block) * block
    return f"{clips * size / 1e6:,.0f} MB of MIDI, about {clips * on_disk / 1e6:,.0f} MB on disk"


def cmd_encode(args) -> int:
    from rvae.latent import encode_files

    ckpt = load_checkpoint(args.checkpoint)
    files, skipped = find_midi_files(args.files)
    rows = encode_files(ckpt, files, args.force_meter, skipped)
    for path, reason in skipped:
        _say(f"skipped {path}: {reason}")
    if not rows:
        raise UserError("nothing to encode: every file given was skipped (above)")
    if args.json:
        print(json.dumps([{"source": g.source, "z": [round(float(v), 4) for v in z]} for g, z in rows], indent=1))
    else:
        for g, z in rows:
            print(f"{g.source}\t" + "\t".join(f"{v:+.3f}" for v in z))
    return 0


def _first_loop(ckpt, path: str, force: bool):
    from rvae.midi_io import read_midi

    try:
        return read_midi(path, ckpt.grid, ckpt.kit, force=force, all_channels=ckpt.all_channels).loops[0]
    except MidiReadError as e:
        raise MidiReadError(f"{path} {e}") from None


def cmd_interpolate(args) -> int:
    from rvae.generate import interpolate

    ckpt = load_checkpoint(args.checkpoint)
    _check_threshold(args)
    _check_writing(args)
    if args.steps < 2:
        raise UserError(f"--steps {args.steps}: give 2 or more (the loops of the morph, A and B included)")
    a, b = (_first_loop(ckpt, p, args.force_meter) for p in (args.a, args.b))
    out = Path(args.output)
    _may_write(out, args.force)
    created = _missing_folder(out)
    grooves = interpolate(ckpt, a, b, args.steps, args.threshold)
    write_midi(grooves, out, args.bpm or a.bpm, microtiming=args.microtiming / 100)
    print(f"wrote {out}: {len(grooves)} loops from {a.source} to {b.source}")
    _say_created(created)
    return 0


def cmd_map(args) -> int:
    from rvae.files import save_png
    from rvae.latent import latent_map
    from rvae.picture import map_figure

    ckpt = load_checkpoint(args.checkpoint)
    out = Path(args.output)
    _check_threshold(args)
    if args.size < 1:
        raise UserError(f"--size {args.size}: give 1 or more cells per side")
    if args.cell < MIN_CELL:
        raise UserError(f"--cell {args.cell}: give {MIN_CELL} or more pixels per cell (a border each side of its bars)")
    if out.is_dir():
        raise UserError(f"-o {out} is a folder: give the PNG file to write, e.g. {out / 'map.png'}")
    if out.suffix.lower() != ".png":
        raise UserError(f"-o {out}: the map is written as PNG, so give a name ending in .png")
    extent = ckpt.extent if args.extent is None else args.extent
    if not (math.isfinite(extent) and extent > 0):
        raise UserError(f"--extent {extent:g}: give a distance above 0")
    _may_write(out, args.force)
    created = _missing_folder(out)
    img = map_figure(ckpt, latent_map(ckpt, args.size, extent), args.threshold, args.cell, extent)
    save_png(img, out)
    e, side = f"{extent:g}", args.size * args.cell
    print(
        f"wrote {out} ({img.shape[1]}x{img.shape[0]} px: {args.size}x{args.size} cells over [-{e}, {e}]^2 "
        f"in {side}x{side} px, with z axes and the instrument key)"
    )
    _say_created(created)
    return 0


def cmd_eval(args) -> int:
    from rvae.metrics import eval_loops, evaluate

    ckpt = load_checkpoint(args.checkpoint)
    _check_threshold(args)
    if args.generation and args.samples < 1:
        raise UserError(f"--samples {args.samples}: give 1 or more prior samples")
    ds = eval_loops(ckpt, args.data, args.force_meter)  # what training would keep: the same min_onsets
    loops = ds.loops
    for line in ds.lines():
        _say(line)
    if ds.sparse_loops:
        _say(f"dropped {counted(ds.sparse_loops, 'loop')} with fewer than {ckpt.min_onsets} onsets, as training does")
    if not loops:
        raise NoDataError(
            f"no loop in {', '.join(args.data)} fits the model's {ckpt.grid.meter} grid "
            f"with at least {ckpt.min_onsets} onsets"
        )
    figures = evaluate(ckpt, loops, args.threshold)
    result = json_clean({"loops": figures.pop("loops"), "sparse_loops_dropped": ds.sparse_loops} | figures, digits=4)
    gen = None
    if args.generation:
        from rvae.judge import judge

        gen = judge(ckpt, loops, n_samples=args.samples, size=30, seed=args.seed, threshold=args.threshold)
    if args.json:
        print(json.dumps(result | ({"generation": gen} if gen is not None else {}), indent=1))
        return 0
    for k, v in result.items():
        print(f"{k:20s} {v}")
    if gen is not None:
        from rvae.judge import summary_text

        print(summary_text(gen))
        print("--json prints every figure, per descriptor and per set")
    return 0


def _loops_from(t: dict) -> str:
    """Where a model's loops came from: files read, or (continued training) the loops it
    had and the new ones, which were played or read without a file count."""
    if t.get("files_read") is not None:
        return f"from {counted(t['files_read'], 'file')}"
    if t.get("new_loops") is not None:
        return f"({t.get('loops_before')} before + {t['new_loops']} new)"
    return "(source not recorded)"


def cmd_info(args) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    g, path = ckpt.grid, Path(args.checkpoint)
    m = ckpt.model.config_dict() | {"params": ckpt.model.n_params(), "file_bytes": path.stat().st_size}
    t = {k: v for k, v in ckpt.summary.to_dict().items() if k != "loss_history"}
    info = {
        "path": str(path),
        "time_signature": g.meter,
        "steps_per_quarter": g.steps_per_quarter,
        "bars": g.bars,
        "steps_per_bar": g.steps_per_bar,
        "kit": ckpt.kit.to_dict(),
        "model": m,
        "data_config": ckpt.data_config,
        "train_config": ckpt.train_config,
        "training": t,
        "extent": ckpt.extent,
        "loops_kept": ckpt.keeps_loops,
        "kept_loops": ckpt.n_kept_loops,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    bars = counted(g.bars, "bar")
    print(f"{path}\n  grid: {g.meter}, {g.steps_per_quarter} steps per quarter, {bars} = {g.steps} steps")
    print(f"  kit: {ckpt.kit.name} ({', '.join(ckpt.kit.names)})")
    print(
        f"  model: hidden {m['hidden']}, latent {m['latent_dim']}, beta {m['beta']}, {m['params']:,} parameters, "
        f"{m['file_bytes'] / 1e6:.1f} MB"
    )
    print(
        f"  training: {t.get('loops')} loops {_loops_from(t)}, {t.get('epochs')} epochs in "
        f"{t.get('seconds')} s, {'loss at the fit' if ckpt.summary.fit else 'best loss'} "
        f"{t.get('best_loss')} ({t.get('monitored')}), seed "
        f"{ckpt.train_config.get('seed')}, {t.get('trained_at')}"
    )
    if t.get("stopped") and t["stopped"] != "finished":
        print(f"  stopped: {t['stopped'].removeprefix('fit: ')}")
    if t.get("continued_from"):
        print(f"  continued from: {t['continued_from']}")
    if ckpt.keeps_loops:
        kept = f"{counted(ckpt.n_kept_loops, 'loop')} kept (rvae train --init can continue from it)"
    elif ckpt.train_config.get("keep_loops") is False:
        kept = "not kept (trained with --no-keep-loops)"
    else:
        kept = "not kept (written before checkpoints kept them)"
    print(f"  training loops: {kept}")
    print(f"  map square: z in [-{ckpt.extent:g}, {ckpt.extent:g}]^2")
    return 0


def cmd_experiment(args) -> int:
    from rvae.experiment import load_experiment, run_experiment

    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be at least 1")
    if args.ray_ship_data and args.ray is None:
        raise UserError("--ray-ship-data: only with --ray (the local pool reads the files where they are)")
    cfg = load_experiment(args.config, jobs=args.jobs)  # an ExperimentError before anything runs
    backend = None
    if args.ray is not None:
        from rvae.experiment.ray_backend import RayBackend

        address = None if args.ray == "local" else args.ray
        backend = RayBackend(address, num_cpus=cfg.jobs, ship_data=args.ray_ship_data)
        backend.connect()  # a silent address: one sentence, exit 2, nothing run
    result = run_experiment(cfg, report=_say, retry_failed=args.retry_failed, backend=backend)
    print((result.output / "summary.md").read_text())
    ok = sum(r["status"] == "ok" for r in result.rows)
    files = "results.csv, results.json, summary.md, figures/"
    print(f"wrote {result.output}/ ({files}): {ok} of {len(result.rows)} runs ok")
    return 0 if ok else 1


def cmd_data(args) -> int:
    from rvae import data

    out = Path(args.folder)
    created = _missing_folder(out / "info.csv")
    u = data.groove(out, args.source, args.force, progress=not args.quiet, report=_say)
    release = "the official v1.0.0 zip" if u.official else "a zip whose checksum is not the official v1.0.0 zip's"
    print(
        f"unpacked the Groove MIDI Dataset into {out}/: {counted(u.midi_files, 'MIDI file')} from "
        f"{counted(u.drummers, 'drummer')}, info.csv lists {counted(u.listed, 'performance')} ({release})"
    )
    print(f"train on it: rvae train {out} -o checkpoints/groove.pt   (one drummer's: {out / 'drummer1'})")
    _say("CC BY 4.0: credit Gillick, Roberts, Engel, Eck and Bamman, ICML 2019 (g.co/magenta/groove)")
    _say_created(created if created != out else None)
    return 0


def cmd_humanize(args) -> int:
    from rvae.humanize import humanize_file

    ckpt = load_checkpoint(args.checkpoint)
    if not (math.isfinite(args.amount) and 0 <= args.amount <= 1):
        raise UserError(f"--amount {args.amount:g}: choose 0 (the clip's own feel) to 1 (the model's)")
    z = _z_arg(args, ckpt)[0] if args.z is not None else None
    out = Path(args.output)
    _may_write(out, args.force)
    created = _missing_folder(out)
    clip = humanize_file(ckpt, args.clip, z, args.amount, args.force_meter)
    for line in clip.read.said:
        _say(f"{args.clip}: {line}")
    if clip.read.unmapped:
        _say(f"{args.clip}: {counted(clip.read.unmapped, 'note')} the kit does not map are not written")
    if clip.read.merged:
        _say(f"{args.clip}: {counted(clip.read.merged, 'hit')} layered on a louder one of its class are written as one")
    write_midi(clip.bars, out, clip.bpm)
    where = "each loop's own z" if z is None else "z = (" + " ".join(f"{v:.3f}" for v in z) + ")"
    print(
        f"wrote {out}: {counted(clip.hits, 'hit')} in {counted(len(clip.bars), 'bar')} of {ckpt.grid.meter} at "
        f"{clip.bpm:g} BPM, velocity and timing from the model at {where}, amount {args.amount:g}"
    )
    _say(f"velocities changed by {clip.velocity_change:.1f} and timing by {clip.timing_change_ms:.1f} ms on average")
    _say_created(created)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rvae", description="Small-data drum groove VAE: train, generate, map, evaluate.")
    say_more = "say more: -v what happens, -vv debugging detail"
    p.add_argument("-v", "--verbose", action="count", default=0, help=say_more)
    p.add_argument("--version", action="version", version=f"rvae {version('rvae')}")
    # -v after the command too; SUPPRESS, or the command's default 0 would undo `rvae -v cmd`
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=say_more)
    sub = p.add_subparsers(dest="command", required=True)
    add_command = functools.partial(sub.add_parser, parents=[verbose])

    t = add_command("train", help="train a model on folders or files of drum MIDI")
    t.add_argument("data", nargs="+", help="MIDI files and folders (searched recursively)")
    t.add_argument("-o", "--output", required=True, help="checkpoint to write, e.g. checkpoints/mine.pt")
    t.add_argument("--force", action="store_true", help="overwrite the checkpoint if it exists")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--init",
        metavar="CKPT",
        help="continue training CKPT on the loops it kept plus these files' (read on its grid and kit): "
        "fewer updates than from scratch",
    )
    for cls in (DataConfig, VAEConfig, TrainConfig):
        add_config_options(t, cls)

    def common(sp, threshold=True):
        sp.add_argument("checkpoint", help="a checkpoint written by rvae train")
        if threshold:
            sp.add_argument(
                "--threshold", type=float, default=0.5, help="onset probability that makes a hit (default: 0.5)"
            )

    def writing(sp, bpm_default="120"):
        sp.add_argument("--bpm", type=float, default=120.0, help=f"tempo written to the file (default: {bpm_default})")
        sp.add_argument(
            "--microtiming",
            type=float,
            default=100.0,
            help="percent of the decoded microtiming, 0 to 100; 0 = on the grid (default: 100)",
        )
        sp.add_argument("--force", action="store_true", help="overwrite existing files")

    g = add_command("generate", help="decode a point of the latent space into a MIDI clip")
    common(g)
    g.add_argument("--z", type=float, nargs="+", metavar="X", help="latent position, e.g. --z 0.5 -1 (default: random)")
    g.add_argument("--seed", type=int, default=None, help="seed for a random z (default: a new one, printed)")
    g.add_argument("-o", "--output", required=True, help="MIDI file to write; with --grid, a folder")
    g.add_argument("--loops", type=int, default=1, help="times the loop repeats in the file (default: 1)")
    g.add_argument(
        "--grid",
        type=int,
        default=None,
        metavar="N",
        help=f"write an NxN set of clips across the space; over {MAX_GRID} only with --force",
    )
    g.add_argument(
        "--extent",
        type=float,
        default=None,
        help="--grid spans [-E, E]^2 (default: the model's square, which holds its training loops; "
        f"{MAP_EXTENT:g} for models that kept no latents)",
    )
    writing(g)

    e = add_command("encode", help="print the latent position of each loop of MIDI files")
    common(e, threshold=False)
    e.add_argument("files", nargs="+", help="MIDI files and folders (searched recursively)")
    e.add_argument("--json", action="store_true", help="print JSON: each loop's source and z")
    e.add_argument("--force-meter", action="store_true", help=HELP["force_meter"])

    i = add_command("interpolate", help="morph the first loop of A into the first loop of B")
    common(i)
    i.add_argument("a", help="MIDI file whose first loop starts the morph")
    i.add_argument("b", help="MIDI file whose first loop ends it")
    i.add_argument("--steps", type=int, default=8, help="loops in the morph, A and B included (default: 8)")
    i.add_argument("-o", "--output", required=True, help="MIDI file to write")
    i.add_argument("--force-meter", action="store_true", help=HELP["force_meter"])
    writing(i, bpm_default="A's tempo")
    i.set_defaults(bpm=None)

    m = add_command("map", help="draw the decoded latent space as a PNG")
    common(m)
    m.add_argument("-o", "--output", required=True, help="PNG file to write")
    m.add_argument("--size", type=int, default=30, help="cells per side, as R-VAE's (default: 30)")
    m.add_argument("--cell", type=int, default=24, help=f"pixels per cell, {MIN_CELL} or more (default: 24)")
    m.add_argument(
        "--extent",
        type=float,
        default=None,
        help="the map spans [-E, E]^2 (default: the model's square, which holds its training loops)",
    )
    m.add_argument("--force", action="store_true", help="overwrite the file if it exists")

    v = add_command("eval", help="reconstruction figures on MIDI files")
    common(v)
    v.add_argument("data", nargs="+", help="MIDI files and folders (searched recursively)")
    v.add_argument("--json", action="store_true", help="print every figure as JSON")
    v.add_argument(
        "--generation",
        action="store_true",
        help="also judge generation: prior samples and the latent map against these loops, with baselines",
    )
    v.add_argument("--samples", type=int, default=500, help="prior samples for --generation (default: 500)")
    v.add_argument("--seed", type=int, default=0, help="seed for --generation's samples (default: 0)")
    v.add_argument("--force-meter", action="store_true", help=HELP["force_meter"])

    x = add_command("experiment", help="run a grid of settings x seeds x folds described in a TOML file")
    x.add_argument("config", help="experiment TOML, e.g. examples/representation_study.toml")
    x.add_argument("--jobs", type=int, default=None, help="worker processes (default: the config's, else every core)")
    x.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    x.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run each run as a Ray task: on a local Ray it starts with --jobs CPUs (no ADDRESS), or on a "
        "cluster (auto, HOST:PORT, ray://HOST:10001); needs pip install 'rvae[ray]' (default: the local pool)",
    )
    x.add_argument(
        "--ray-ship-data",
        action="store_true",
        help="with --ray: send the MIDI files inside the tasks instead of reading them by path on each node",
    )

    h = add_command("humanize", help="give a stiff clip the model's feel: its hits, the model's velocity and timing")
    h.add_argument("clip", help="MIDI file in the model's meter; every bar is humanized and written back in order")
    h.add_argument("-m", "--model", dest="checkpoint", required=True, help="a checkpoint written by rvae train")
    h.add_argument("-o", "--output", required=True, help="MIDI file to write")
    own = "take the feel from this latent point, e.g. --z 0.5 -1 (default: each loop's own)"
    h.add_argument("--z", type=float, nargs="+", metavar="X", help=own)
    h.add_argument(
        "--amount",
        type=float,
        default=1.0,
        help="0 keeps the clip's velocities and timing, 1 takes the model's, between blends (default: 1)",
    )
    h.add_argument("--force-meter", action="store_true", help=HELP["force_meter"])
    h.add_argument("--force", action="store_true", help="overwrite the output file if it exists")

    d = add_command("data", help="download a public data set, or unpack its zip, into a folder")
    d.add_argument("dataset", choices=["groove"], help="groove: the Groove MIDI Dataset (MIDI only, 3.3 MB)")
    d.add_argument("folder", help="folder to unpack it into, e.g. data/groove (must not exist, unless --force)")
    d.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        default=None,
        help="unpack this groove-v1.0.0-midionly.zip instead of downloading it (default: download)",
    )
    d.add_argument("--force", action="store_true", help="replace the folder if it exists")
    d.add_argument("--quiet", action="store_true", help="no progress bar")

    n = add_command("info", help="what a checkpoint holds")
    common(n, threshold=False)
    n.add_argument("--json", action="store_true", help="print everything as JSON")

    # Other packages add commands (the performer adds perform and ports): rvae never imports them.
    for ep in entry_points(group="rvae.commands"):
        COMMANDS.update(ep.load()(add_command))
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "generate": cmd_generate,
    "encode": cmd_encode,
    "interpolate": cmd_interpolate,
    "map": cmd_map,
    "eval": cmd_eval,
    "info": cmd_info,
    "experiment": cmd_experiment,
    "data": cmd_data,
    "humanize": cmd_humanize,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:  # bare `rvae`: what it can do, not an error about a missing command
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    logging.basicConfig(format=f"rvae {args.command}: %(message)s", level=logging.WARNING)
    for ours in ("rvae", "performer"):  # not every library's chatter
        logging.getLogger(ours).setLevel((logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)])
    try:
        return COMMANDS[args.command](args)
    except UserError as e:  # bad input: one sentence; anything else is a bug and shows its traceback
        _say(f"rvae {args.command}: {e}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
