"""Continuing to learn (issue 11): a checkpoint keeps its training loops (hits only) and the
square its loops span; training continues from its weights on them plus new loops, in the
library and as ``rvae train --init``; old checkpoints still load."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO
from test_train import TINY, one_thread

from rvae.checkpoint import MAP_EXTENT, Checkpoint, CheckpointError, extent_of, load_checkpoint, save_checkpoint
from rvae.cli import main
from rvae.dataset import Dataset, load_dataset
from rvae.errors import UserError
from rvae.grid import Grid
from rvae.groove import Groove, check_packed, pack_hits, unpack_hits
from rvae.kit import KITS
from rvae.metrics import evaluate
from rvae.model import GrooveVAE, VAEConfig
from rvae.train import TrainConfig, continue_training, continue_updates, train

DATA_6_8 = REPO / "data" / "6-8"
GRID = Grid((4, 4), 4, 1)  # 16 steps: small enough to write expected arrays inline
KIT = KITS["default"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def groove(hits, bpm=120.0, file="", bar=0) -> Groove:
    """hits: [(instrument, step, MIDI velocity, offset)] on GRID."""
    a = np.zeros((3, len(KIT), GRID.steps), np.float32)
    for i, s, v, o in hits:
        a[:, i, s] = 1, v / 127, o
    return Groove(a[0], a[1], a[2], GRID, KIT, bpm, file, bar)


def same(a: Groove, b: Groove) -> bool:
    return (
        np.array_equal(a.onsets, b.onsets)
        and np.array_equal(a.velocities, b.velocities)
        and np.allclose(a.offsets, b.offsets, atol=1e-3)  # float16: ~0.001 half step
        and (a.bpm, a.file, a.bar) == (b.bpm, b.file, b.bar)
    )


# --- the compact store -----------------------------------------------------------------------


def test_hits_pack_into_eight_bytes_each_and_unpack_to_the_same_loops():
    loops = [
        groove([(0, 0, 100, 0.0), (2, 2, 64, -0.5), (1, 4, 127, 0.25)], bpm=96.0, file="a.mid", bar=1),
        groove([(0, 8, 1, 1.0)], file="a.mid", bar=2),
        groove([], file="b.mid", bar=5),  # a loop with no hits survives too
    ]
    packed = pack_hits(loops)
    assert packed["hits"].tolist() == [[0, 0, 100], [2, 2, 64], [1, 4, 127], [0, 8, 1]]  # time order
    assert packed["counts"].tolist() == [3, 1, 0]
    assert packed["files"] == ["a.mid", "b.mid"] and packed["file_index"].tolist() == [0, 0, 1]
    assert packed["hits"].nbytes + packed["offsets"].nbytes == 8 * 4
    back = unpack_hits(packed, GRID, KIT)
    assert len(back) == 3 and all(same(a, b) for a, b in zip(loops, back, strict=True))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda p: p.update(counts=np.array([3, 2, 0], np.int32)), "counts summing to 5"),
        (lambda p: p["hits"].__setitem__((0, 1), 16), "outside 9 instruments x 16 steps"),
        (lambda p: p["hits"].__setitem__((0, 2), 0), "velocity 1..127"),
        (lambda p: p.update(files=["a.mid"]), "file index outside the 1 files"),
    ],
)
def test_damaged_packed_hits_are_refused_naming_the_problem(change, problem):
    hits = [(0, 0, 100, 0.0), (1, 4, 90, 0.1), (2, 8, 80, 0.0)]
    packed = pack_hits([groove(hits, file="a.mid"), groove([], file="b.mid")])
    check_packed(packed, GRID, KIT)
    change(packed)
    with pytest.raises(ValueError, match=problem):
        check_packed(packed, GRID, KIT)


@pytest.mark.parametrize(
    ("latents", "extent"),
    [
        (None, MAP_EXTENT),
        (np.zeros((0, 2)), MAP_EXTENT),
        ([[7.4, 0.0], [-1.0, 2.0]], 8.5),  # the bundled 4/4 model's reach: 7.4 * 1.1 = 8.14 -> 8.5
        ([[0.5, -2.6]], 3.0),  # 2.86 -> 3.0
        ([[0.01, 0.0]], 1.0),  # a collapsed space still gets one prior sd
        ([[1.0, 0.0, 50.0]], 1.5),  # only the plane's two coordinates count
    ],
)
def test_extent_holds_every_loop_with_a_margin(latents, extent):
    assert extent_of(None if latents is None else np.asarray(latents, np.float32)) == extent


# --- checkpoints: new and old ----------------------------------------------------------------


def untrained(latents=None, kept=None) -> Checkpoint:
    model = GrooveVAE(VAEConfig(hidden=8, instruments=len(KIT), steps=GRID.steps))
    return Checkpoint(model, GRID, KIT, latents=latents, kept=kept, extent=extent_of(latents))


def test_checkpoint_keeps_loops_and_extent_and_says_so(tmp_path, capsys):
    loops = [groove([(0, 0, 100, 0.0), (1, 4, 90, 0.3)], file="a.mid", bar=1)]
    path = save_checkpoint(untrained(torch.tensor([[4.0, -1.0]]), pack_hits(loops)), tmp_path / "m.pt")
    ckpt = load_checkpoint(path)
    assert ckpt.keeps_loops and ckpt.n_kept_loops == 1 and ckpt.extent == 4.5
    assert same(ckpt.training_loops()[0], loops[0])
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training loops: 1 loop kept" in out and "z in [-4.5, 4.5]^2" in out


def test_old_checkpoints_without_loops_or_extent_still_load(tmp_path, capsys):
    """Checkpoints written before issue 11 have neither key: the square comes from their
    latents, else MAP_EXTENT; continuing from them is one sentence."""
    for latents, extent in ((torch.tensor([[-5.0, 2.0]]), 5.5), (None, MAP_EXTENT)):
        path = save_checkpoint(untrained(latents), tmp_path / "old.pt")
        d = torch.load(path, weights_only=True)
        del d["extent"]
        assert "loops" not in d
        torch.save(d, path)
        ckpt = load_checkpoint(path)
        assert not ckpt.keeps_loops and ckpt.extent == extent
        with pytest.raises(UserError, match="written before checkpoints kept their training loops"):
            continue_training(ckpt, [groove([(0, 0, 100, 0.0)] * 5)])
        assert main(["info", "--json", str(path)]) == 0
        assert '"loops_kept": false' in capsys.readouterr().out


def test_a_checkpoint_with_damaged_loops_is_refused(tmp_path):
    path = save_checkpoint(untrained(kept=pack_hits([groove([(0, 0, 100, 0.0)])])), tmp_path / "m.pt")
    d = torch.load(path, weights_only=True)
    d["loops"]["hits"][0, 1] = 99  # a step past the grid
    torch.save(d, path)
    with pytest.raises(CheckpointError, match="its training loops are damaged"):
        load_checkpoint(path)


# --- training that keeps loops, and continues ------------------------------------------------


@pytest.fixture(scope="module")
def split_6_8():
    """data/6-8's bembé files (the base's loops), and two of its ballads' loops (new: another style)."""
    ds = load_dataset([DATA_6_8])
    old = [g for g in ds.loops if "bembe" in g.file]
    new = [g for g in ds.loops if g.file.endswith(("ballad_01.mid", "ballad_02.mid"))]
    return dataclasses.replace(ds, loops=old), new


