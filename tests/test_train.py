"""Training and checkpoints: the loss falls, small sets are memorised, seeds reproduce, an
interrupted run keeps its best model, and checkpoints are written atomically and refused
with a clear CheckpointError when they cannot be used."""

from __future__ import annotations

import contextlib
import fractions
import importlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLIPS, REPO, needs, write_midi_file

from rvae.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from rvae.dataset import DataConfig, load_dataset
from rvae.errors import ConfigError
from rvae.generate import decode
from rvae.grid import Grid
from rvae.kit import KITS
from rvae.metrics import evaluate
from rvae.model import GrooveVAE, VAEConfig
from rvae.train import TrainConfig, train, train_files

train_module = importlib.import_module("rvae.train")  # rvae.train is also the function

DATA_6_8 = REPO / "data" / "6-8"  # 14 files, 32 loops of one bar of 6/8
TINY = {"hidden": 16}  # a model that trains in a blink, where quality does not matter


@contextlib.contextmanager
def one_thread():
    """Train on one thread: with other jobs on the same 2 cores, OpenMP's spinning threads make
    each update of these small models up to ~100x slower; alone, one thread costs ~1.5x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


_SESSION: dict[str, Path] = {}


def trained_6_8(tmp_path_factory) -> Path:
    """data/6-8 trained once per session with default settings, as a checkpoint file. Shared
    with test_cli.py (which imports this), hence a module-level cache rather than a fixture."""
    if "6-8" not in _SESSION:
        path = tmp_path_factory.mktemp("model-6-8") / "6-8.pt"
        with one_thread():
            train_files([DATA_6_8], path, progress=False)
        _SESSION["6-8"] = path
    return _SESSION["6-8"]


@pytest.fixture(scope="module")
def ds_6_8():
    return load_dataset([DATA_6_8])


def tiny(ds, seed=0, **cfg) -> Checkpoint:
    return train(ds, VAEConfig(**TINY), TrainConfig(**{"epochs": 4, "seed": seed, **cfg}), progress=False)


# --- training --------------------------------------------------------------------------------


@pytest.mark.slow
def test_loss_goes_down(model_6_8):
    s = load_checkpoint(model_6_8).summary
    history = s.loss_history
    assert s.stopped.startswith("fit: the training loops' onset F1") and len(history) == s.epochs > 10
    assert history[-1] < history[0] / 10
    assert s.best_loss == history[-1]  # the loops fit: the model as it was then, not the lowest loss


@pytest.mark.slow
def test_training_stops_once_the_loops_fit_and_fit_f1_0_trains_every_update(ds_6_8):
    """The defaults study's rule: a sharper fit than fit_f1 makes the space copy its loops."""
    fit = train(ds_6_8, VAEConfig(**TINY), TrainConfig(updates=3000, fit_f1=0.9), progress=False)
    assert fit.summary.fit and fit.summary.stopped.startswith("fit: the training loops' onset F1")
    assert fit.summary.updates < 3000
    assert 0.9 <= evaluate(fit, ds_6_8.loops)["onset_f1"] < 1.0
    whole = train(ds_6_8, VAEConfig(**TINY), TrainConfig(updates=300, fit_f1=0.0), progress=False)
    assert whole.summary.stopped == "finished" and not whole.summary.fit and whole.summary.updates == 300


def test_small_sets_train_at_the_defaults_studys_settings_held_out_ones_as_at_scale(ds_6_8):
    small = tiny(ds_6_8, epochs=2)  # 32 loops: nothing held out
    held = tiny(ds_6_8, epochs=2, min_val_loops=10)  # 14 files: a tenth held out
    assert held.summary.val_loops > 0 and small.summary.val_loops == 0
    assert (small.model.config.beta, small.train_config["lr"], small.train_config["kl_warmup"]) == (1.0, 0.0015, 0.15)
    assert (held.model.config.beta, held.train_config["lr"], held.train_config["kl_warmup"]) == (0.2, 0.01, 0.3)
    chosen = tiny(ds_6_8, epochs=2, min_val_loops=10, lr=0.003)
    assert chosen.train_config["lr"] == 0.003


def test_an_epoch_is_split_into_equal_batches(ds_6_8, caplog):
    # 32 loops x 2 copies = 64 rows, at most 48 a batch: two of 32, not one of 48 and a stray 16
    with caplog.at_level(logging.INFO, logger="rvae.train"):
        ckpt = tiny(ds_6_8, batch_size=48)
    assert ckpt.summary.updates == 2 * ckpt.summary.epochs
    assert "4 epochs x 2 updates, batches of 32" in caplog.text


