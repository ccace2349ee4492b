"""The latent plane a performer and a map move over."""

from __future__ import annotations

__all__ = ["MAP_EXTENT"]

MAP_EXTENT = 3.0  # the map spans [-3, 3]^2, as R-VAE's: 3 standard deviations of the prior
