"""Shared test helpers: MIDI files written inline, where the shared Groove data lives, and the
JACK server fixture (the rig itself is performer.testing, which the benchmark uses too)."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from performer import testing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GROOVE = SHARED / "groove"
CLIPS = SHARED / "groove-clips"
REPO = Path(__file__).resolve().parents[1]


def write_midi_file(
    path: Path, notes, ts=(4, 4), bpm=120.0, tpq=480, channel=9, tempo_changes=(), end=None, time_signatures=None
) -> Path:
    """notes: [(note, velocity, quarter position)] -> a type-0 MIDI file at ``path``.

    ``tempo_changes``: [(quarter position, bpm)]; ``time_signatures``: [(quarter, (n, d))]
    replaces the single ``ts`` (None: ``ts`` at 0; ``ts=None``: no time-signature event)."""
    events = []
    if time_signatures is None and ts is not None:
        time_signatures = [(0.0, ts)]
    for q, (n, d) in time_signatures or []:
        events.append((round(q * tpq), 0, mido.MetaMessage("time_signature", numerator=n, denominator=d)))
    events.append((0, 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    for q, b in tempo_changes:
        events.append((round(q * tpq), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(b))))
    for note, vel, q in notes:
        on = round(q * tpq)
        events.append((on, 2, mido.Message("note_on", channel=channel, note=note, velocity=vel)))
        events.append((on + tpq // 8, 1, mido.Message("note_off", channel=channel, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack(), 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - now))
        now = t
    if end is not None:
        track.append(mido.MetaMessage("end_of_track", time=max(0, round(end * tpq) - now)))
    mid = mido.MidiFile(type=0, ticks_per_beat=tpq, tracks=[track])
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(path)
    return path


@pytest.fixture
def make_midi(tmp_path):
    """make_midi([(36, 100, 0.0), (42, 80, 0.5)], ts=(7, 8), name="a.mid") -> Path"""
    counter = iter(range(10_000))

    def make(notes, name=None, **kw) -> Path:
        return write_midi_file(tmp_path / (name or f"clip{next(counter)}.mid"), notes, **kw)

    return make


def needs(path: Path):
    """Skip, saying so, when the shared Groove MIDI data is absent."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is absent (shared Groove MIDI Dataset subset)")


@pytest.fixture(scope="module")
def jack_server():
    """A JACK server (dummy driver) for each test module (performer.testing.jack_server); yields
    its name. A fresh one per module: with one server for the whole suite (hundreds of clients
    come and gone), the CC test found it timing out every cycle, stuck closing a client, in 2
    of 5 clean-clone runs; on a fresh server it passed 36 of 36."""
    try:
        testing.need_jack()
    except testing.Unavailable as e:
        pytest.skip(f"{e}: the JACK MIDI tests need a real server")
    # A fixed name: a slot in JACK's server registry that a killed run leaked is reclaimed by the
    # next server of that name (testing.free_server_slots)
    with testing.jack_server("rvae-test", sync=True) as name:  # no cycle skipped under load
        yield name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A JACK program a test needs is not installed: skip it, saying which."""
    try:
        return (yield)
    except testing.Unavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def model_6_8(tmp_path_factory) -> Path:
    """A small model trained once per session on the project's 6/8 clips (tests/test_train.py)."""
    from test_train import trained_6_8

    return trained_6_8(tmp_path_factory)