@pytest.mark.slow
def test_small_set_is_reconstructed(model_6_8, ds_6_8):
    ckpt = load_checkpoint(model_6_8)
    assert ckpt.summary.data["loops"] == len(ds_6_8.loops) == 32
    assert evaluate(ckpt, ds_6_8.loops)["onset_f1"] >= 0.9


@pytest.mark.slow
def test_same_seed_same_model_different_seed_different(ds_6_8):
    a, b, c = tiny(ds_6_8, seed=3), tiny(ds_6_8, seed=3), tiny(ds_6_8, seed=4)
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.summary.best_loss == b.summary.best_loss and a.summary.loss_history == b.summary.loss_history
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.summary.loss_history != c.summary.loss_history


@pytest.mark.slow
def test_validation_split_by_file_only_with_enough_loops(ds_6_8):
    assert len(ds_6_8.loops) == 32
    few = tiny(ds_6_8, epochs=1).summary  # default: held out only from 200 loops
    assert (few.val_loops, few.train_loops, few.monitored) == (0, 32, "training")
    assert tiny(ds_6_8, epochs=1, min_val_loops=33).summary.val_loops == 0
    enough = tiny(ds_6_8, epochs=1, min_val_loops=32).summary
    assert enough.monitored == "validation" and enough.val_loops > 0
    assert enough.train_loops + enough.val_loops == 32
    # By file: a held-out file has none of its loops in training.
    train_idx, val_idx = train_module._split(ds_6_8, TrainConfig(min_val_loops=32), np.random.default_rng(0))
    file_of = [g.file for g in ds_6_8.loops]
    assert {file_of[i] for i in val_idx} and not {file_of[i] for i in val_idx} & {file_of[i] for i in train_idx}


@pytest.mark.slow
def test_keyboard_interrupt_keeps_the_best_model_so_far(ds_6_8, monkeypatch):
    models, snapshots = [], []

    class Recorded(GrooveVAE):
        def __init__(self, config):
            super().__init__(config)
            models.append(self)

    losses = iter([9.0, 8.0, 3.0, 5.0, 4.0])  # the end-of-epoch losses train sees; the 6th epoch is interrupted

    def full_loss(parts, config):
        snapshots.append({k: v.clone() for k, v in models[0].state_dict().items()})
        try:
            return next(losses)
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(train_module, "GrooveVAE", Recorded)
    monkeypatch.setattr(train_module, "total_loss", full_loss)
    ckpt = tiny(ds_6_8, epochs=20, kl_warmup=0.0)
    s = ckpt.summary
    assert s.stopped == "interrupted after 5 epochs"
    assert (s.epochs, s.best_epoch, s.best_loss) == (5, 3, 3.0)
    state = ckpt.model.state_dict()
    assert all(torch.equal(state[k], snapshots[2][k]) for k in state)  # the weights after epoch 3...
    assert not all(torch.equal(state[k], snapshots[-1][k]) for k in state)  # ...not the last ones
    assert ckpt.latents.shape == (32, 2)


@pytest.mark.slow
def test_training_logs_a_line_every_tenth_of_the_run_and_an_early_stop(ds_6_8, caplog):
    caplog.set_level(logging.INFO, logger="rvae.train")
    tiny(ds_6_8, epochs=20)
    lines = [r.getMessage() for r in caplog.records if r.name == "rvae.train"]
    assert lines[0] == "training on 32 loops (0 held out): 20 epochs x 1 updates, batches of 64"
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == [f"epoch {e}/20" for e in range(2, 21, 2)]
    assert all(", lr " in line and "validation" not in line for line in epochs)
    assert not any("stopped" in line for line in lines)
    caplog.clear()
    tiny(ds_6_8, epochs=5, min_val_loops=32, max_seconds=1e-9)  # held-out files, and out of time at once
    lines = [r.getMessage() for r in caplog.records if r.name == "rvae.train"]
    assert lines[-1] == "stopped early (time limit after epoch 1), keeping the best model: epoch 1"
    assert ", validation loss " in lines[-2] and lines[-2].startswith("epoch 1/5: loss ")


@pytest.mark.slow
def test_the_data_config_travels_with_the_model(make_midi, tmp_path):
    ds = load_dataset([DATA_6_8], DataConfig(min_onsets=3))
    ckpt = tiny(ds, epochs=1)
    assert ckpt.data_config["min_onsets"] == 3 and ckpt.data_config["time_signature"] == "6/8"
    assert ckpt.min_onsets == 3
    assert Checkpoint(ckpt.model, ckpt.grid, ckpt.kit).min_onsets == DataConfig().min_onsets == 5  # says nothing


