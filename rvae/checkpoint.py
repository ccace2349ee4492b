"""One file per model: weights plus everything needed to rebuild and interpret them.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` and loaded with ``weights_only=True``, so opening a checkpoint someone sent
you cannot run code. Weights are stored in half precision (the default model is ~7 MB in
float32, ~3.5 MB here); they are widened to float32 on load.

A checkpoint also keeps its training loops, hits only (``rvae.groove.pack_hits``), so that
training can continue from it on them plus new ones (``rvae.train.continue_training``),
unless trained with ``keep_loops=False``; and the square of the latent plane its map and
pad span (``extent``): the training loops' extent plus a margin. Checkpoints written before
either are read too: without loops, and with the square of their stored latents.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from rvae.dataset import DataConfig
from rvae.errors import UserError
from rvae.files import write_atomic
from rvae.grid import Grid
from rvae.groove import Groove, check_packed, unpack_hits
from rvae.kit import Kit
from rvae.model import GrooveVAE, VAEConfig

__all__ = [
    "MAP_EXTENT",
    "Checkpoint",
    "CheckpointError",
    "TrainSummary",
    "extent_of",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "rvae-checkpoint"
VERSION = 1  # loops and extent are optional keys: old readers ignore them, old files lack them

MAP_EXTENT = 3.0  # the map spans [-3, 3]^2, as R-VAE's: 3 standard deviations of the prior
MIN_EXTENT = 1.0  # a collapsed space (every loop near 0) still gets a square one prior sd wide


def extent_of(latents: torch.Tensor | np.ndarray | None) -> float:
    """The half-width of the square that holds every point of ``latents`` (N, latent) in its
    first two coordinates, plus a tenth as margin (a dot is not drawn on the edge), rounded
    up to a half unit so the axes get round ticks; MAP_EXTENT when there are none.
    The bundled 4/4 model's 93 loops reach |z| 7.4: its square is [-8.5, 8.5]^2."""
    if latents is None or len(latents) == 0:
        return MAP_EXTENT
    reach = float(np.abs(np.asarray(latents, dtype=np.float64)[:, :2]).max())
    if not np.isfinite(reach):
        return MAP_EXTENT
    return max(MIN_EXTENT, math.ceil(reach * 1.1 * 2) / 2)


class CheckpointError(UserError):
    """The file is not a checkpoint this version of rvae can use; the message says why."""


@dataclass
class TrainSummary:
    """What training saw and reached. Saved as one flat dict, the data's figures beside the
    training's, as every checkpoint has held it."""

    data: dict = field(default_factory=dict)  # the set's figures (Dataset.to_dict): files, loops, notes...
    train_loops: int = 0
    val_loops: int = 0  # held out for the validation loss; 0: every loop trained
    epochs: int = 0
    updates: int = 0  # optimiser steps
    continued_from: str = ""  # the checkpoint whose weights training started from ("" = from scratch)
    best_epoch: int = 0  # the epoch whose weights were kept
    best_loss: float | None = None  # at full beta; None when no epoch finished
    monitored: str = ""  # "validation" or "training": the loss that chose the best epoch
    seconds: float = 0.0
    stopped: str = ""  # "finished", or why training stopped early
    loss_history: list[float] = field(default_factory=list)  # training loss per epoch
    params: int = 0
    trained_at: str = ""
    torch: str = ""  # torch's version

    @property
    def interrupted(self) -> bool:
        return self.stopped.startswith("interrupted")

    @property
    def fit(self) -> bool:
        """Stopped once the training loops fit (TrainConfig.fit_f1): the model kept is the one
        of that epoch, not the best loss."""
        return self.stopped.startswith("fit: ")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**d.pop("data"), **d}

    @classmethod
    def from_dict(cls, d: dict) -> TrainSummary:
        """The flat dict of ``to_dict``; keys that are not training's are the data's."""
        own = {f.name for f in fields(cls)} - {"data"}
        return cls(data={k: v for k, v in d.items() if k not in own}, **{k: v for k, v in d.items() if k in own})


