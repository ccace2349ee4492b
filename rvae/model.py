"""GrooveVAE: R-VAE's shape in PyTorch.

Encoder: three input branches (onsets, velocities, offsets; each instruments x steps,
flattened) -> one shared layer -> mean and log-variance of z. Decoder: z -> a shared layer
-> three heads: onset probabilities (sigmoid), velocities (sigmoid), offsets (tanh).

Loss per loop: BCE(onsets) + w_velocity * SE(velocities) + w_offset * SE(offsets) + beta * KL,
errors summed over cells. Velocity and offset errors count only where the true loop has a
hit: elsewhere they have no meaning, and fitting zeros there would pull real hits towards
silence and the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from rvae.errors import ConfigError, check_at_least

__all__ = ["GrooveVAE", "VAEConfig", "kl_divergence", "total_loss"]


BETA = 1.0  # the KL term's weight by default: the defaults study's (README)


@dataclass
class VAEConfig:
    instruments: int = 9  # rows of a Groove (the kit's classes)
    steps: int = 96  # columns of a Groove (the grid's steps per loop)
    hidden: int = 256  # width of every hidden layer; R-VAE uses 512, 256 keeps the file under 10 MB
    latent_dim: int = 2  # 2 = a plane the performer can walk on
    # None: BETA, unless training holds files out (rvae.train: 0.2, as measured at scale); a
    # trained model's checkpoint holds the number it was trained with.
    beta: float | None = field(
        default=None,
        metadata={
            "help": "weight of the KL term (default: None: 1.0 from scratch with no files held out, "
            "0.2 when files are held out)"
        },
    )
    w_velocity: float = 1.0  # weight of the velocity error against onset BCE
    w_offset: float = 1.0  # weight of the microtiming error
    # Dropout on every hidden layer while training (none at inference). It adds no weights, so
    # a checkpoint from before it existed loads with 0, the network it was trained as.
    dropout: float = field(
        default=0.0,
        metadata={"help": "share of hidden units dropped at each training update (0: none; below 1)"},
    )

    def __post_init__(self) -> None:
        check_at_least(self, 1, "instruments", "steps", "hidden", "latent_dim")
        check_at_least(self, 0, "beta", "w_velocity", "w_offset")
        if not 0 <= self.dropout < 1:  # 1 would drop every unit
            raise ConfigError("dropout", self.dropout, "must be at least 0 and below 1")

    @property
    def cells(self) -> int:
        return self.instruments * self.steps


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) of each loop's posterior (B, latent), summed over z, mean over loops."""
    return -0.5 * (1 + logvar - mean**2 - logvar.exp()).sum() / mean.shape[0]


T = TypeVar("T", float, torch.Tensor)


def total_loss(parts: Mapping[str, T], c: VAEConfig, kl_weight: float = 1.0) -> T:
    """The weighted sum of the terms of ``GrooveVAE.loss``, on tensors or on plain numbers
    (training sums each term over an epoch). ``kl_weight`` scales beta during KL warm-up."""
    return (
        parts["onset_bce"]
        + c.w_velocity * parts["velocity_se"]
        + c.w_offset * parts["offset_se"]
        + kl_weight * (BETA if c.beta is None else c.beta) * parts["kl"]
    )


def _drop(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    # Skipped at 0, not dropout(p=0): the models of before dropout draw the same random numbers.
    return F.dropout(h, p, training) if p > 0 and training else h


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        self.dropout = c.dropout
        self.branches = nn.ModuleList(nn.Linear(c.cells, c.hidden) for _ in range(3))
        self.shared = nn.Linear(3 * c.hidden, c.hidden)
        self.mean = nn.Linear(c.hidden, c.latent_dim)
        self.logvar = nn.Linear(c.hidden, c.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, 3, instruments, steps)
        x = x.flatten(2)  # (B, 3, cells)
        h = torch.cat([F.relu(b(x[:, i])) for i, b in enumerate(self.branches)], dim=1)  # (B, 3*hidden)
        h = _drop(h, self.dropout, self.training)
        h = _drop(F.relu(self.shared(h)), self.dropout, self.training)  # (B, hidden)
        return self.mean(h), self.logvar(h)  # (B, latent), (B, latent)


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        self.c = c
        self.shared = nn.Linear(c.latent_dim, c.hidden)
        self.branches = nn.Linear(c.hidden, 3 * c.hidden)
        self.heads = nn.ModuleList(nn.Linear(c.hidden, c.cells) for _ in range(3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (B, latent) -> raw head outputs (B, 3, instruments, steps), before sigmoid/tanh
        p, on = self.c.dropout, self.training
        h = _drop(F.relu(self.shared(z)), p, on)  # (B, hidden)
        h = _drop(F.relu(self.branches(h)), p, on)  # (B, 3*hidden)
        h = h.view(-1, 3, self.c.hidden)  # (B, 3, hidden)
        out = torch.stack([head(h[:, i]) for i, head in enumerate(self.heads)], dim=1)  # (B, 3, cells)
        return out.view(-1, 3, self.c.instruments, self.c.steps)


class GrooveVAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> (B, 3, instruments, steps): onset probability, velocity 0..1, offset -1..1."""
        raw = self.decoder(z)
        return torch.stack([torch.sigmoid(raw[:, 0]), torch.sigmoid(raw[:, 1]), torch.tanh(raw[:, 2])], dim=1)

    def loss(
        self,
        x: torch.Tensor,
        kl_weight: float = 1.0,
        generator: torch.Generator | None = None,
        latent_noise: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """Per-batch mean of each loss term for loops x (B, 3, instruments, steps).

        ``kl_weight`` scales beta during KL warm-up. ``latent_noise``: the standard deviation
        of Gaussian noise added to z on top of the posterior's own sample, which the KL term
        does not see: the decoder must play each loop from a wider patch of the space."""
        mean, logvar = self.encode(x)  # (B, latent) each
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)  # CPU generator
        z = mean + eps * torch.exp(0.5 * logvar)  # (B, latent)
        if latent_noise > 0:  # drawn only when asked: without it the generator's stream is as before
            z = z + latent_noise * torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        raw = self.decoder(z)  # (B, 3, instruments, steps)
        onsets = x[:, 0]
        n = x.shape[0]
        parts = {
            "onset_bce": F.binary_cross_entropy_with_logits(raw[:, 0], onsets, reduction="sum") / n,
            "velocity_se": ((torch.sigmoid(raw[:, 1]) - x[:, 1]) ** 2 * onsets).sum() / n,
            "offset_se": ((torch.tanh(raw[:, 2]) - x[:, 2]) ** 2 * onsets).sum() / n,
            "kl": kl_divergence(mean, logvar),
        }
        return {"loss": total_loss(parts, self.config, kl_weight), **parts}

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def config_dict(self) -> dict:
        return asdict(self.config)