@pytest.mark.slow
@needs(CLIPS / "small")
def test_groove_clips_small_are_reconstructed_with_default_settings():
    ds = load_dataset([CLIPS / "small"])
    assert ds.grid.meter == "4/4" and len(ds.loops) >= 20
    ckpt = train(ds, progress=False)
    result = evaluate(ckpt, ds.loops)
    assert result["onset_f1"] >= 0.95, result


@pytest.mark.slow
def test_training_uses_its_thread_count_and_gives_the_callers_back(ds_6_8, monkeypatch):
    seen = []
    real = train_module.total_loss

    def spy(parts, config):
        seen.append(torch.get_num_threads())
        return real(parts, config)

    monkeypatch.setattr(train_module, "total_loss", spy)
    torch.set_num_threads(2)  # the caller's (the autouse fixture restores its own after)
    tiny(ds_6_8, epochs=2)
    assert seen == [1, 1] and torch.get_num_threads() == 2  # TrainConfig's default: one
    seen.clear()
    tiny(ds_6_8, epochs=2, threads=2)
    assert seen == [2, 2]
    torch.set_num_threads(1)
    assert TrainConfig().threads == 1 and tiny(ds_6_8, epochs=1).train_config["threads"] == 1
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("threads", 0, "must be at least 1"),
        ("batch_size", 0, "must be at least 1"),
        ("epochs", 0, "must be at least 1"),
        ("lr", -1.0, "must not be negative"),
        ("lr", float("nan"), "must not be negative"),
        ("kl_warmup", 1.5, "must be between 0 and 1"),
        ("val_fraction", 1.0, "must be at least 0 and below 1"),
        ("seed", -1, "must not be negative"),
        ("updates", 0, "must be at least 1"),
        ("latent_noise", -0.5, "must not be negative"),
    ],
)
def test_train_config_refuses_bad_fields_naming_them(field, value, problem):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert (e.value.field, e.value.problem) == (field, problem)
    assert TrainConfig(epochs=None, max_seconds=None).epochs is None  # None: unset, not out of range


def test_epochs_and_updates_are_one_choice():
    with pytest.raises(ConfigError) as e:
        TrainConfig(epochs=10, updates=100)
    assert (e.value.field, e.value.problem) == ("updates", "cannot be given with epochs: give one of them")


