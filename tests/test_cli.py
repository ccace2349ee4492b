"""The ``rvae`` command, called in-process: what each subcommand writes and prints, and its
exit status when it refuses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import mido
import pytest
from conftest import write_midi_file
from test_train import BAD, DATA_6_8, bad_checkpoint, one_thread

from rvae.checkpoint import load_checkpoint
from rvae.cli import main
from rvae.generate import decode

TICKS_6_8 = 3 * 480  # one bar of 6/8 = 3 quarters, at the 480 ticks per quarter rvae writes

# One bar of 6/8 (3 quarters): a bembé-like bell over kick and snare, and a ballad.
BEMBE = [(36, 100, 0.0), (53, 90, 0.0), (53, 70, 0.5), (53, 90, 1.0), (38, 80, 1.5), (53, 70, 2.0), (53, 90, 2.5)]
BALLAD = [(36, 110, 0.0), (42, 70, 0.0), (42, 60, 0.5), (42, 60, 1.0), (38, 100, 1.5), (42, 70, 2.0), (42, 60, 2.5)]


def bars(pattern, n, length=3.0):
    return [(note, vel, q + b * length) for b in range(n) for note, vel, q in pattern]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def events(path: Path) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) for every event of a type-0 file."""
    mid = mido.MidiFile(path)
    assert mid.type == 0 and mid.ticks_per_beat == 480
    out, now = [], 0
    for msg in mid.tracks[0]:
        now += msg.time
        out.append((now, msg))
    return out


def check_midi(path: Path, meter=(6, 8), bpm=120.0) -> list[tuple[int, int, int]]:
    """Assert a well-formed drum clip; return its (tick, note, velocity) hits."""
    ev = events(path)
    ts = [m for _, m in ev if m.type == "time_signature"]
    tempo = [m for _, m in ev if m.type == "set_tempo"]
    assert [(m.numerator, m.denominator) for m in ts] == [meter]
    assert len(tempo) == 1 and mido.tempo2bpm(tempo[0].tempo) == pytest.approx(bpm, abs=1e-3)
    notes = [(t, m) for t, m in ev if m.type in ("note_on", "note_off")]
    assert notes and all(m.channel == 9 for _, m in notes)  # MIDI channel 10
    sounding: dict[int, int] = {}
    for _, m in notes:
        sounding[m.note] = sounding.get(m.note, 0) + (1 if m.type == "note_on" and m.velocity else -1)
        assert sounding[m.note] in (0, 1), f"note {m.note} off without on, or on twice"
    assert not any(sounding.values()), "a note is left hanging"
    assert ev[-1][1].type == "end_of_track" and ev[-1][0] >= notes[-1][0]
    return [(t, m.note, m.velocity) for t, m in notes if m.type == "note_on" and m.velocity]


def end_tick(path: Path) -> int:
    return events(path)[-1][0]


# --- train -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_train_writes_a_checkpoint_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "m.pt"
    args = ["train", str(DATA_6_8), "-o", str(out), "--epochs", "2", "--hidden", "16", "--quiet"]
    assert main(args) == 0
    assert load_checkpoint(out).model.config.hidden == 16
    cap = capsys.readouterr()
    assert f"wrote {out}" in cap.out
    assert "meter 6/8" in cap.err and "trained 2 epochs" in cap.err
    before = out.read_bytes()
    assert main([*args, "--seed", "1"]) == 2  # stdin is not a terminal: no question, a refusal
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args, "--seed", "1", "--force"]) == 0
    assert out.read_bytes() != before


@pytest.mark.slow
def test_train_interrupted_writes_the_best_model_and_says_so(tmp_path, capsys, monkeypatch):
    import importlib

    train_module = importlib.import_module("rvae.train")
    real, calls = train_module.total_loss, []

    def interrupt_in_epoch_4(parts, config):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(parts, config)

    monkeypatch.setattr(train_module, "total_loss", interrupt_in_epoch_4)
    out = tmp_path / "m.pt"
    assert main(["train", str(DATA_6_8), "-o", str(out), "--epochs", "50", "--hidden", "16", "--quiet",
                 "--kl-warmup", "0"]) == 130  # as any Ctrl-C, once the best model is written
    err = capsys.readouterr().err
    assert "interrupted after 3 epochs" in err
    s = load_checkpoint(out).summary
    assert err.splitlines()[-1] == f"interrupted: kept the best model so far (epoch {s.best_epoch}) in {out}"
    assert s.stopped == "interrupted after 3 epochs" and s.epochs == 3 and 1 <= s.best_epoch <= 3


