"""The audio preview: the synthesised kit, and the mixer on SDL's dummy audio driver."""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import mido
import numpy as np
import pygame
import pytest

from performer.audio import AudioPreview, open_audio, synth_kit
from rvae.kit import KITS

GM_NOTES = {36, 37, 38, 39, 42, 43, 45, 46, 47, 49, 50, 51}  # default and rvae kits' out notes


@pytest.fixture(scope="module")
def kit() -> dict[int, np.ndarray]:
    return synth_kit(44100)


@pytest.fixture
def preview(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    p, note = open_audio(KITS["default"])
    assert p is not None, note
    assert note.startswith("audio preview on (44100 Hz")
    yield p
    p.close()
    assert pygame.mixer.get_init() is None


def test_every_drum_of_the_kits_has_a_sound(kit):
    assert GM_NOTES <= set(kit)
    assert set(KITS["default"].out_notes) <= set(kit) and set(KITS["rvae"].out_notes) <= set(kit)


@pytest.mark.parametrize("note", sorted(GM_NOTES))
def test_sounds_are_finite_loud_enough_short_and_die_away(kit, note):
    x = kit[note]
    assert x.dtype == np.float32 and x.ndim == 1
    assert np.isfinite(x).all()
    assert 0.3 <= np.abs(x).max() <= 1.0
    assert len(x) <= 1.5 * 44100
    tail = x[-len(x) // 10:]
    assert np.sqrt(np.mean(tail**2)) < 0.03 * np.abs(x).max(), "still ringing at the end"
    assert x[-1] == 0.0  # cut at silence: no click when the sound ends


def test_kit_is_reproducible_and_follows_the_sample_rate(kit):
    again = synth_kit(44100)
    assert all(np.array_equal(kit[n], again[n]) for n in GM_NOTES)
    slow = synth_kit(22050)
    assert len(slow[49]) == len(kit[49]) // 2
    assert len(kit[42]) < len(kit[46])  # closed hat shorter than open


def test_preview_plays_note_ons_and_ignores_everything_else(preview):
    kick = preview.channel_for(36)
    preview.send(mido.Message("note_off", channel=9, note=36))
    preview.send(mido.Message("control_change", channel=9, control=123, value=0))
    preview.send(mido.Message("clock"))
    preview.send(mido.Message("note_on", channel=9, note=36, velocity=0))  # a note-off in disguise
    preview.send(mido.Message("note_on", channel=9, note=60, velocity=100))  # not in the kit
    assert not kick.get_busy()
    preview.send(mido.Message("note_on", channel=9, note=36, velocity=127))
    assert kick.get_busy() and kick.get_volume() > 0.95
    preview.send(mido.Message("note_on", channel=9, note=36, velocity=40))  # cuts the last one, softer
    assert kick.get_busy() and kick.get_volume() < 0.3
    preview.panic()
    assert not kick.get_busy()
    assert preview.errors == 0


def test_hats_choke_each_other_and_other_drums_do_not(preview):
    assert preview.channel_for(42) is preview.channel_for(46)
    others = [preview.channel_for(n) for n in (36, 38, 42, 43, 47, 50, 49, 51)]
    assert len({id(c) for c in others}) == len(others)
    assert preview.channel_for(60) is None


def test_preview_after_close_ignores_everything(preview):
    preview.close()
    preview.send(mido.Message("note_on", channel=9, note=36, velocity=100))
    preview.panic()
    preview.close()
    assert preview.errors == 0


def test_send_survives_a_broken_mixer(preview, monkeypatch):
    def broken(*_):
        raise pygame.error("device lost")

    monkeypatch.setattr(preview, "_route", {36: (type("Ch", (), {"set_volume": broken, "play": broken})(), None)})
    preview.send(mido.Message("note_on", note=36, velocity=100))
    assert preview.errors == 1


def test_no_audio_device_turns_the_preview_off(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-driver")
    p, note = open_audio(KITS["default"])
    assert p is None and note.startswith("audio preview off: ")
    assert pygame.mixer.get_init() is None


def test_a_mixer_in_use_is_left_alone(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    pygame.mixer.init()
    try:
        p, note = open_audio(KITS["rvae"])
        assert p is None and "already in use" in note
        assert pygame.mixer.get_init() is not None
    finally:
        pygame.mixer.quit()


def test_preview_is_a_context_manager(monkeypatch):
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    p, _ = open_audio(KITS["rvae"], sample_rate=48000, buffer=512)
    assert isinstance(p, AudioPreview)
    with p:
        p.send(mido.Message("note_on", channel=9, note=39, velocity=90))  # rvae's "clap"
        assert p.channel_for(39).get_busy()
    assert pygame.mixer.get_init() is None