@pytest.mark.slow
def test_updates_are_rounded_up_to_whole_epochs(ds_6_8):
    per_epoch = -(-len(ds_6_8.loops) * ds_6_8.copies // 16)  # batches of 16
    ckpt = tiny(ds_6_8, epochs=None, updates=per_epoch + 1, batch_size=16)
    assert ckpt.summary.updates == 2 * per_epoch and ckpt.summary.epochs == 2
    assert ckpt.train_config["updates"] == per_epoch + 1


# --- checkpoints ------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoint_holds_everything_and_loads_with_weights_only(model_6_8):
    d = torch.load(model_6_8, map_location="cpu", weights_only=True)
    assert d["format"] == "rvae-checkpoint"
    assert d["grid"] == {"time_signature": [6, 8], "steps_per_quarter": 24, "bars": 1}
    assert d["kit"] == KITS["default"].to_dict()
    assert d["model_config"] == {
        "instruments": 9,
        "steps": 72,
        "hidden": 256,
        "latent_dim": 2,
        "beta": 1.0,
        "w_velocity": 1.0,
        "w_offset": 1.0,
        "dropout": 0.0,
    }
    assert d["data_config"]["time_signature"] == "6/8" and d["train_config"]["seed"] == 0
    assert d["summary"]["loops"] == 32 and d["summary"]["files_read"] == 14  # one flat dict, as always
    assert d["summary"]["epochs"] == len(d["summary"]["loss_history"]) and "data" not in d["summary"]
    assert d["latents"].shape == (32, 2) and torch.isfinite(d["latents"]).all()
    assert len(d["sources"]) == 32 and d["sources"][0] == "ballad_01.mid bar 1"
    ckpt = load_checkpoint(model_6_8)
    assert ckpt.summary.data["loops"] == 32 and ckpt.summary.to_dict() == d["summary"]
    assert ckpt.grid == Grid((6, 8)) and ckpt.kit == KITS["default"] and ckpt.path == model_6_8
    assert not ckpt.model.training


@pytest.mark.slow
def test_a_checkpoint_from_before_dropout_loads_as_the_network_it_was(model_6_8, tmp_path):
    d = torch.load(model_6_8, map_location="cpu", weights_only=True)
    del d["model_config"]["dropout"]  # written before the field existed
    del d["train_config"]["updates"], d["train_config"]["latent_noise"]
    torch.save(d, tmp_path / "old.pt")
    old, new = load_checkpoint(tmp_path / "old.pt"), load_checkpoint(model_6_8)
    assert old.model.config.dropout == 0.0 and old.model.config == new.model.config
    z = torch.tensor([[0.5, -1.0]])
    torch.testing.assert_close(old.model.decode(z), new.model.decode(z))


@pytest.mark.slow
def test_checkpoint_is_written_atomically(ds_6_8, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    first = tiny(ds_6_8, epochs=1)
    save_checkpoint(first, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    before = path.read_bytes()

    def full_disk(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tiny(ds_6_8, epochs=2, seed=1), path)
    assert path.read_bytes() == before  # the old checkpoint is untouched...
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # ...and no temporary file is left
    monkeypatch.undo()
    second = tiny(ds_6_8, epochs=2, seed=1)
    save_checkpoint(second, path)
    assert path.read_bytes() != before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    torch.testing.assert_close(
        load_checkpoint(path).model.encoder.mean.weight, second.model.encoder.mean.weight, atol=1e-3, rtol=1e-3
    )  # stored as float16


def test_default_model_checkpoint_is_under_10_mb(tmp_path):
    path = save_checkpoint(Checkpoint(GrooveVAE(VAEConfig()), Grid((4, 4)), KITS["default"]), tmp_path / "default.pt")
    assert load_checkpoint(path).model.config.steps == 96
    assert path.stat().st_size < 10_000_000


@pytest.mark.slow
def test_latent_dim_8_trains_saves_and_decodes(ds_6_8, tmp_path):
    ckpt = train(ds_6_8, VAEConfig(latent_dim=8, **TINY), TrainConfig(epochs=2), progress=False)
    assert ckpt.latents.shape == (32, 8)
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "z8.pt"))
    assert loaded.model.config.latent_dim == 8 and loaded.latents.shape == (32, 8)
    assert decode(loaded, [0.5, -1.0]).onsets.shape == (9, 72)


def bad_checkpoint(kind: str, good: Path, path: Path) -> Path:
    """A file that is no usable checkpoint, made from a good one. Shared with test_cli.py."""
    data = good.read_bytes()
    if kind == "corrupt":  # bits flipped inside the stored weights
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :])
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "midi":  # a MIDI file passed where the checkpoint goes
        write_midi_file(path, [(36, 100, 0.0)])
    elif kind == "other torch file":
        torch.save({"weights": torch.zeros(3), "epoch": 4}, path)
    elif kind == "python objects":
        torch.save({"format": "rvae-checkpoint", "ratio": fractions.Fraction(1, 3)}, path)
    elif kind in ("incompatible shape", "grid mismatch"):
        d = torch.load(good, weights_only=True)
        if kind == "incompatible shape":
            d["state"]["encoder.mean.weight"] = torch.zeros(3, d["model_config"]["hidden"], dtype=torch.float16)
        else:
            d["grid"]["time_signature"] = [4, 4]  # a 96-step grid for a 72-step model
        torch.save(d, path)
    return path


BAD = {  # kind -> what the message must say
    "corrupt": "is truncated or corrupt",
    "truncated": "is truncated or corrupt",
    "empty": "is empty",
    "midi": "is not an rvae checkpoint",
    "other torch file": "is not an rvae checkpoint",
    "python objects": "is not an rvae checkpoint",
    "incompatible shape": "weights do not fit its model config .size mismatch for encoder.mean.weight",
    "grid mismatch": "model's shape does not match its grid and kit",
}


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    """A tiny untrained 6/8 model, enough to damage."""
    torch.manual_seed(0)
    model = GrooveVAE(VAEConfig(instruments=9, steps=72, hidden=16))
    return save_checkpoint(Checkpoint(model, Grid((6, 8)), KITS["default"]), tmp_path_factory.mktemp("ck") / "ok.pt")


@pytest.mark.parametrize("kind", BAD)
def test_unusable_checkpoints_raise_checkpoint_error(kind, small_checkpoint, tmp_path):
    load_checkpoint(small_checkpoint)  # the good one loads
    path = bad_checkpoint(kind, small_checkpoint, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=BAD[kind]) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
