"""Recording: the MIDI file follows the tempo that was played, with its changes."""

from __future__ import annotations

import mido
import pytest

from performer.record import Recording


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


def note(n: int) -> mido.Message:
    return mido.Message("note_on", channel=9, note=n, velocity=100)


def test_followed_tempo_and_its_changes_are_written(tmp_path):
    clock = Clock()
    rec = Recording(tmp_path / "set.mid", 120.0, (4, 4), now=clock)  # --bpm 120, but the rig plays 90
    rec.tempo(120.0)  # before the first pulse the follower still says its default
    clock.t = 100.5
    rec.tempo(90.2)
    rec.send(note(36))  # t0: beat 0
    for k in range(1, 4):
        clock.t = 100.5 + k * 60 / 90  # one quarter at 90 BPM
        rec.tempo(90.0 + 0.2 * (k % 2))  # a follower's wobble: not a change
        rec.send(note(38))
    clock.t += 60 / 90
    rec.tempo(180.0)  # the rig doubles
    rec.send(note(36))
    clock.t += 60 / 180
    rec.send(note(38))
    rec.move((0.0, 0.0), 0.0)
    path, _ = rec.save()
    mid = mido.MidiFile(path)
    tempos, ons, tick = [], [], 0
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            tempos.append((tick, round(mido.tempo2bpm(msg.tempo), 1)))
        elif msg.type == "note_on":
            ons.append(tick / mid.ticks_per_beat)
    assert tempos == [(0, 90.2), (pytest.approx(4 * 480, abs=30), 180.0)]
    assert ons == pytest.approx([0, 1, 2, 3, 4, 5], abs=0.02)  # each hit on its beat


def test_cursor_file_holds_z_and_each_instruments_density(tmp_path):
    clock = Clock()
    rec = Recording(tmp_path / "set.mid", 120.0, (4, 4), now=clock, instruments=3)
    rec.move((0.0, 0.0), 0.0)
    clock.t += 0.5
    rec.move((0.0, 0.0), 1.0)  # nothing moved: no row
    clock.t += 0.5
    rec.move((0.0, 0.0), 2.0, (0.0, -0.5))  # a density moved: a row, the missing third at 0
    clock.t += 0.5
    rec.move((1.0, -1.0), 3.0, (0.0, -0.5, 0.0))
    _, side = rec.save()
    rows = [line.split(",") for line in side.read_text().splitlines()]
    assert rows[0] == ["seconds", "beat", "z0", "z1", "density1", "density2", "density3"]
    assert rows[1:] == [
        ["0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000", "0.0000"],
        ["1.0000", "2.0000", "0.0000", "0.0000", "0.0000", "-0.5000", "0.0000"],
        ["1.5000", "3.0000", "1.0000", "-1.0000", "0.0000", "-0.5000", "0.0000"],
    ]