@dataclass
class Checkpoint:
    model: GrooveVAE
    grid: Grid
    kit: Kit
    data_config: dict = field(default_factory=dict)
    train_config: dict = field(default_factory=dict)
    summary: TrainSummary = field(default_factory=TrainSummary)
    latents: torch.Tensor | None = None  # (N, latent) posterior means of the training loops
    sources: list[str] = field(default_factory=list)  # "file.mid bar 3" for each latent
    path: Path | None = None
    kept: dict | None = None  # the training loops' hits (groove.pack_hits); None: not kept
    extent: float = MAP_EXTENT  # the map and pad span [-extent, extent]^2 (see extent_of)

    @property
    def keeps_loops(self) -> bool:
        return self.kept is not None

    @property
    def n_kept_loops(self) -> int:
        return 0 if self.kept is None else len(self.kept["counts"])

    def training_loops(self) -> list[Groove]:
        """The loops it was trained on, as Grooves on its grid and kit."""
        if self.kept is None:
            name = f"checkpoint {self.path}" if self.path else "the checkpoint"
            why = (
                "was trained with --no-keep-loops"
                if self.train_config.get("keep_loops") is False
                else "was written before checkpoints kept their training loops"
            )
            raise UserError(f"{name} {why}, so it holds no training loops to continue from: train a new model")
        return unpack_hits(self.kept, self.grid, self.kit)

    @property
    def min_onsets(self) -> int:
        """Training dropped loops with fewer hits; ``rvae eval`` drops them too. Checkpoints
        that do not say (trained from a hand-made Dataset) get the default."""
        return int(self.data_config.get("min_onsets", DataConfig.min_onsets))

    def check_fits(self, grooves: Iterable[Groove], what: str = "groove") -> None:
        """Refuse, in one sentence, a groove that is not on this model's grid and kit."""
        for g in grooves:
            if g.grid != self.grid or g.kit.names != self.kit.names:
                raise UserError(
                    f"{g.source or what} is on {g.grid.meter} x {g.grid.steps} steps with kit {g.kit.name!r}, "
                    f"the model on {self.grid.meter} x {self.grid.steps} with kit {self.kit.name!r}"
                )

    @property
    def all_channels(self) -> bool:
        """Training read every MIDI channel: files read for this model are read the same way."""
        return bool(self.data_config.get("all_channels", False))


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    m = ckpt.model
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "grid": ckpt.grid.to_dict(),
        "kit": ckpt.kit.to_dict(),
        "model_config": m.config_dict(),
        "data_config": ckpt.data_config,
        "train_config": ckpt.train_config,
        "normalisation": {"velocity": "MIDI velocity / 127", "offset": "half steps, positive = late"},
        "summary": ckpt.summary.to_dict(),
        "state": {k: v.detach().to("cpu", torch.float16) for k, v in m.state_dict().items()},
        "latents": (ckpt.latents if ckpt.latents is not None else torch.zeros(0, m.config.latent_dim)).float().cpu(),
        "sources": list(ckpt.sources),
        "extent": float(ckpt.extent),
    }
    if ckpt.kept is not None:  # tensors and lists only: torch.load(weights_only=True) refuses numpy
        payload["loops"] = {
            k: v if isinstance(v, list) else torch.from_numpy(np.asarray(v)) for k, v in ckpt.kept.items()
        }
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def _reason(e: Exception, limit: int = 120) -> str:
    """An exception as a short phrase: torch's messages run over several lines and sentences."""
    text = re.split(r"(?<=[.:])\s", " ".join(str(e).split()), maxsplit=1)[0].rstrip(".:") or type(e).__name__
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a folder: give the checkpoint file in it, e.g. {path / 'model.pt'}"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty")
    if head != ZIP_MAGIC:  # checked first: torch.load on other bytes fails with messages about pickles
        raise CheckpointError(f"{path} is not an rvae checkpoint (it is not a file written by torch.save)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # torch.load skips the checksums: flipped bits would load as weights
    except Exception:  # zipfile raises BadZipFile, OSError, ValueError... for a damaged archive
        damaged = "the archive's directory"
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (its zip archive is damaged)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: the error says enough
            warnings.simplefilter("ignore")
            d = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a Python object, which could run code
        raise CheckpointError(
            f"{path} is not an rvae checkpoint (it holds Python objects, which rvae does not load)"
        ) from None
    except Exception as e:  # a damaged archive makes torch.load raise almost anything (RuntimeError, OSError, KeyError)
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_reason(e)})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rvae checkpoint")
    if d.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {d.get('version')}, this rvae reads {VERSION}")
    try:
        grid, kit = Grid.from_dict(d["grid"]), Kit.from_dict(d["kit"])
        config = VAEConfig(**d["model_config"])
        model = GrooveVAE(config)
        state = {k: v.float() for k, v in d["state"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path} is incompatible with this rvae ({_reason(e)})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        # torch puts a heading first, then one line per mismatched tensor: name the first tensor
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise CheckpointError(
            f"checkpoint {path}: its weights do not fit its model config "
            f"({_reason(RuntimeError(lines[1] if len(lines) > 1 else str(e)))})"
        ) from None
    if (config.instruments, config.steps) != (len(kit), grid.steps):
        raise CheckpointError(f"checkpoint {path}: the model's shape does not match its grid and kit")
    model.eval()
    kept = d.get("loops")
    if kept is not None:
        try:
            kept = {k: v if isinstance(v, list) else v.numpy() for k, v in kept.items()}
            check_packed(kept, grid, kit)  # now: a damaged store fails on load, not mid-performance
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f"checkpoint {path}: its training loops are damaged ({_reason(e)})") from None
    latents = d.get("latents")
    extent = d.get("extent")
    if not (isinstance(extent, float) and math.isfinite(extent) and extent > 0):
        extent = extent_of(latents)  # written before checkpoints stored it
    return Checkpoint(
        model,
        grid,
        kit,
        d.get("data_config", {}),
        d.get("train_config", {}),
        TrainSummary.from_dict(d.get("summary", {})),
        latents,
        list(d.get("sources", [])),
        path,
        kept,
        extent,
    )
