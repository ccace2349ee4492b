"""The pure sequencer core and the clock thread, driven by an injected time source."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from performer.clock import PPQN, InternalClock, MidiClockFollower
from performer.control import Controls, ControlState
from performer.sequencer import Mailbox, Player, Sequencer, make_pattern
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.kit import KITS

KIT = KITS["default"]


def groove(hits, ts=(4, 4), spq=24):
    """hits: [(instrument, step, velocity, offset)] -> Groove."""
    grid = Grid(ts, spq)
    on, vel, off = (np.zeros((len(KIT), grid.steps), np.float32) for _ in range(3))
    for i, s, v, o in hits:
        on[i, s], vel[i, s], off[i, s] = 1, v / 127, o
    return Groove(on, vel, off, grid, KIT)


FOUR = make_pattern(groove([(0, 0, 100, 0), (1, 24, 90, 0), (0, 48, 100, 0), (1, 72, 90, 0)]))


def test_events_in_a_window_are_in_beats():
    seq = Sequencer(FOUR)
    ev = seq.events(0.0, 2.0)
    assert [(e.beat, e.note) for e in ev] == [(0.0, 36), (1.0, 38)]
    assert [(e.beat, e.note) for e in seq.events(2.0, 5.0)] == [(2.0, 36), (3.0, 38), (4.0, 36)]


def test_every_event_once_whatever_the_window_sizes():
    p = make_pattern(groove([(2, s, 80, o) for s, o in zip(range(0, 96, 6), np.linspace(-0.9, 0.9, 16), strict=True)]))
    whole = Sequencer(p).events(0.0, 8.0)
    seq = Sequencer(p)
    edges = np.cumsum(np.random.default_rng(0).uniform(0.001, 0.07, 400))
    pieces = []
    b = 0.0
    for e in edges[edges < 8.0]:
        pieces += seq.events(b, float(e))
        b = float(e)
    pieces += seq.events(b, 8.0)
    assert [(round(e.beat, 9), e.note) for e in pieces] == [(round(e.beat, 9), e.note) for e in whole]
    assert len(whole) == 32


def test_early_hit_of_the_next_loop_sounds_before_the_bar_line():
    p = make_pattern(groove([(0, 0, 100, -0.5)]))  # a quarter of a step early
    ev = Sequencer(p).events(3.9, 4.1)
    assert len(ev) == 1 and ev[0].beat == pytest.approx(4 - 0.25 / 24)


def test_after_locate_the_first_steps_early_hit_plays_and_the_loop_before_does_not():
    p = make_pattern(groove([(0, 0, 100, -0.5), (1, 90, 90, 0)]))  # early kick; a snare late in the bar
    seq = Sequencer(p)
    seq.locate(0.0)
    ev = seq.events(-1.0, 0.5)
    assert [(e.note, e.beat) for e in ev] == [(36, pytest.approx(-0.25 / 24))]  # not the snare at -0.25


def test_bar_one_opens_with_its_early_kick_at_start():
    p = make_pattern(groove([(0, 0, 100, -0.5), (1, 24, 90, 0)]))
    player, rec, fake = make_player(p, InternalClock(120.0))
    run_for(player, fake, 1.0)
    assert [m.note for _, m in rec.got if m.type == "note_on"][:2] == [36, 38]
    assert player.late == 0  # it cannot leave before the start: not counted as late


def test_microtiming_zero_puts_hits_on_the_grid_and_mutes_silence():
    g = groove([(0, 0, 100, 0.8), (2, 6, 70, -0.6)])
    p = make_pattern(g, microtiming=0.0)
    assert [e.beat for e in Sequencer(p).events(0, 1)] == [0.0, 0.25]
    p = make_pattern(g, mutes=frozenset({2}), velocity=127)
    assert [(e.note, e.velocity) for e in Sequencer(p).events(0, 1)] == [(36, 127)]


@pytest.mark.parametrize("swap,at", [("tick", 1.0 + 1 / 24), ("beat", 2.0), ("bar", 4.0)])
def test_swap_at_the_next_boundary(swap, at):
    a = make_pattern(groove([(0, s, 100, 0) for s in range(0, 96, 2)]))  # kick every 2 steps
    b = make_pattern(groove([(1, s, 100, 0) for s in range(0, 96, 2)]))  # snare every 2 steps
    seq = Sequencer(a, swap=swap)
    seq.events(0.0, 1.0)
    seq.offer(b)
    ev = seq.events(1.0, 6.0)
    first_snare = min(e.beat for e in ev if e.note == 38)
    last_kick = max(e.beat for e in ev if e.note == 36)
    assert first_snare == pytest.approx(at + (1 / 24 if swap == "tick" else 0), abs=1 / 12 + 1e-9)
    assert last_kick < first_snare


def test_six_eight_bar_is_three_beats():
    p = make_pattern(groove([(0, 0, 100, 0), (2, 12, 60, 0), (2, 24, 60, 0)], ts=(6, 8)))
    assert p.grid.steps_per_bar == 72
    ev = Sequencer(p).events(0.0, 6.0)
    assert [e.beat for e in ev if e.note == 36] == [0.0, 3.0]


# --- the clock thread, on a fake time source ---------------------------------------


class Recorder:
    """An Output that keeps (time, message) of everything sent."""

    def __init__(self, clock, lead=0.0):
        self.clock, self.got, self.lead, self.lost = clock, [], lead, False

    def send(self, msg):
        self.got.append((self.clock.t, msg))

    def panic(self):
        self.got.append((self.clock.t, mido.Message("reset")))

    def close(self):
        pass


class FakeTime:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def run_for(player, fake, seconds, dt=0.0005):
    end = fake.t + seconds
    while fake.t < end:
        nxt = player.service()
        fake.t = max(fake.t + 1e-6, min(nxt, fake.t + dt))


def make_player(pattern, clock, controls=None, lead=0.0, **kw):
    fake = FakeTime()
    rec = Recorder(fake, lead)
    mb = Mailbox()
    mb.put(pattern)
    player = Player(
        Sequencer(swap="bar"), mb, controls or Controls(ControlState(bpm=120.0)), [rec], clock, now=fake, **kw
    )
    return player, rec, fake


def midi_in(player, msg, stamp):
    """What the input callback does (see app.py): the follower queues, the player wakes."""
    if player.clock.hear(msg, stamp):
        player.wake()


def test_internal_clock_sends_24_pulses_per_beat_on_time_and_pairs_notes():
    player, rec, fake = make_player(FOUR, InternalClock(120.0))
    run_for(player, fake, 2.0 - 1e-4)
    clocks = [t for t, m in rec.got if m.type == "clock"]
    assert [m.type for _, m in rec.got[:2]] == ["control_change", "start"]  # all notes off, then Start
    assert len(clocks) == 4 * PPQN  # 2 s at 120 BPM = 4 beats
    assert np.allclose(np.diff(clocks), 0.5 / PPQN, atol=1e-5)  # computed, not accumulated
    ons = [(t - 100.0, m.note) for t, m in rec.got if m.type == "note_on"]
    assert [n for _, n in ons] == [36, 38, 36, 38]
    assert np.allclose([t for t, _ in ons], [0.0, 0.5, 1.0, 1.5], atol=1e-3)
    offs = [m.note for _, m in rec.got if m.type == "note_off"]
    assert sorted(offs) == [36, 36, 38, 38]


@pytest.mark.parametrize("lead", [0.0013, 0.03])  # 0.03 s: more than the look-ahead at 120 BPM
def test_lead_sends_everything_that_much_early_and_counts_nothing_late(lead):
    # On JACK the port holds each message to the next cycle: half a period early lands it on
    # the nearest cycle boundary. Beat 0 moves by the lead too, so it is not sent late.
    player, rec, fake = make_player(FOUR, InternalClock(120.0), lead=lead)
    run_for(player, fake, 2.0 - 1e-4, dt=0.0001)
    beat0 = player.clock.t0
    assert beat0 == pytest.approx(100.0 + lead)
    clocks = [t - beat0 for t, m in rec.got if m.type == "clock"]
    assert np.allclose(clocks, np.arange(len(clocks)) * 0.5 / PPQN - lead, atol=2e-4)
    ons = [t - beat0 for t, m in rec.got if m.type == "note_on"]
    assert np.allclose(ons, np.array([0.0, 0.5, 1.0, 1.5]) - lead, atol=2e-4)
    assert player.late == 0


def test_no_lead_when_following_a_clock():
    # hits on a pulse can only leave when it arrives: leading the others would skew them
    player, _, _ = make_player(FOUR, MidiClockFollower(), lead=0.0013)
    assert player.lead == 0.0


def test_a_pulse_and_its_notes_reach_each_output_together():
    # Sent message by message to every output, the MIDI port's pulse and note could fall
    # into two JACK cycles while the audio preview took its turn in between.
    fake = FakeTime()
    first, second = Recorder(fake), Recorder(fake)
    order = []
    first.send = lambda msg: order.append(("midi", msg.type))
    second.send = lambda msg: order.append(("audio", msg.type))
    mb = Mailbox()
    mb.put(FOUR)
    player = Player(
        Sequencer(swap="bar"), mb, Controls(ControlState(bpm=120.0)), [first, second], InternalClock(120.0), now=fake
    )
    player.service()  # start: All Notes Off (sent at once), then Start, pulse 0 and the kick
    assert order[:2] == [("midi", "control_change"), ("audio", "control_change")]
    burst = [("midi", "start"), ("midi", "clock"), ("midi", "note_on")]
    assert order[2:] == burst + [("audio", t) for _, t in burst]


def test_after_a_stall_each_pulse_still_goes_before_its_notes():
    # A device counting pulses places each note by the pulses before it.
    player, rec, fake = make_player(FOUR, InternalClock(120.0))
    player.service()  # start: pulse 0 and the kick
    rec.got.clear()
    fake.t += 1.02  # the thread was held up for two beats: 48 pulses and four notes are due
    player.service()
    pulses, placed = 0, []
    for _, m in rec.got:
        if m.type == "clock":
            pulses += 1
        else:
            placed.append((m.type, m.note, pulses))
    assert pulses == 48
    assert placed == [("note_off", 36, 3), ("note_on", 38, 24), ("note_off", 38, 27), ("note_on", 36, 48)]
    # pulses 1..47 left over one pulse period (20.8 ms) after their time; pulse 48 only 20 ms
    assert player.view.missed_ticks == 47


def test_a_follower_queues_only_clock_and_transport_messages():
    # the input also carries a controller's CC for the cursor: not the clock thread's work
    clock = MidiClockFollower()
    assert not clock.hear(mido.Message("control_change", control=20, value=64), 0.0)
    assert clock.hear(mido.Message("clock"), 0.0) and clock.hear(mido.Message("songpos", pos=4), 0.0)
    clock.poll(0.0)
    assert clock.pulse == 23  # the song position moved it: 4 sixteenths, the next pulse is 24


def test_tempo_change_keeps_the_phase():
    clock = InternalClock(120.0)
    clock.start(10.0)
    assert clock.beat_at(11.0) == pytest.approx(2.0)
    clock.set_bpm(60.0, 11.0)
    assert clock.beat_at(11.0) == pytest.approx(2.0)
    assert clock.time_of(3.0) == pytest.approx(12.0)


def test_stop_silences_and_sends_all_notes_off():
    controls = Controls(ControlState(bpm=120.0))
    player, rec, fake = make_player(FOUR, InternalClock(120.0), controls, gate=0.9)
    run_for(player, fake, 0.1)
    assert any(m.type == "note_on" for _, m in rec.got)
    controls.update(running=False)
    run_for(player, fake, 0.01)
    types = [m.type for _, m in rec.got]
    assert "stop" in types and types.count("note_on") == types.count("note_off")
    assert any(m.type == "control_change" and m.control == 123 for _, m in rec.got[-3:])


def feed_pulses(player, fake, n, period, start_kind="start"):
    if start_kind:
        midi_in(player, mido.Message(start_kind), fake.t)
    for _ in range(n):
        midi_in(player, mido.Message("clock"), fake.t)
        run_for(player, fake, period, dt=period / 8)


def test_following_midi_clock_puts_hits_on_their_pulses():
    p = make_pattern(groove([(0, 0, 100, 0), (2, 6, 70, 0.5), (1, 24, 90, 0)]))
    player, rec, fake = make_player(p, MidiClockFollower())
    period = 0.5 / PPQN  # 120 BPM
    pulse_times = []
    midi_in(player, mido.Message("start"), fake.t)
    for _ in range(5 * PPQN):
        pulse_times.append(fake.t)
        midi_in(player, mido.Message("clock"), fake.t)
        run_for(player, fake, period, dt=period / 8)
    ons = [(t, m.note) for t, m in rec.got if m.type == "note_on"]
    assert [n for _, n in ons] == [36, 42, 38, 36, 42]
    assert ons[0][0] == pytest.approx(pulse_times[0], abs=1e-4)  # kick on pulse 0
    assert ons[2][0] == pytest.approx(pulse_times[24], abs=1e-4)  # snare on pulse 24
    assert ons[1][0] == pytest.approx(pulse_times[6] + period / 4, abs=period / 8)  # hat a quarter pulse late
    assert ons[3][0] == pytest.approx(pulse_times[96], abs=1e-4)  # bar 2


def test_joining_a_running_clock_plays_along_after_a_beat_but_not_after_a_stop():
    # connected after the source sent its Start (or to one that never sends it)
    p = make_pattern(groove([(0, 0, 100, 0), (1, 24, 90, 0)]))
    player, rec, fake = make_player(p, MidiClockFollower())
    period = 0.5 / PPQN
    pulse_times = []
    for _ in range(3 * PPQN):
        pulse_times.append(fake.t)
        midi_in(player, mido.Message("clock"), fake.t)
        run_for(player, fake, period, dt=period / 8)
    ons = [(t, m.note) for t, m in rec.got if m.type == "note_on"]
    assert [n for _, n in ons] == [36, 38]  # bar 1 from the pulse after the first beat
    assert ons[0][0] == pytest.approx(pulse_times[PPQN], abs=1e-4)
    assert ons[1][0] == pytest.approx(pulse_times[2 * PPQN], abs=1e-4)
    # a DAW that stopped keeps sending pulses: a Stop is obeyed however long they go on
    midi_in(player, mido.Message("stop"), fake.t)
    rec.got.clear()
    for _ in range(3 * PPQN):
        midi_in(player, mido.Message("clock"), fake.t)
        run_for(player, fake, period, dt=period / 8)
    assert not [m for _, m in rec.got if m.type == "note_on"]


def test_a_pulse_that_overtakes_an_early_hits_estimate_takes_it_along_not_late():
    # the input stamps pulses per JACK cycle: one may come 2.7 ms before the estimate said
    p = make_pattern(groove([(0, 0, 100, 0), (2, 30, 70, -0.2)]))  # a hat 0.1 pulse early
    player, rec, fake = make_player(p, MidiClockFollower())
    period = 0.5 / PPQN
    feed_pulses(player, fake, 29, period)  # pulses 0..28
    midi_in(player, mido.Message("clock"), fake.t)  # pulse 29: the hat is due 2 ms before pulse 30
    run_for(player, fake, period - 0.003, dt=period / 8)
    assert [m.note for _, m in rec.got if m.type == "note_on"] == [36]
    midi_in(player, mido.Message("clock"), fake.t)  # pulse 30, 3 ms before the estimate
    run_for(player, fake, 0.0005, dt=0.0001)
    assert [m.note for _, m in rec.got if m.type == "note_on"] == [36, 42]
    assert player.late == 0


def test_midi_stop_silences_and_start_restarts_at_bar_one():
    p = make_pattern(groove([(0, 0, 100, 0), (1, 12, 90, 0)]))
    player, rec, fake = make_player(p, MidiClockFollower(), gate=0.9)
    period = 0.5 / PPQN
    feed_pulses(player, fake, 14, period)
    midi_in(player, mido.Message("stop"), fake.t)
    run_for(player, fake, 0.05)
    types = [m.type for _, m in rec.got]
    assert types.count("note_on") == 2 and types.count("note_off") == 2
    rec.got.clear()
    feed_pulses(player, fake, 3, period, start_kind="start")
    assert [m.note for _, m in rec.got if m.type == "note_on"] == [36]  # bar 1 again: the kick


def test_song_position_moves_the_playhead():
    p = make_pattern(groove([(0, 0, 100, 0), (1, 48, 90, 0)]))
    player, rec, fake = make_player(p, MidiClockFollower())
    midi_in(player, mido.Message("songpos", pos=8), fake.t)  # 8 sixteenths = beat 2
    feed_pulses(player, fake, 3, 0.5 / PPQN, start_kind="continue")
    assert [m.note for _, m in rec.got if m.type == "note_on"] == [38]


def test_clock_timeout_silences_until_pulses_return():
    p = make_pattern(groove([(0, s, 100, 0) for s in range(0, 96, 12)]))
    player, rec, fake = make_player(p, MidiClockFollower(timeout_beats=2.0), gate=2.0)
    period = 0.5 / PPQN
    feed_pulses(player, fake, 5, period)
    run_for(player, fake, 2.0)  # pulses stop without a Stop: the clock is lost, and the status says so
    assert player.view.state == "clock lost"
    types = [m.type for _, m in rec.got]
    assert types.count("note_on") == types.count("note_off")
    feed_pulses(player, fake, 30, period, start_kind=None)
    assert player.view.state == "playing"
    midi_in(player, mido.Message("stop"), fake.t)  # a Stop is the rig's: waiting, not lost
    player.service()
    assert player.view.state == "waiting for clock"


def test_waiting_for_a_late_pulse_does_not_spin():
    p = make_pattern(groove([(0, s, 100, 0) for s in range(0, 96, 1)]))  # a hit on every pulse
    player, _rec, fake = make_player(p, MidiClockFollower())
    feed_pulses(player, fake, 3, 0.5 / PPQN)
    fake.t += 3 * 0.5 / PPQN  # the next pulse is late: the hit on it must wait, not busy-loop
    assert player.service() > fake.t


def test_a_lost_port_shows_in_the_status():
    player, rec, _ = make_player(FOUR, InternalClock(120.0))
    player.ports = "out: rvae (jack)"
    player.service()
    assert "LOST" not in player.view.ports
    rec.lost = True  # as OutputPort says after a failed send or the JACK server's death
    player.service()
    assert player.view.ports == "out: rvae (jack)  (MIDI out LOST)"


def test_the_start_is_logged_on_the_clock_the_benchmark_reads(caplog):
    # scripts/bench_performer.py measures every event against this line
    player, _, fake = make_player(FOUR, InternalClock(120.0), lead=0.0013)
    with caplog.at_level("INFO", logger="performer.sequencer"):
        player.service()
    assert caplog.messages == ["internal clock: beat 0 at perf_counter 100.001300 s, 120 BPM"]
    # following a clock, beat 0 is when its first pulse comes: nothing to say at Start
    player, _, fake = make_player(FOUR, MidiClockFollower())
    midi_in(player, mido.Message("start"), fake.t)
    caplog.clear()
    with caplog.at_level("INFO", logger="performer.sequencer"):
        player.service()
    assert caplog.messages == []