@pytest.mark.slow
def test_training_keeps_its_loops_unless_told_not_to(split_6_8, tmp_path):
    ds, _ = split_6_8
    ckpt = load_checkpoint(save_checkpoint(tiny(ds), tmp_path / "m.pt"))
    assert ckpt.n_kept_loops == len(ds.loops)
    assert all(same(a, b) for a, b in zip(ckpt.training_loops(), ds.loops, strict=True))
    assert ckpt.extent == extent_of(ckpt.latents) and ckpt.extent > 0
    bare = tiny(ds, keep_loops=False)
    assert not bare.keeps_loops and bare.train_config["keep_loops"] is False
    with pytest.raises(UserError, match="was trained with --no-keep-loops"):
        continue_training(bare, ds.loops[:2])


def tiny(ds: Dataset, **cfg) -> Checkpoint:
    return train(ds, VAEConfig(**TINY), TrainConfig(**{"epochs": 4, **cfg}), progress=False)


@pytest.mark.slow
def test_continuing_starts_from_the_weights_and_keeps_old_and_new_loops(split_6_8, tmp_path, capsys):
    ds, new = split_6_8
    base = tiny(ds)
    frozen = continue_training(base, new, TrainConfig(epochs=1, lr=0.0))  # lr 0: the weights stay
    for k, v in base.model.state_dict().items():
        torch.testing.assert_close(frozen.model.state_dict()[k], v, rtol=0, atol=0)
    loops = frozen.training_loops()
    assert all(same(a, b) for a, b in zip(loops, ds.loops + new, strict=True))
    assert frozen.summary.continued_from and frozen.summary.data["new_loops"] == len(new)
    assert frozen.model.config == base.model.config and len(frozen.latents) == len(loops)
    save_checkpoint(frozen, tmp_path / "learned.pt")  # as learning on stage saves it: loops, no files
    assert main(["info", str(tmp_path / "learned.pt")]) == 0
    assert f"{len(loops)} loops ({len(ds.loops)} before + {len(new)} new)" in capsys.readouterr().out
    moved = continue_training(base, new)
    assert moved.summary.updates >= continue_updates(len(loops))
    before, after = base.model.state_dict(), moved.model.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.slow
