"""Learning on stage, its parts without JACK: capture onto the grid, the input's arrival
times, the learn thread's answers to bad requests and a failing disk, OSC and keys, the
captured bars' strip, and a new model's pattern taking over at a bar line. The whole loop on
real ports and a real learner process is tests/test_learn_jack.py."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import mido
import pygame
import pytest
import torch
from conftest import REPO
from pythonosc.udp_client import SimpleUDPClient
from test_control import sync, wait_for

from performer import ui
from performer.control import Controls, ControlState, OscServer
from performer.learn import Capture, Learning, LearnView, _loops_json, session_folder, stage_updates
from performer.ports import Arrival
from performer.sequencer import PlayerView, Sequencer, make_pattern
from rvae.checkpoint import load_checkpoint
from rvae.latent import encode
from rvae.midi_io import read_midi
from rvae.train import continue_updates

CKPT = load_checkpoint(REPO / "checkpoints" / "groove-4-4.pt")
SPQ = CKPT.grid.steps_per_quarter


def note(n: int, v: int = 100) -> mido.Message:
    return mido.Message("note_on", channel=9, note=n, velocity=v)


def capture(playing: bool = True) -> Capture:
    return Capture(CKPT.grid, CKPT.kit, beat_at=lambda t: t, playing=lambda: playing)  # stamps are beats here


# --- capture -----------------------------------------------------------------------------


def test_notes_land_on_their_step_with_their_microtiming_and_close_with_their_bar():
    cap = capture()
    cap.hear(note(36, 110), 0.0)
    cap.hear(note(38, 90), 1.0 + 0.2 / SPQ)  # a fifth of a step late: +0.4 half steps
    cap.hear(note(42, 70), 2.0 - 0.1 / SPQ)  # early
    assert cap.take(3.0) == []  # the bar is not over yet
    (bar,) = cap.take(4.0 + 2 / SPQ)  # a step and a half past its end: closed
    hits = bar.hits()
    assert [(s, i, v) for s, i, v, _ in hits] == [(0, 0, 110), (24, 1, 90), (48, 2, 70)]
    assert [round(o, 3) for *_, o in hits] == [0.0, 0.4, -0.2]


def test_an_early_downbeat_opens_the_next_bar():
    cap = capture()
    cap.hear(note(38), 3.0)
    cap.hear(note(36), 4.0 - 0.3 / SPQ)  # early for bar 2's first step
    (first,) = cap.take(4.0)
    assert [(s, i) for s, i, _, _ in first.hits()] == [(72, 1)]
    (second,) = cap.flush()
    assert [(s, i, round(o, 2)) for s, i, _, o in second.hits()] == [(0, 0, -0.6)]


def test_unmapped_notes_are_counted_doubles_keep_the_louder_and_a_restart_closes_the_bar():
    cap = capture()
    cap.hear(note(5), 0.5)  # no kit class reads note 5
    cap.hear(note(36, 60), 1.0)
    cap.hear(note(35, 100), 1.0 + 0.1 / SPQ)  # also the kick, in the same cell: the louder stays
    cap.hear(note(38), 0.0)  # the clock went back to beat 0 (Start)
    first, *rest = cap.take(0.1)
    assert cap.unmapped == 1 and cap.merged == 1
    assert [(s, i, v) for s, i, v, _ in first.hits()] == [(24, 0, 100)]
    assert rest == []
    assert [(s, i) for s, i, _, _ in cap.flush()[0].hits()] == [(0, 1)]


def test_nothing_is_captured_while_the_clock_is_stopped():
    cap = capture(playing=False)
    cap.hear(note(36), 0.0)
    assert cap.flush() == []


def test_arrival_times_come_from_the_inputs_own_clock():
    arrival = Arrival()
    # rtmidi's deltas say 10 ms apart; Python saw the second 4 ms late (the GIL was busy)
    assert arrival(0.0, 100.000) == 100.000
    assert arrival(0.010, 100.014) == pytest.approx(100.010)
    assert arrival(0.010, 100.020) == pytest.approx(100.020)  # never later than the stamp... and re-anchored
    assert arrival(0.0, 100.0205) == pytest.approx(100.020, abs=1e-5)  # same cycle: same time


# --- the learn thread's answers --------------------------------------------------------------


class FakeWorker:
    def __init__(self, ckpt):
        self.ckpt, self.serial = ckpt, 0

    def set_model(self, ckpt) -> None:
        self.ckpt = ckpt


def learning(tmp_path, ckpt=CKPT, folder=None) -> tuple[Learning, Controls, list[str]]:
    controls, said = Controls(), list[str]()
    view = PlayerView(beat=0.0, state="playing", bpm=120.0)
    worker: Any = FakeWorker(ckpt)  # set_model and serial: all the learn thread uses of a DecodeWorker
    lrn = Learning(ckpt, controls, worker, lambda: view, lambda t: t, folder or tmp_path, said.append)
    lrn.source = "pads"
    return lrn, controls, said


def play_bar(lrn: Learning, bar: int) -> None:
    """One bar of kick and snare, then the playhead past its end."""
    for beat, n in ((0, 36), (1, 38), (2, 36), (3, 38)):
        lrn.hear(note(n), bar * 4.0 + beat)
    lrn._keep(lrn.capture.take(bar * 4.0 + 4.1))


def test_learning_with_nothing_played_says_so_in_one_sentence(tmp_path):
    lrn, controls, said = learning(tmp_path)
    controls.request("learn")
    lrn.turn()
    assert said == ["nothing to learn yet: play a bar or more into pads while the clock runs, then learn"]
    assert lrn.learner is None and lrn.view.state == said[0]


def test_a_model_trained_without_its_loops_says_it_cannot_learn(tmp_path):
    bare = dataclasses.replace(CKPT, kept=None, train_config={**CKPT.train_config, "keep_loops": False})
    lrn, controls, said = learning(tmp_path, bare)
    play_bar(lrn, 0)
    controls.request("learn")
    lrn.turn()
    assert said == ["groove-4-4.pt was trained with --no-keep-loops, so it cannot learn more: train it without"]


def test_bars_are_written_as_they_close_and_a_failing_disk_keeps_them_in_memory(tmp_path):
    lrn, _, _ = learning(tmp_path)
    play_bar(lrn, 0)
    (loop,) = read_midi(tmp_path / "bar-0001.mid", CKPT.grid, CKPT.kit).loops
    assert [(s, i) for s, i, _, _ in loop.hits()] == [(0, 0), (24, 1), (48, 0), (72, 1)]

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    lrn, _, _ = learning(tmp_path, folder=blocker / "session")
    play_bar(lrn, 0)
    play_bar(lrn, 1)
    lrn._publish()
    assert lrn.view.problem.startswith(f"cannot save captured bars in {blocker / 'session'} (")
    assert lrn.view.problem.endswith("; kept in memory")
    assert [b.number for b in lrn.view.bars] == [1, 2] and not any(b.saved for b in lrn.view.bars)
    assert lrn.view.selected == 2


def test_find_moves_the_cursor_to_the_last_bar_and_undo_needs_a_learn(tmp_path):
    lrn, controls, said = learning(tmp_path)
    controls.request("find")
    lrn.turn()
    assert said[-1] == "nothing played to find yet"
    play_bar(lrn, 0)
    controls.request("find")
    controls.request("undo")
    lrn.turn()
    z = encode(CKPT, [lrn.held[-1].groove])[0]
    assert controls.get().z == pytest.approx((z[0], z[1]), abs=1e-4)
    assert said[-2] == "nothing to undo: this is the model the performance started with"
    assert said[-1].startswith("found bar 1 at z")


def test_the_session_folder_is_beside_the_recording_or_dated():
    assert session_folder("gig/show.mid") == Path("gig/show-learn")
    dated = session_folder(None, datetime(2026, 5, 1, 21, 30, 5))
    assert dated == Path.home() / ".local/share/rvae/sessions/2026-05-01_21-30-05"


# --- OSC, keys, the window ------------------------------------------------------------------


def test_osc_learn_undo_and_find_raise_their_requests():
    controls = Controls()
    with OscServer(controls, port=0) as srv:
        client = SimpleUDPClient("127.0.0.1", srv.port)
        client.send_message("/rvae/learn", [])
        client.send_message("/rvae/learn", 3)
        client.send_message("/rvae/learn", 0)  # a button's release
        client.send_message("/rvae/learn", 99)  # more than are held: ignored
        client.send_message("/rvae/undo", 1.0)
        client.send_message("/rvae/find", [])
        sync(client, controls)
        wait_for(lambda: controls.get().find == 1)
    st = controls.get()
    assert (st.learn, st.learn_bars, st.undo, st.find) == (2, 3, 1, 1)


def test_the_strip_shows_the_captured_bars_and_outlines_the_selected(tmp_path):
    lrn, controls, _ = learning(tmp_path)
    for k in range(3):
        play_bar(lrn, k)
    lrn.learned_upto = 1  # the first was learnt: two are selected
    lrn._publish()
    surface = pygame.Surface((1100, 720))
    ui.render(surface, CKPT, ControlState(), PlayerView(), ui.make_map_surface(CKPT), lrn.view)
    strip = ui.layout((1100, 720), len(CKPT.kit), learning=True).strip
    assert strip is not None
    slot_w = (strip.w - ui.NAME_W) / ui.HELD
    outline = [
        tuple(surface.get_at((round(strip.left + ui.NAME_W + k * slot_w) + 1, strip.top + 2)))[:3] for k in range(4)
    ]
    assert outline[0] == ui.GRID_LINE[2]
    assert outline[1] == outline[2] == ui.SELECTED
    assert outline[3] == ui.PANEL  # no fourth bar

    window = ui.Window(CKPT, controls, PlayerView, learn=lambda: lrn.view)
    window.handle([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_l, mod=0, unicode="l")])
    window.handle([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_f, mod=0, unicode="f")])
    assert (controls.get().learn, controls.get().find) == (1, 1)


def test_the_window_shows_a_swapped_model():
    other = load_checkpoint(REPO / "checkpoints" / "demo-6-8.pt")
    view = LearnView(model=other)
    window = ui.Window(CKPT, Controls(), PlayerView, learn=lambda: view)
    window.draw(pygame.Surface((900, 600)))
    assert window.ckpt is other


# --- the sequencer: a new model at a bar line -------------------------------------------------


def test_a_new_models_pattern_waits_for_the_bar_line_whatever_the_swap_mode():
    from test_sequencer import groove

    a = make_pattern(groove([(0, s, 100, 0) for s in range(0, 96, 2)]))
    b = dataclasses.replace(make_pattern(groove([(1, s, 100, 0) for s in range(0, 96, 2)])), swap="bar")
    seq = Sequencer(a, swap="tick")
    seq.events(0.0, 1.0)
    seq.offer(b)
    ev = seq.events(1.0, 6.0)
    assert min(e.beat for e in ev if e.note == 38) == 4.0
    assert max(e.beat for e in ev if e.note == 36) < 4.0


def test_bars_are_numbered_after_those_already_in_the_folder(tmp_path):
    (tmp_path / "bar-0007.mid").write_bytes(b"")
    (tmp_path / "model-03.pt").write_bytes(b"")
    lrn, _, _ = learning(tmp_path)
    assert (lrn.number, lrn.model_number) == (8, 4)


def test_stopping_writes_the_bar_being_played(tmp_path):
    lrn, _, _ = learning(tmp_path)
    lrn.hear(note(36), 0.0)
    lrn.hear(note(38), 1.0)
    lrn.turn()  # placed, the bar still open (the playhead is at its start)
    assert not list(tmp_path.glob("bar-*.mid"))
    lrn.stop()  # Ctrl-C, SIGTERM, the window closing
    (loop,) = read_midi(tmp_path / "bar-0001.mid", CKPT.grid, CKPT.kit).loops
    assert [(s, i) for s, i, _, _ in loop.hits()] == [(0, 0), (24, 1)]


def test_a_learned_model_swaps_in_with_its_square_and_the_cursor_and_undo_returns(tmp_path):
    squares = []
    lrn, controls, said = learning(tmp_path)
    lrn.on_model = squares.append
    play_bar(lrn, 0)
    new = dataclasses.replace(CKPT, latents=CKPT.latents.clone(), path=tmp_path / "model-01.pt")
    new.latents[-1, :2] = torch.tensor([1.25, -2.5])  # the "new" loop
    lrn._swap(new, 1, {"bars": [1], "asked": 0.0}, {"seconds": 1.0})
    assert lrn.worker.ckpt is new and squares == [new]
    assert controls.get().z == (1.25, -2.5)
    lrn._publish()
    assert lrn.view.model is new and lrn.view.models == 2
    controls.request("undo")
    lrn.turn()
    assert lrn.worker.ckpt is CKPT and squares == [new, CKPT]
    assert said[-1] == "back to groove-4-4.pt (model-01.pt stays on disk)"


def test_a_downbeat_played_early_is_written_in_the_next_bars_file_and_learnt_early(tmp_path):
    lrn, _, _ = learning(tmp_path)
    for beat, n in ((0, 36), (1, 38), (2, 36), (3, 38)):
        lrn.hear(note(n), float(beat))
    lrn.hear(note(36, 99), 4.0 - 0.3 / SPQ)  # 0.3 of a step before the bar line: bar 2's first step
    lrn.hear(note(38, 90), 5.0)
    lrn.turn()  # bar 1 closes as the early note opens bar 2
    lrn._keep(lrn.capture.take(8.1))
    first, second = (read_midi(tmp_path / f"bar-000{k}.mid", CKPT.grid, CKPT.kit).loops for k in (1, 2))
    assert [(s, i, v) for s, i, v, _ in first[0].hits()] == [(0, 0, 100), (24, 1, 100), (48, 0, 100), (72, 1, 100)]
    # a file cannot start before its first tick: the early hit is on tick 0, on its step
    assert [(s, i, v, o) for s, i, v, o in second[0].hits()] == [(0, 0, 99, 0.0), (24, 1, 90, 0.0)]
    on = [m for m in mido.MidiFile(tmp_path / "bar-0002.mid").tracks[0] if m.type == "note_on"]
    assert (on[0].note, on[0].time) == (36, 0)
    # what the learner is sent keeps its microtiming: 0.3 of a step early is -0.6 half steps
    (loop,) = _loops_json([lrn.selection()[-1].groove])
    assert [[*h[:3], round(h[3], 3)] for h in loop["hits"]] == [[0, 0, 99, -0.6], [1, 24, 90, 0.0]]


def test_a_session_folder_nothing_was_played_into_is_removed_at_the_end(tmp_path):
    unused, used, users = tmp_path / "unused", tmp_path / "used", tmp_path / "users"
    users.mkdir()  # the user's own folder, there before: never removed
    for folder in (unused, used, users):
        lrn, _, _ = learning(tmp_path, folder=folder)
        folder.mkdir(exist_ok=True)  # as the app does at start: an unwritable place is said at once
        if folder is used:
            play_bar(lrn, 0)
        lrn.stop()
    assert not unused.exists()
    assert [p.name for p in used.iterdir()] == ["bar-0001.mid"]
    assert users.is_dir()


def test_a_learn_on_stage_takes_updates_by_the_patterns_played():
    bars = CKPT.training_loops()[:8]
    assert len({b.onsets.tobytes() for b in bars}) == 8
    assert stage_updates(101, bars[:1] * 8) == 80  # a groove played over and over: one pattern
    assert stage_updates(101, bars[:2] * 4) == 95
    assert stage_updates(101, bars) == 185
    many = CKPT.training_loops()[:16]  # 16 patterns would be 305: never more than rvae train --init
    assert stage_updates(109, many) == continue_updates(109)