def test_train_on_nothing_usable_exits_2(tmp_path, make_midi, capsys):
    make_midi([(36, 100, 0.0)], ts=(6, 8))  # one hit: no loop with 5 onsets
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "m.pt"), "--quiet"]) == 2
    assert "no usable loops" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(("option", "message"), [
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),  # once a division by zero
    (["--kl-warmup", "2"], "--kl-warmup 2: must be between 0 and 1"),
    (["--hidden", "0"], "--hidden 0: must be at least 1"),
    (["--lr", "nan"], "--lr nan: must not be negative"),
])
def test_train_refuses_bad_config_values_naming_the_flag(option, message, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", str(DATA_6_8), "-o", str(out), "--quiet", *option]) == 2
    cap = capsys.readouterr()
    assert cap.err == f"rvae train: {message}\n" and cap.out == "" and not out.exists()


# --- generate ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_generate_writes_a_valid_6_8_clip(model_6_8, tmp_path, capsys):
    clip = tmp_path / "clip.mid"
    assert main(["generate", str(model_6_8), "--z", "0.5", "-1", "-o", str(clip), "--bpm", "93"]) == 0
    assert f"wrote {clip}" in capsys.readouterr().out
    hits = check_midi(clip, meter=(6, 8), bpm=93)
    expected = decode(load_checkpoint(model_6_8), [0.5, -1.0])
    assert expected.onsets.shape == (9, 72)  # 72 steps per bar of 6/8
    assert len(hits) == expected.n_onsets > 0
    assert end_tick(clip) == TICKS_6_8  # one bar of 3 quarters
    assert all(0 <= t < TICKS_6_8 for t, _, _ in hits)


@pytest.mark.slow
def test_generate_loops_repeats_the_bar(model_6_8, tmp_path):
    one, three = tmp_path / "one.mid", tmp_path / "three.mid"
    for path, n in ((one, "1"), (three, "3")):
        assert main(["generate", str(model_6_8), "--z", "0", "0", "-o", str(path), "--loops", n]) == 0
    a, b = check_midi(one), check_midi(three)
    assert end_tick(three) == 3 * end_tick(one) == 3 * TICKS_6_8
    assert sorted(b) == sorted((t + k * TICKS_6_8, n, v) for k in range(3) for t, n, v in a)


@pytest.mark.slow
def test_generate_refuses_to_overwrite(model_6_8, tmp_path, capsys):
    clip = tmp_path / "clip.mid"
    clip.write_bytes(b"mine")
    assert main(["generate", str(model_6_8), "--z", "0", "0", "-o", str(clip)]) == 2
    assert "pass --force" in capsys.readouterr().err and clip.read_bytes() == b"mine"


@pytest.mark.slow
def test_generate_grid_writes_n_by_n_clips(model_6_8, tmp_path):
    out = tmp_path / "grid"
    assert main(["generate", str(model_6_8), "--grid", "3", "--extent", "3", "-o", str(out)]) == 0
    files = sorted(out.iterdir())
    # sorted by name = read as the grid: rows from the top (y = +3), each from the left (x = -3)
    assert [f.name for f in files] == [
        "r0_c0_x-3.00_y+3.00.mid",
        "r0_c1_x+0.00_y+3.00.mid",
        "r0_c2_x+3.00_y+3.00.mid",
        "r1_c0_x-3.00_y+0.00.mid",
        "r1_c1_x+0.00_y+0.00.mid",
        "r1_c2_x+3.00_y+0.00.mid",
        "r2_c0_x-3.00_y-3.00.mid",
        "r2_c1_x+0.00_y-3.00.mid",
        "r2_c2_x+3.00_y-3.00.mid",
    ]
    for f in files:
        assert end_tick(f) == TICKS_6_8
        if f.name == "r1_c1_x+0.00_y+0.00.mid":
            assert len(check_midi(f)) == decode(load_checkpoint(model_6_8), [0.0, 0.0]).n_onsets


# --- encode, interpolate, map, eval, info ---------------------------------------------------------

@pytest.mark.slow
def test_encode_prints_one_latent_position_per_loop(model_6_8, make_midi, capsys):
    a = make_midi(bars(BEMBE, 2), ts=(6, 8), name="bembe.mid")
    b = make_midi(bars(BALLAD, 3), ts=(6, 8), name="ballad.mid")
    assert main(["encode", str(model_6_8), str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        "bembe.mid bar 1", "bembe.mid bar 2", "ballad.mid bar 1", "ballad.mid bar 2", "ballad.mid bar 3"]
    z = [[float(v) for v in line.split("\t")[1:]] for line in lines]
    assert all(len(p) == 2 for p in z)
    assert z[0] == pytest.approx(z[1], abs=1e-3) and z[0] != pytest.approx(z[2], abs=1e-3)  # same bar, same place


@pytest.mark.slow
def test_encode_of_nothing_readable_says_so_in_one_sentence(model_6_8, make_midi, tmp_path, capsys):
    four = make_midi(bars(BEMBE, 1), ts=(4, 4), name="four.mid")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"x")
    assert main(["encode", str(model_6_8), str(four), str(junk)]) == 2
    err = capsys.readouterr().err
    assert "skipped" in err and "four.mid" in err and "junk.mid" in err
    assert err.strip().endswith("nothing to encode: every file given was skipped (above)")


@pytest.mark.slow
def test_interpolate_writes_steps_loops(model_6_8, make_midi, tmp_path, capsys):
    a = make_midi(BEMBE, ts=(6, 8), bpm=100, name="a.mid")
    b = make_midi(BALLAD, ts=(6, 8), bpm=100, name="b.mid")
    out = tmp_path / "morph.mid"
    assert main(["interpolate", str(model_6_8), str(a), str(b), "--steps", "8", "-o", str(out)]) == 0
    assert "8 loops" in capsys.readouterr().out
    check_midi(out, meter=(6, 8), bpm=100)  # the tempo of A when --bpm is not given
    assert end_tick(out) == 8 * TICKS_6_8


@pytest.mark.slow
def map_in(png: Path, side: int):
    """The map's pixels in a figure rvae map wrote, (side, side, 3), and the figure's size."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from rvae.picture import FIGURE_ORIGIN

    rgb = pygame.surfarray.array3d(pygame.image.load(str(png))).swapaxes(0, 1)
    x, y = FIGURE_ORIGIN
    return rgb[y : y + side, x : x + side], rgb.shape[1::-1]


def test_map_writes_a_png_of_size_times_cell_pixels(model_6_8, tmp_path, capsys):
    from rvae.latent import latent_map
    from rvae.picture import map_image

    out = tmp_path / "map.png"
    assert main(["map", str(model_6_8), "-o", str(out), "--size", "10"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = load_checkpoint(model_6_8)
    drawn, (width, height) = map_in(out, 240)  # 10 cells of 24 px...
    e = ckpt.extent  # the model's own square
    assert (drawn == map_image(ckpt, latent_map(ckpt, 10, e), extent=e)).all()
    assert width > 240 + 100 and height > 240 + 30  # ...with axes and the key around them
    said = f"wrote {out} ({width}x{height} px: 10x10 cells over [-{e:g}, {e:g}]^2 in 240x240 px"
    assert said in capsys.readouterr().out
    assert main(["map", str(model_6_8), "-o", str(tmp_path / "small.png"), "--size", "4", "--cell", "5"]) == 0
    assert (map_in(tmp_path / "small.png", 20)[0] == map_image(ckpt, latent_map(ckpt, 4, e), cell=5, extent=e)).all()


@pytest.mark.slow
def test_eval_json_and_files_of_another_meter(model_6_8, make_midi, capsys):
    ok = make_midi(bars(BEMBE, 2), ts=(6, 8), name="bembe.mid")
    other = make_midi(bars([(36, 100, 0.0), (42, 80, 1.0), (38, 90, 2.0), (42, 80, 3.0)], 2, 4.0), ts=(4, 4),
                      name="rock.mid")
    assert main(["eval", str(model_6_8), str(ok), str(other), "--json"]) == 0
    cap = capsys.readouterr()
    result = json.loads(cap.out)
    assert list(result) == ["loops", "sparse_loops_dropped", "onset_precision", "onset_recall", "onset_f1",
                            "onset_f1_tolerant", "velocity_mae", "timing_mae_ms", "kl"]
    assert result["loops"] == 2
    assert 0 <= result["onset_f1"] <= result["onset_f1_tolerant"] <= 1 and result["kl"] >= 0
    assert "rock.mid" in cap.err and "is in 4/4, not the model's 6/8" in cap.err and "bembe" not in cap.err
    assert main(["eval", str(model_6_8), str(other), "--json"]) == 2
    assert "no loop" in capsys.readouterr().err


@pytest.mark.slow
def test_info_json(model_6_8, capsys):
    assert main(["info", str(model_6_8), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    grid = (info["time_signature"], info["steps_per_quarter"], info["bars"], info["steps_per_bar"])
    assert grid == ("6/8", 24, 1, 72)
    assert info["model"]["steps"] == 72 and info["training"]["loops"] == 32


@pytest.mark.parametrize("name", ["groove-4-4.pt", "demo-6-8.pt", "demo-12-8.pt", "demo-7-8.pt"])
def test_info_on_the_bundled_checkpoints(name, capsys):
    path = Path(__file__).resolve().parents[1] / "checkpoints" / name
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert " loops from " in text and "None" not in text
    assert "  stopped: the training loops' onset F1 0.95" in text  # train_bundled.py: the defaults
    assert main(["info", str(path), "--json"]) == 0
    training = json.loads(capsys.readouterr().out)["training"]
    assert training["loops"] > 0 and training["epochs"] > 0
    assert training["stopped"].startswith("fit: the training loops' onset F1 0.95")


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*BAD, "missing"])
def test_info_on_an_unusable_checkpoint_exits_2_with_one_sentence(kind, model_6_8, tmp_path, capsys):
    path = tmp_path / "bad.pt" if kind == "missing" else bad_checkpoint(kind, model_6_8, tmp_path / "bad.pt")
    assert main(["info", str(path)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith(f"rvae info: checkpoint {path}") or cap.err.startswith(f"rvae info: {path} is not")
    assert cap.err.count("\n") == 1 and "Traceback" not in cap.err and "Warning" not in cap.err


@pytest.mark.slow
def test_python_m_rvae_info(model_6_8, tmp_path):
    # From another directory, as a user would: the installed package, not the working tree on sys.path.
    done = subprocess.run([sys.executable, "-m", "rvae", "info", str(model_6_8)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "grid: 6/8, 24 steps per quarter, 1 bar = 72 steps" in done.stdout


def test_pyproject_reads_without_setuptools_warnings(monkeypatch):
    # What `pip install -e .` prints comes from here: a deprecated field warns on every install.
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), root / "pyproject.toml")
    assert dist.metadata.license_expression == "MIT"


@pytest.mark.slow
def test_eval_generation_adds_prior_map_and_baselines(model_6_8, capsys):
    assert main(["eval", str(model_6_8), str(DATA_6_8), "--json", "--generation", "--samples", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    gen = report["generation"]
    for part in ("prior", "map", "baseline_nearest", "baseline_random"):
        assert 0.0 <= gen[part]["summary"]["oa_mean"] <= 1.0
    assert {"smoothness", "coverage", "novelty"} <= set(gen)


@pytest.mark.slow
def test_generate_grid_names_sort_as_rows_and_columns_past_ten(model_6_8, tmp_path):
    out = tmp_path / "grid"
    assert main(["generate", str(model_6_8), "--grid", "11", "--extent", "3", "-o", str(out)]) == 0
    names = sorted(f.name for f in out.iterdir())
    assert len(names) == 121
    assert names[:2] == ["r00_c00_x-3.00_y+3.00.mid", "r00_c01_x-2.40_y+3.00.mid"]
    assert names[10:12] == ["r00_c10_x+3.00_y+3.00.mid", "r01_c00_x-3.00_y+2.40.mid"]
    assert names[-1] == "r10_c10_x+3.00_y-3.00.mid"


@pytest.mark.slow
def test_eval_generation_without_json_prints_a_short_summary(model_6_8, capsys):
    assert main(["eval", str(model_6_8), str(DATA_6_8), "--generation", "--samples", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 10 <= len(lines) <= 30
    assert lines[0].split() == ["loops", "32"]  # the reconstruction figures first, as without --generation
    labels = [line.split("  ")[1] for line in lines if line.startswith("  ") and line[2] != " "]
    assert labels[:4] == ["prior samples", "latent map", "baseline: copy", "baseline: random"]
    assert any("smoothness" in line for line in lines) and any("coverage" in line for line in lines)
    assert "--json" in lines[-1]


@pytest.mark.slow
def test_ten_updates_train_and_bad_generate_options_say_why(model_6_8, tmp_path, capsys):
    # 32 loops x2 in batches of 64 = 1 update an epoch: 10 epochs once broke the lr schedule
    out = tmp_path / "ten.pt"
    assert main(["train", str(DATA_6_8), "--epochs", "10", "--quiet", "-o", str(out)]) == 0
    assert out.exists()
    capsys.readouterr()
    for bad, word in ((["--z", "0.5"], "--z"), (["--grid", "0"], "--grid"), (["--bpm", "-5"], "--bpm")):
        assert main(["generate", str(model_6_8), *bad, "-o", str(tmp_path / "g.mid")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cc-x", "200"], "--cc-x 200: MIDI controller numbers are 0 to 127"),
        (["--cc-x", "5", "--cc-y", "5"], "--cc-x and --cc-y are both 5"),
        (["--gate", "0"], "--gate 0: a note must last more than 0 beats"),
        (["--z", "nan", "0"], "--z nan 0: give finite numbers"),
        (["--noise", "-1"], "--noise -1: choose 0 or more"),
    ],
)
def test_perform_refuses_bad_options_before_opening_anything(args, message, capsys):
    assert main(["perform", "--headless", "--seconds", "1", *args]) == 2
    assert message in capsys.readouterr().err


# --- from a new user's review: what eval scores, fresh randomness, -v, refusals in one sentence ----------

SPARSE = [(36, 100, 0.0), (38, 90, 1.5)]  # a bar of 2 hits: training drops it (fewer than 5 onsets)


@pytest.mark.slow
def test_eval_drops_the_loops_training_drops_by_the_checkpoints_min_onsets(model_6_8, tmp_path, capsys):
    data = tmp_path / "data"
    write_midi_file(data / "bembe.mid", BEMBE + bars(SPARSE, 2)[len(SPARSE):], ts=(6, 8))  # 7 hits, then 2
    write_midi_file(data / "sparse.mid", SPARSE, ts=(6, 8))
    assert main(["eval", str(model_6_8), str(data), "--json"]) == 0
    cap = capsys.readouterr()
    result = json.loads(cap.out)
    assert (result["loops"], result["sparse_loops_dropped"]) == (1, 2)
    assert "dropped 2 loops with fewer than 5 onsets, as training does" in cap.err
    assert "sparse.mid: has no loop with at least 5 onsets" in cap.err
    # The checkpoint's own min_onsets, not the default:
    low = tmp_path / "low.pt"
    assert main(["train", str(DATA_6_8), "-o", str(low), "--epochs", "1", "--hidden", "16", "--quiet",
                 "--min-onsets", "2"]) == 0
    capsys.readouterr()
    assert main(["eval", str(low), str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loops"] == 3
    assert main(["eval", str(model_6_8), str(data / "sparse.mid")]) == 2
    assert "with at least 5 onsets" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_and_eval_score_the_same_held_out_loops(model_6_8, tmp_path, capsys):
    from rvae.experiment import Run, run_one

    test = [write_midi_file(tmp_path / "bembe.mid", BEMBE + bars(SPARSE, 2)[len(SPARSE):], ts=(6, 8)),
            write_midi_file(tmp_path / "sparse.mid", SPARSE, ts=(6, 8))]
    train = tuple(str(p) for p in sorted(DATA_6_8.glob("*.mid")))
    row = run_one(Run({"epochs": 1, "hidden": 16}, 0, 0, train, tuple(map(str, test)), "holdout"), generation=False)
    assert row["status"] == "ok", row["error"]
    assert main(["eval", str(model_6_8), *map(str, test), "--json"]) == 0  # both trained with min_onsets 5
    assert json.loads(capsys.readouterr().out)["loops"] == row["heldout_loops"] == 1


@pytest.mark.slow
def test_generate_without_z_draws_a_new_point_each_run_and_says_how_to_repeat_it(model_6_8, tmp_path, capsys):
    def z_and_seed(*extra):
        assert main(["generate", str(model_6_8), "-o", str(tmp_path / "r.mid"), "--force", *extra]) == 0
        out = capsys.readouterr().out
        return out.split("z = ")[1].split(")")[0], out.split("--seed ")[1].split()[0]

    (z1, seed1), (z2, seed2) = z_and_seed(), z_and_seed()
    assert z1 != z2 and seed1 != seed2
    assert z_and_seed("--seed", seed1) == (z1, seed1)
    assert main(["generate", str(model_6_8), "--z", "0", "0", "-o", str(tmp_path / "given.mid")]) == 0
    assert "--seed" not in capsys.readouterr().out  # a given point was not drawn


@pytest.mark.slow
def test_train_verbose_logs_progress_and_the_default_stays_quiet(tmp_path, caplog):
    args = ["train", str(DATA_6_8), "-o", str(tmp_path / "m.pt"), "--epochs", "10", "--hidden", "16", "--quiet"]
    assert main(args) == 0
    assert not [r for r in caplog.records if r.name.startswith("rvae")]
    assert main(["-v", *args, "--force"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "rvae.train"]
    assert lines[0].startswith("training on 32 loops") and len(lines) == 11  # then epochs 1 to 10
    assert lines[-1].startswith("epoch 10/10: loss ") and ", lr " in lines[-1]


def test_help_says_what_the_defaults_are_once(capsys):
    for command in ("interpolate", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "tempo written to the file (default: A's tempo)" in text
    assert "(default: the most common meter of the files)" in text and "(default: see --updates)" in text
    assert re.search(r"\(default[^)]*\) \(default", text) is None


@pytest.mark.slow
def test_a_one_by_one_grid_is_the_centre_and_the_smallest_map_is_one_cell_of_3_pixels(model_6_8, tmp_path, capsys):

    out = tmp_path / "grid"
    assert main(["generate", str(model_6_8), "--grid", "1", "-o", str(out)]) == 0
    assert "1x1 at the centre, z = (0, 0)" in capsys.readouterr().out
    assert [f.name for f in out.iterdir()] == ["r0_c0_x+0.00_y+0.00.mid"]
    centre = decode(load_checkpoint(model_6_8), [0.0, 0.0])
    assert len(check_midi(out / "r0_c0_x+0.00_y+0.00.mid")) == centre.n_onsets
    assert main(["map", str(model_6_8), "-o", str(tmp_path / "one.png"), "--size", "1", "--cell", "3"]) == 0
    from rvae.latent import latent_map
    from rvae.picture import map_image

    ckpt = load_checkpoint(model_6_8)
    assert (map_in(tmp_path / "one.png", 3)[0] == map_image(ckpt, latent_map(ckpt, 1), cell=3)).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "M", "--threshold", "1.5", "-o", "OUT.mid"], "--threshold 1.5: choose 0 to 1"),
        (["generate", "M", "--z", "nan", "0", "-o", "OUT.mid"], "--z nan 0: give finite numbers"),
        (["generate", "M", "--z", "0", "inf", "-o", "OUT.mid"], "--z 0 inf: give finite numbers"),
        (["generate", "M", "--microtiming", "150", "-o", "OUT.mid"], "--microtiming 150: choose 0 to 100"),
        (["generate", "M", "--microtiming", "-1", "-o", "OUT.mid"], "--microtiming -1: choose 0 to 100"),
        (["generate", "M", "--bpm", "nan", "-o", "OUT.mid"], "--bpm nan: the tempo must be above 0"),
        (["generate", "M", "--grid", "3", "--extent", "0", "-o", "OUT"], "--extent 0: give a distance above 0"),
        (["interpolate", "M", "A", "B", "--steps", "1", "-o", "OUT.mid"], "--steps 1: give 2 or more"),
        (["interpolate", "M", "A", "B", "--steps", "0", "-o", "OUT.mid"], "--steps 0: give 2 or more"),
        (["interpolate", "M", "A", "B", "--microtiming", "101", "-o", "OUT.mid"], "--microtiming 101: choose 0"),
        (["interpolate", "M", "A", "B", "--threshold", "-0.1", "-o", "OUT.mid"], "--threshold -0.1: choose 0"),
        (["map", "M", "--size", "0", "-o", "OUT.png"], "--size 0: give 1 or more cells per side"),
        (["map", "M", "--cell", "2", "-o", "OUT.png"], "--cell 2: give 3 or more pixels per cell"),
        (["map", "M", "--cell", "0", "-o", "OUT.png"], "--cell 0: give 3 or more pixels per cell"),
        (["map", "M", "-o", "OUT.jpg"], "OUT.jpg: the map is written as PNG, so give a name ending in .png"),
        (["map", "M", "-o", "DIR"], "DIR is a folder: give the PNG file to write, e.g. DIR/map.png"),
        (["eval", "M", "A", "--generation", "--samples", "0"], "--samples 0: give 1 or more prior samples"),
        (["eval", "M", "A", "--threshold", "2"], "--threshold 2: choose 0 to 1"),
    ],
)
def test_bad_values_are_refused_in_one_sentence_naming_the_option(args, message, model_6_8, tmp_path, capsys):
    a = write_midi_file(tmp_path / "a.mid", BEMBE, ts=(6, 8))
    b = write_midi_file(tmp_path / "b.mid", BALLAD, ts=(6, 8))
    (tmp_path / "dir").mkdir()
    names = {"M": str(model_6_8), "A": str(a), "B": str(b)}
    here = {"OUT": str(tmp_path / "out"), "DIR": str(tmp_path / "dir")}
    argv = [names.get(x) or x.replace("OUT", here["OUT"]).replace("DIR", here["DIR"]) for x in args]
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    cap = capsys.readouterr()
    message = message.replace("OUT", here["OUT"]).replace("DIR", here["DIR"])
    assert cap.out == "" and cap.err.startswith(f"rvae {args[0]}: ") and cap.err.count("\n") == 1
    assert message in cap.err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


# --- the first hour of a new user ------------------------------------------------------------

def test_bare_rvae_prints_the_help_and_version_prints_the_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rvae") and "train a model on folders" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and re.fullmatch(r"rvae \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_every_option_has_help_and_says_its_default_one_way():
    import argparse

    from rvae.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    ours = [name for name in sub.choices if name in COMMANDS and name not in ("perform", "ports")]
    assert "train" in ours and "map" in ours
    for name in ours:
        for action in sub.choices[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            where = f"rvae {name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where} has no help"
            assert "(default " not in action.help and "default " not in action.help.replace("(default: ", ""), where
            if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action, argparse._CountAction):
                assert f"(default: {action.default:g}" in action.help if isinstance(action.default, float) else (
                    f"(default: {action.default}" in action.help), where


def test_info_on_a_folder_says_it_is_a_folder(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"rvae info: checkpoint {tmp_path} is a folder: give the checkpoint file in it, e.g. {tmp_path}/model.pt\n"
    )


def test_train_on_a_missing_or_empty_folder_says_one_sentence(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", str(tmp_path / "missing"), "-o", str(tmp_path / "m.pt")]) == 2
    assert capsys.readouterr().err == f"rvae train: no MIDI files to train on: {tmp_path / 'missing'} does not exist\n"
    assert main(["train", str(tmp_path / "empty"), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert err == f"rvae train: no MIDI files to train on: {tmp_path / 'empty'} holds no .mid or .midi files\n"
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.slow
def test_a_grid_over_64_per_side_is_refused_saying_its_count_and_size(model_6_8, tmp_path, capsys, monkeypatch):
    from rvae import cli

    out = tmp_path / "grid"
    assert main(["generate", str(model_6_8), "--grid", "65", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--grid 65 would write 4,225 clips (" in err and " MB on disk) " in err
    assert "pass --force" in err and not out.exists()
    monkeypatch.setattr(cli, "MAX_GRID", 2)  # --force writes them, saying so first
    assert main(["generate", str(model_6_8), "--grid", "3", "-o", str(out), "--force"]) == 0
    cap = capsys.readouterr()
    assert cap.err.startswith("writing 9 clips (") and len(list(out.iterdir())) == 9
    assert cap.err.splitlines()[-1] == f"created the folder {out}/"


@pytest.mark.slow
def test_writing_into_a_missing_folder_says_it_was_created(model_6_8, tmp_path, capsys):
    clip = tmp_path / "new" / "deeper" / "clip.mid"
    assert main(["generate", str(model_6_8), "--z", "0", "0", "-o", str(clip), "--loops", "1"]) == 0
    cap = capsys.readouterr()
    assert ", 1 loop of 6/8" in cap.out and cap.err == f"created the folder {tmp_path / 'new'}/\n"
    assert clip.exists()
    assert main(["generate", str(model_6_8), "--z", "0", "0", "-o", str(tmp_path / "new" / "b.mid")]) == 0
    assert capsys.readouterr().err == ""  # the folder is there now
    assert main(["map", str(model_6_8), "-o", str(tmp_path / "maps" / "m.png"), "--size", "2"]) == 0
    assert capsys.readouterr().err == f"created the folder {tmp_path / 'maps'}/\n"