def test_continuing_refuses_loops_on_another_grid(split_6_8):
    ds, _ = split_6_8
    with pytest.raises(UserError, match="on 4/4 x 16 steps"):
        continue_training(tiny(ds), [groove([(0, 0, 100, 0.0)] * 5)])


@pytest.mark.slow
def test_continuing_learns_new_loops_and_keeps_the_old(split_6_8):
    """Default settings: a base on data/6-8's bembés, then two ballads."""
    ds, new = split_6_8
    base = train(ds, progress=False)
    assert evaluate(base, new)["onset_f1"] < 0.9  # not known before
    out = continue_training(base, new)
    assert out.summary.updates < base.summary.updates
    assert evaluate(out, new)["onset_f1"] >= 0.9
    assert evaluate(out, ds.loops)["onset_f1"] >= 0.9


# --- the command -----------------------------------------------------------------------------


@pytest.mark.slow
def test_train_init_continues_skips_other_meters_and_refuses_what_it_cannot(tmp_path, capsys):
    base, more = tmp_path / "base", tmp_path / "more"
    files = sorted(DATA_6_8.glob("*.mid"))
    base.mkdir()
    more.mkdir()
    for f in files[:-2]:
        shutil.copy(f, base)
    for f in files[-2:]:
        shutil.copy(f, more)
    shutil.copy(next((REPO / "data" / "7-8").glob("*.mid")), more / "seven.mid")
    tiny_args = ["--hidden", "16", "--epochs", "3", "--quiet"]
    assert main(["train", str(base), "-o", str(tmp_path / "a.pt"), *tiny_args]) == 0
    assert main(["train", str(base), "-o", str(tmp_path / "bare.pt"), "--no-keep-loops", *tiny_args]) == 0
    capsys.readouterr()
    assert main(["train", "--init", str(tmp_path / "a.pt"), str(more), "-o", str(tmp_path / "b.pt"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "seven.mid" in err and "continuing from" in err
    assert "--force-meter" not in err  # the model's meter is fixed: no hint to an option --init refuses
    b = load_checkpoint(tmp_path / "b.pt")
    a = load_checkpoint(tmp_path / "a.pt")
    assert b.n_kept_loops > a.n_kept_loops and b.summary.continued_from == str(tmp_path / "a.pt")
    assert b.model.config == a.model.config and b.grid == a.grid
    assert b.summary.data["files_read"] == a.summary.data["files_read"] + 2  # the 7/8 file was skipped
    assert main(["info", str(tmp_path / "b.pt")]) == 0
    assert f"continued from: {tmp_path / 'a.pt'}" in capsys.readouterr().out
    for args, said in (
        (["--init", str(tmp_path / "bare.pt")], "was trained with --no-keep-loops"),
        (["--init", str(tmp_path / "a.pt"), "--bars", "2"], "--bars: with --init the data and model settings"),
        (["--init", str(tmp_path / "a.pt"), "--hidden", "32"], "--hidden: with --init"),
        (["--init", str(tmp_path / "a.pt"), "--fit-f1", "0.9"], "--fit-f1: with --init training continues without"),
        (["--init", str(tmp_path / "a.pt"), "--kl-warmup", "0.5"], "--kl-warmup: with --init"),
    ):
        assert main(["train", *args, str(more), "-o", str(tmp_path / "c.pt"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1
    assert not (tmp_path / "c.pt").exists()


def test_map_and_generate_grid_use_the_models_square(tmp_path, capsys):
    path = save_checkpoint(untrained(torch.tensor([[6.0, 1.0]])), tmp_path / "m.pt")  # extent 7
    assert main(["map", str(path), "-o", str(tmp_path / "map.png"), "--size", "4", "--cell", "8"]) == 0
    assert "over [-7, 7]^2" in capsys.readouterr().out
    assert main(["map", str(path), "-o", str(tmp_path / "m2.png"), "--size", "4", "--cell", "8", "--extent", "2"]) == 0
    assert "over [-2, 2]^2" in capsys.readouterr().out
    assert main(["generate", str(path), "--grid", "3", "-o", str(tmp_path / "g")]) == 0
    assert "over [-7, 7]^2" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "g").iterdir())[0] == "r0_c0_x-7.00_y+7.00.mid"
    assert main(["generate", str(path), "--grid", "3", "--extent", "1.5", "-o", str(tmp_path / "h")]) == 0
    assert "over [-1.5, 1.5]^2" in capsys.readouterr().out
