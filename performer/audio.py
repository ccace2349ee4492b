"""Sound without a DAW: a small drum kit synthesised at start-up, played through pygame's mixer.

The kit is made with numpy from a few recipes (no sample files): sine sweeps for kick
and toms, filtered noise for snare and clap, sums of square waves for the metallic hats
and cymbals (the TR-808's six-oscillator trick). Band limits are applied in the frequency
domain to the noise before its envelope, so a transient is not smeared by the filter.
Every sound is float32 mono in [-1, 1], ends in a short fade to exact silence, and is
reproducible (fixed seeds).

``AudioPreview.send`` is called from the clock thread, so it does one dictionary lookup,
one volume set and one ``Channel.play`` (well under a microsecond of mixer work each) and
never raises. Each drum has a mixer channel of its own, so a new hit cuts the previous
one of the same drum; closed, pedal and open hat share one channel, so they choke each
other as on a real hi-hat.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before the import, which prints otherwise
import pygame

from rvae.kit import Kit

if TYPE_CHECKING:
    import mido

__all__ = ["AudioPreview", "open_audio", "synth_kit"]

logger = logging.getLogger(__name__)

HAT_NOTES = frozenset({42, 44, 46})  # GM closed, pedal and open hat: one channel, they choke
MAX_SECONDS = 1.5
TR808_SQUARES = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)  # Hz, the 808's cymbal/hat oscillators
TOMS = {43: 98.0, 45: 98.0, 47: 139.0, 50: 196.0}  # GM low (both notes) / mid / high tom, Hz


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(seconds * sr)) / sr


def _band(x: np.ndarray, sr: int, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Zero-phase band limit: 4th-order-like high-pass at ``low`` and low-pass at ``high`` Hz,
    by multiplying the spectrum (a per-sample IIR loop in Python would be ~100x slower)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / sr)
    gain = np.ones_like(f)
    if low:
        gain /= 1 + (low / np.maximum(f, 1e-3)) ** 4
    if high:
        gain /= 1 + (f / high) ** 4
    return np.fft.irfft(spec * gain, len(x))


def _squares(freqs, t: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return sum(np.sign(np.sin(2 * np.pi * f * scale * t)) for f in freqs) / len(freqs)


def _finish(x: np.ndarray, sr: int, peak: float, fade: float = 0.02) -> np.ndarray:
    """Normalise to ``peak``, fade the last ``fade`` seconds to exact zero (no click when the
    sound ends), float32."""
    x = x - x.mean()  # a DC offset would thump at the start and end
    x = x * (peak / max(1e-9, float(np.max(np.abs(x)))))
    n = min(len(x), int(fade * sr))
    x[len(x) - n :] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, n)))
    return np.clip(x, -1, 1).astype(np.float32)


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.7, sr)
    freq = 48 + 110 * np.exp(-t / 0.04)  # the pitch drop is what makes it a kick
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.17)
    click = _band(rng.standard_normal(len(t)), sr, low=1500) * np.exp(-t / 0.003)
    return _finish(np.tanh(1.8 * (body + 0.25 * click)), sr, 0.95)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.45, sr)
    tone = (np.sin(2 * np.pi * 185 * t) + 0.6 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.05)
    noise = _band(rng.standard_normal(len(t)), sr, 1500, 9000)
    noise = noise / np.max(np.abs(noise)) * np.exp(-t / 0.13)
    return _finish(0.6 * tone + noise, sr, 0.8)


def _side_stick(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.12, sr)
    tone = (np.sin(2 * np.pi * 520 * t) + 0.5 * np.sin(2 * np.pi * 1650 * t)) * np.exp(-t / 0.012)
    click = _band(rng.standard_normal(len(t)), sr, 2000) * np.exp(-t / 0.002)
    return _finish(tone + 0.3 * click, sr, 0.6, fade=0.01)


def _clap(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(0.4, sr)
    noise = _band(rng.standard_normal(len(t)), sr, 900, 5000)
    env = 0.3 * np.exp(-np.maximum(t - 0.03, 0) / 0.09) * (t >= 0.03)
    for start in (0.0, 0.01, 0.02, 0.03):  # several hands, a few milliseconds apart
        env = env + np.exp(-(t - start) / 0.004) * (t >= start)
    return _finish(noise * env, sr, 0.7)


def _hat(sr: int, rng: np.random.Generator, seconds: float, decay: float) -> np.ndarray:
    t = _t(seconds, sr)
    metal = _squares(TR808_SQUARES, t) + 0.4 * rng.standard_normal(len(t))
    return _finish(_band(metal, sr, 7000, 15000) * np.exp(-t / decay), sr, 0.45)


def _tom(sr: int, rng: np.random.Generator, hz: float) -> np.ndarray:
    t = _t(0.7, sr)
    freq = hz * (1 + 0.35 * np.exp(-t / 0.05))
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.17)
    attack = _band(rng.standard_normal(len(t)), sr, 800, 6000) * np.exp(-t / 0.01)
    return _finish(body + 0.15 * attack, sr, 0.75)


def _crash(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(MAX_SECONDS, sr)
    metal = _squares(TR808_SQUARES, t, 1.73) + 0.8 * rng.standard_normal(len(t))
    wash = _band(metal, sr, 3000, 14000)
    return _finish(wash * np.exp(-t / 0.33) * (1 - np.exp(-t / 0.002)), sr, 0.55, fade=0.08)


def _ride(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(MAX_SECONDS, sr)
    partials = (2390.0, 3150.0, 4530.0, 5210.0, 6660.0)  # inharmonic: a bell, not a note
    bell = sum(np.sin(2 * np.pi * f * t) for f in partials) / len(partials) * np.exp(-t / 0.3)
    wash = _band(_squares(TR808_SQUARES, t, 2.9) + rng.standard_normal(len(t)), sr, 5000, 13000)
    wash = wash / np.max(np.abs(wash)) * np.exp(-t / 0.28)
    return _finish(0.5 * bell + wash, sr, 0.45, fade=0.08)


def _blip(sr: int, note: int) -> np.ndarray:
    """A short pitched tone for a note the kit has no recipe for (a user kit's cowbell)."""
    t = _t(0.25, sr)
    hz = 440.0 * 2 ** ((note - 69) / 12)
    return _finish(np.sin(2 * np.pi * hz * t) * np.exp(-t / 0.06), sr, 0.5)


def synth_kit(sample_rate: int = 44100) -> dict[int, np.ndarray]:
    """GM note -> float32 mono sound in [-1, 1], at most MAX_SECONDS long; ~50 ms to make."""
    sr = int(sample_rate)

    def rng(note: int) -> np.random.Generator:
        return np.random.default_rng(note)  # one seed per sound: the same kit every start

    kit = {
        36: _kick(sr, rng(36)),
        37: _side_stick(sr, rng(37)),
        38: _snare(sr, rng(38)),
        39: _clap(sr, rng(39)),
        42: _hat(sr, rng(42), 0.18, 0.035),
        46: _hat(sr, rng(46), 0.9, 0.28),
        49: _crash(sr, rng(49)),
        51: _ride(sr, rng(51)),
    }
    for note, hz in TOMS.items():
        kit[note] = kit[43] if note == 45 else _tom(sr, rng(note), hz)  # 43 and 45: the low tom
    kit[35], kit[40], kit[44] = kit[36], kit[38], kit[42]  # GM's second kick, snare; pedal hat
    return kit


def _volume(velocity: int) -> float:
    """MIDI velocity -> channel volume. A power curve rather than linear, so ghost notes
    (velocity ~30) sit about 20 dB under accents, as they do from a drummer."""
    return (max(0, min(127, velocity)) / 127) ** 1.6


class AudioPreview:
    """Plays a Kit's out notes on the synthesised drums (an ``Output``, as the MIDI port is).
    Made by ``open_audio``."""

    lead = 0.0  # the mixer plays at once (its buffer's latency is the same for every hit)
    lost = False  # playback errors are swallowed and counted in ``errors``, never fatal

    def __init__(self, kit: Kit, sample_rate: int, channels: int) -> None:
        sounds = synth_kit(sample_rate)
        notes = list(dict.fromkeys(kit.out_notes))  # in kit order, each once
        groups: dict[object, pygame.mixer.Channel] = {}  # choke group -> its mixer channel
        self._route: dict[int, tuple[pygame.mixer.Channel, pygame.mixer.Sound]] = {}
        n_groups = len({"hat" if note in HAT_NOTES else note for note in notes})
        pygame.mixer.set_num_channels(max(8, n_groups))
        pygame.mixer.set_reserved(n_groups)  # nobody else's Sound.play may take them
        for note in notes:
            mono = sounds.get(note)
            if mono is None:
                mono = _blip(sample_rate, note)
            pcm = np.round(mono * 32767).astype(np.int16)
            frames = np.ascontiguousarray(np.repeat(pcm[:, None], channels, axis=1)) if channels > 1 else pcm
            group = "hat" if note in HAT_NOTES else note
            channel = groups.setdefault(group, pygame.mixer.Channel(len(groups)))
            self._route[note] = (channel, pygame.sndarray.make_sound(frames))
        # send() on the clock thread and close() on the main one must not overlap: a Channel
        # used after mixer.quit() crashes the process (a segfault, not an exception)
        self._lock = threading.Lock()
        self._open = True
        self.errors = 0  # playback errors swallowed; the caller never sees them

    def channel_for(self, note: int) -> pygame.mixer.Channel | None:
        """The mixer channel a note plays on (shared by the hats), or None if not in the kit."""
        route = self._route.get(note)
        return route[0] if route else None

    def send(self, msg: mido.Message) -> None:
        """Play a mido note_on (velocity > 0); ignore everything else. Never raises."""
        try:
            if msg.type != "note_on" or msg.velocity == 0:
                return
            route = self._route.get(msg.note)
            if route is None:
                return
            with self._lock:
                if self._open:
                    channel, sound = route
                    channel.set_volume(_volume(msg.velocity))  # before play: play keeps it
                    channel.play(sound)  # on a busy channel this cuts the previous hit
        except Exception:  # the clock thread must survive any mixer trouble
            self.errors += 1
            if self.errors == 1:
                logger.debug("audio preview: playback failed", exc_info=True)

    def panic(self) -> None:
        """Silence every sound now."""
        try:
            with self._lock:
                if self._open:
                    pygame.mixer.stop()
        except Exception:  # as send
            self.errors += 1

    def close(self) -> None:
        """Stop and release the mixer; later sends are ignored."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            try:
                pygame.mixer.stop()
                pygame.mixer.quit()
            except Exception:  # closing must not fail the shutdown it is part of
                logger.debug("audio preview: closing the mixer failed", exc_info=True)

    def __enter__(self) -> AudioPreview:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_audio(kit: Kit, sample_rate: int = 44100, buffer: int = 256) -> tuple[AudioPreview | None, str]:
    """Open the mixer and synthesise the kit: (preview, "audio preview on (...)"), or
    (None, "audio preview off: <why>") when no audio device can open. Never raises."""
    if pygame.mixer.get_init() is not None:
        return None, "audio preview off: pygame's mixer is already in use"
    try:
        # allowedchanges=0: SDL converts to the device's format, so the sounds made here match
        pygame.mixer.init(sample_rate, -16, 2, buffer, allowedchanges=0)
    except (pygame.error, RuntimeError) as e:  # RuntimeError covers pygame built without its mixer
        return None, f"audio preview off: {str(e).strip() or type(e).__name__}"
    try:
        freq, _, channels = pygame.mixer.get_init()
        preview = AudioPreview(kit, freq, channels)
    except Exception as e:  # the performer plays on without a preview
        pygame.mixer.quit()
        return None, f"audio preview off: {e}"
    latency = 1000 * buffer / freq
    return preview, f"audio preview on ({freq} Hz, {buffer}-frame buffer = {latency:.1f} ms, {len(kit)} drums)"
