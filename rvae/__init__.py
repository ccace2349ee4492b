"""rvae: a small-data drum groove VAE with a playable 2-D latent space.

from rvae import DataConfig, load_dataset, train, save_checkpoint, load_checkpoint, decode, write_midi

ds = load_dataset(["my_loops/"], DataConfig(time_signature="6/8"))
ckpt = train(ds)
save_checkpoint(ckpt, "checkpoints/mine.pt")
groove = decode(load_checkpoint("checkpoints/mine.pt"), [0.5, -1.0])
write_midi([groove] * 4, "clip.mid", bpm=96)
"""

from rvae.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from rvae.dataset import DataConfig, Dataset, load_dataset
from rvae.generate import decode, interpolate
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.humanize import humanize, humanize_file
from rvae.kit import KITS, Kit, load_kit
from rvae.latent import decode_probs, encode, latent_map
from rvae.metrics import eval_loops, evaluate
from rvae.midi_io import MidiReadError, read_midi, write_midi
from rvae.model import GrooveVAE, VAEConfig
from rvae.picture import map_image
from rvae.train import TrainConfig, continue_training, train, train_files

__all__ = [
    "KITS",
    "Checkpoint",
    "CheckpointError",
    "DataConfig",
    "Dataset",
    "Grid",
    "Groove",
    "GrooveVAE",
    "Kit",
    "MidiReadError",
    "TrainConfig",
    "VAEConfig",
    "continue_training",
    "decode",
    "decode_probs",
    "encode",
    "eval_loops",
    "evaluate",
    "humanize",
    "humanize_file",
    "interpolate",
    "latent_map",
    "load_checkpoint",
    "load_dataset",
    "load_kit",
    "map_image",
    "read_midi",
    "save_checkpoint",
    "train",
    "train_files",
    "write_midi",
]
