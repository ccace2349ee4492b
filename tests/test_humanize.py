"""rvae humanize: a stiff clip keeps its hits and takes the model's velocities and timing.

The feel coming back is measured on quantised copies (every hit on its step, velocity 100) of
training loops: velocity and timing MAE against the originals, before and after (printed;
`pytest -s` shows them). What the command keeps and refuses is tested on a model with
untrained weights, which needs no training: any weights give every cell a velocity and an offset.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import torch
from conftest import CLIPS, REPO, needs, write_midi_file
from test_train import DATA_6_8, one_thread

from rvae.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from rvae.cli import main
from rvae.grid import Grid
from rvae.groove import stack
from rvae.humanize import humanize, humanize_file
from rvae.kit import KITS
from rvae.latent import decode_probs
from rvae.metrics import timing_mae_ms, velocity_mae
from rvae.midi_io import read_midi, write_midi
from rvae.model import GrooveVAE, VAEConfig

# A bar of 4/4: 8 hats, kick on 1 and 3, snare on 2 and 4 (12 hits), every hit on the grid.
ROCK = [(42, 100, i / 2) for i in range(8)] + [(36, 100, 0.0), (36, 100, 2.0), (38, 100, 1.0), (38, 100, 3.0)]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def untrained(path: Path, bars: int = 2) -> Path:
    """A 4/4 model of ``bars``-bar loops with seeded random weights, saved at ``path``."""
    grid, kit = Grid((4, 4), 24, bars), KITS["default"]
    torch.manual_seed(0)
    model = GrooveVAE(VAEConfig(instruments=len(kit), steps=grid.steps, hidden=16)).eval()
    return save_checkpoint(Checkpoint(model, grid, kit), path)


def stiff_copy(path: Path, out: Path, ckpt: Checkpoint):
    """The file's loops, and a copy of it with every hit on its step at velocity 100."""
    loops = read_midi(path, ckpt.grid, ckpt.kit).loops
    write_midi(loops, out, loops[0].bpm, microtiming=0, fixed_velocity=100)
    return loops


def feel_figures(ckpt: Checkpoint, files: list[Path], tmp_path: Path) -> dict[str, tuple[float, float]]:
    """Velocity MAE (MIDI units) and timing MAE (ms) against the original loops, on their
    hits: the quantised copies, and the same humanized at their own z."""
    orig, before, after = [], [], []
    for f in files:
        loops = stiff_copy(f, tmp_path / f.name, ckpt)
        clip = humanize_file(ckpt, tmp_path / f.name)
        assert len(clip.bars) == len(loops) * ckpt.grid.bars
        orig += loops
        before += clip.stiff
        after += clip.bars
    o, bpm, spq = stack(orig), np.array([g.bpm for g in orig]), ckpt.grid.steps_per_quarter
    figures = {}
    for name, grooves in (("quantised", before), ("humanized", after)):
        x = stack(grooves)
        assert np.array_equal(x[:, 0], o[:, 0])  # the hits are the original's, kept
        figures[name] = (velocity_mae(x[:, 1], o[:, 1], o[:, 0]), timing_mae_ms(x[:, 2], o[:, 2], o[:, 0], bpm, spq))
    for name, (v, t) in figures.items():
        print(f"{name:10s} velocity MAE {v:5.1f}  timing MAE {t:5.2f} ms  ({len(orig)} loops of {len(files)} files)")
    return figures


@pytest.mark.slow
def test_the_feel_of_training_loops_comes_back(model_6_8, tmp_path):
    figures = feel_figures(load_checkpoint(model_6_8), sorted(DATA_6_8.glob("*.mid")), tmp_path)
    (v0, t0), (v1, t1) = figures["quantised"], figures["humanized"]
    assert v1 < v0 / 3 and t1 < t0 * 0.8


@needs(CLIPS / "small")
def test_the_feel_of_groove_clips_comes_back_through_the_bundled_model(tmp_path):
    ckpt = load_checkpoint(REPO / "checkpoints" / "groove-4-4.pt")  # trained on these drummer's clips
    figures = feel_figures(ckpt, sorted((CLIPS / "small").glob("*.mid")), tmp_path)
    (v0, t0), (v1, t1) = figures["quantised"], figures["humanized"]
    assert v1 < v0 / 3 and t1 < t0 / 2


def test_hits_are_kept_and_amount_blends_the_clips_values_with_the_models(tmp_path, make_midi):
    ckpt = load_checkpoint(untrained(tmp_path / "m.pt"))
    clip = make_midi([(n, v, q + 4 * b) for b in range(4) for n, v, q in ROCK])
    loops = read_midi(clip, ckpt.grid, ckpt.kit).loops
    own, _ = humanize(ckpt, loops, amount=0.0)
    full, z = humanize(ckpt, loops, amount=1.0)
    half, _ = humanize(ckpt, loops, amount=0.5)
    assert z.shape == (2, 2)
    for g, a, b, c in zip(loops, own, full, half, strict=True):
        assert all(np.array_equal(x.onsets, g.onsets) for x in (a, b, c))
        assert np.array_equal(a.velocities, g.velocities) and np.array_equal(a.offsets, g.offsets)
        on = g.onsets > 0
        assert not np.allclose(b.velocities[on], g.velocities[on])
        assert not (b.velocities[~on].any() or b.offsets[~on].any())  # nothing where there is no hit
        np.testing.assert_allclose(c.velocities, (a.velocities + b.velocities) / 2, atol=1e-6)
        np.testing.assert_allclose(c.offsets, (a.offsets + b.offsets) / 2, atol=1e-6)


def test_z_gives_every_loop_the_feel_of_that_point(tmp_path, make_midi):
    ckpt = load_checkpoint(untrained(tmp_path / "m.pt"))
    loops = read_midi(make_midi([(n, v, q + 4 * b) for b in range(4) for n, v, q in ROCK]), ckpt.grid, ckpt.kit).loops
    done, z = humanize(ckpt, loops, z=[1.5, -0.5])
    assert np.array_equal(z, [[1.5, -0.5], [1.5, -0.5]])
    p = decode_probs(ckpt, [1.5, -0.5])[0]
    for g in done:
        on = g.onsets > 0
        np.testing.assert_allclose(g.velocities[on], p[1][on], atol=1e-6)
        np.testing.assert_allclose(g.offsets[on], p[2][on], atol=1e-6)


def test_every_bar_is_written_back_in_order_and_the_clip_keeps_its_length(tmp_path, capsys):
    model = untrained(tmp_path / "m.pt", bars=2)  # 2-bar loops; the clip has 3 bars, the last one silent
    notes = [(n, v, q) for n, v, q in ROCK] + [(36, 100, 4.0), (38, 90, 5.0), (42, 70, 5.5)]
    clip = write_midi_file(tmp_path / "stiff.mid", notes, bpm=93, end=12.0)
    out = tmp_path / "out.mid"
    assert main(["humanize", str(clip), "-m", str(model), "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert (
        said.out == f"wrote {out}: 15 hits in 3 bars of 4/4 at 93 BPM, velocity and timing from the model "
        "at each loop's own z, amount 1\n"
    )
    assert said.err.startswith("velocities changed by ")
    stiff = read_midi(clip, Grid((4, 4), 24, 1), KITS["default"])
    done = read_midi(out, Grid((4, 4), 24, 1), KITS["default"])
    assert done.bpm == pytest.approx(93, abs=0.01)
    assert [[(s, i) for s, i, _, _ in g.hits()] for g in done.loops] == [
        [(s, i) for s, i, _, _ in g.hits()] for g in stiff.loops[:2]
    ]
    assert sum(m.time for m in mido.MidiFile(out).tracks[0]) == 3 * 4 * 480  # three bars long, as the clip


def test_refusals_are_one_sentence(tmp_path, make_midi, capsys):
    model = str(untrained(tmp_path / "m.pt", bars=1))
    clip = make_midi(ROCK, name="rock.mid")
    out = tmp_path / "out.mid"
    out.write_bytes(b"mine")
    cases = [
        ([str(clip), "-o", str(out)], f"{out} exists; pass --force to overwrite it"),
        ([str(clip), "-o", str(tmp_path / "a.mid"), "--amount", "1.5"], "--amount 1.5: choose 0"),
        ([str(clip), "-o", str(tmp_path / "a.mid"), "--z", "1"], "--z takes 2 numbers for this model"),
        ([str(make_midi(ROCK, ts=(6, 8))), "-o", str(tmp_path / "a.mid")], "is in 6/8, not the model's 4/4"),
    ]
    pickup = make_midi(
        [(36, 100, 0.0)] + [(n, v, q + 1) for n, v, q in ROCK], time_signatures=[(0, (1, 4)), (1, (4, 4))]
    )
    cases.append(([str(pickup), "-o", str(tmp_path / "a.mid")], "has 1 bar of 1/4 besides its 4/4 bars"))
    for args, said in cases:
        assert main(["humanize", *args, "-m", model]) == 2, args
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    assert out.read_bytes() == b"mine" and not (tmp_path / "a.mid").exists()
    assert main(["humanize", str(pickup), "-m", model, "-o", str(tmp_path / "a.mid"), "--force-meter"]) == 0
    assert main(["humanize", str(clip), "-m", model, "-o", str(out), "--force", "--amount", "0"]) == 0
    assert [h[:3] for h in read_midi(out, Grid(), KITS["default"]).loops[0].hits()] == [
        h[:3] for h in read_midi(clip, Grid(), KITS["default"]).loops[0].hits()
    ]  # amount 0: the clip's own hits, velocities and timing


def test_a_loop_keeps_its_own_file_and_bar(tmp_path, make_midi):
    ckpt = load_checkpoint(untrained(tmp_path / "m.pt", bars=1))
    clip = make_midi([(n, v, q + 4 * b) for b in range(3) for n, v, q in ROCK])
    done = humanize_file(ckpt, clip)
    assert [(Path(g.file).name, g.bar) for g in done.bars] == [(clip.name, b) for b in (1, 2, 3)]
    assert done.hits == 36 and done.velocity_change > 0
