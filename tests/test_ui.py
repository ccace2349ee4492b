"""The performer's window, offscreen: frames of the bundled models, and the frame loop driven
by posted events on SDL's dummy video driver."""

from __future__ import annotations

import dataclasses
import os

os.environ["SDL_VIDEODRIVER"] = "dummy"  # before pygame opens any display: no window, no X
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import threading
from pathlib import Path

import pygame
import pytest

from performer import ui
from performer.control import Controls, ControlState
from performer.sequencer import PlayerView, make_pattern
from rvae.checkpoint import Checkpoint, load_checkpoint
from rvae.generate import decode
from rvae.grid import Grid

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
SIZE = (1100, 720)


@pytest.fixture(scope="module")
def models() -> dict[str, Checkpoint]:
    return {name: load_checkpoint(CHECKPOINTS / f"{name}.pt") for name in ("groove-4-4", "demo-6-8")}


def view_of(ckpt: Checkpoint, z=(0.0, 0.0), mutes=frozenset(), microtiming=1.0, beat=1.3) -> PlayerView:
    pattern = make_pattern(decode(ckpt, list(z)), mutes, microtiming=microtiming, z=z, serial=1)
    return PlayerView(beat=beat, bpm=96.0, state="playing", ports="out: test", pattern=pattern)


def pixel(surface: pygame.Surface, xy) -> tuple[int, int, int]:
    return tuple(surface.get_at(xy))[:3]


# --- pure geometry ----------------------------------------------------------------------------

def test_z_maps_to_the_map_with_y_up():
    rect = pygame.Rect(10, 20, 601, 601)
    assert ui.z_to_pixel(rect, (0, 0), 3.0) == (310, 320)
    assert ui.z_to_pixel(rect, (-3, 3), 3.0) == (10, 20)  # top left
    assert ui.z_to_pixel(rect, (3, -3), 3.0) == (610, 620)
    assert ui.z_to_pixel(rect, (9, -9), 3.0) == (610, 620)  # outside: at the edge
    assert ui.z_to_pixel(rect, (8, 4), 8.0) == (610, 170)  # a model's own square
    assert ui.pixel_to_z(rect, (310, 20), 3.0) == (0.0, 3.0)
    assert ui.pixel_to_z(rect, (0, 1000), 3.0) == (-3.0, -3.0)
    assert ui.pixel_to_z(rect, (610, 170), 8.0) == (8.0, 4.0)


def test_grid_lines_follow_the_meter():
    # (step, level, count): level 0 = 16th, 1 = the meter's unit, 2 = beat, 3 = bar
    assert ui.grid_lines(Grid((4, 4)))[:5] == [(0.0, 3, 1), (6.0, 0, 0), (12.0, 0, 0), (18.0, 0, 0), (24.0, 2, 2)]
    six_eight = ui.grid_lines(Grid((6, 8)))
    assert [(s, lv, c) for s, lv, c in six_eight if lv] == [
        (0.0, 3, 1), (12.0, 1, 2), (24.0, 1, 3), (36.0, 2, 4), (48.0, 1, 5), (60.0, 1, 6)]
    seven_eight = ui.grid_lines(Grid((7, 8)))
    assert [c for _, lv, c in seven_eight if lv] == [1, 2, 3, 4, 5, 6, 7]
    assert len(ui.grid_lines(Grid((4, 4), bars=2))) == 32


def test_bar_beat_counts_the_meters_unit_from_one():
    assert ui.bar_beat(0.0, Grid((4, 4))) == (1, 1)
    assert ui.bar_beat(5.5, Grid((4, 4))) == (2, 2)
    assert ui.bar_beat(3.0, Grid((6, 8))) == (2, 1)  # a 6/8 bar is 3 quarters
    assert ui.bar_beat(2.6, Grid((6, 8))) == (1, 6)  # eighths: 2.5-3.0 is the 6th
    assert ui.bar_beat(3.4, Grid((7, 8))) == (1, 7)


# --- frames ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["groove-4-4", "demo-6-8"])
def test_frame_of_a_bundled_model(models, name, tmp_path):
    ckpt = models[name]
    state = ControlState(z=(0.7, -1.2), extent=ckpt.extent)
    path = ui.screenshot(ckpt, state, view_of(ckpt), tmp_path / "frame.png", SIZE)
    frame = pygame.image.load(str(path))
    assert frame.get_size() == SIZE
    lay = ui.layout(SIZE, len(ckpt.kit))
    area = pygame.surfarray.array3d(frame.subsurface(lay.map))
    assert area.std() > 20 and len({tuple(c) for c in area.reshape(-1, 3)[::97]}) > 5, "the map is blank"
    assert pixel(frame, ui.z_to_pixel(lay.map, state.z, ckpt.extent)) == ui.CURSOR_COLOUR


def test_meter_lines_are_drawn_where_the_grid_says(models):
    ckpt = models["demo-6-8"]
    surface = pygame.Surface(SIZE)
    view = view_of(ckpt, beat=0.0)
    ui.render(surface, ckpt, ControlState(), view, ui.make_map_surface(ckpt))
    empty = next(i for i in range(len(ckpt.kit)) if i not in set(view.pattern.instruments.tolist()))
    x_beat, y = ui.hit_point(SIZE, ckpt.grid, len(ckpt.kit), empty, 36.0)  # the dotted quarter
    x_unit, _ = ui.hit_point(SIZE, ckpt.grid, len(ckpt.kit), empty, 24.0)  # an eighth
    # hit_point is one pixel into a hit's bar; the line is its first pixel
    assert pixel(surface, (x_beat - 1, y)) == ui.GRID_LINE[2]
    assert pixel(surface, (x_unit - 1, y)) == ui.GRID_LINE[1]


def test_muted_instruments_are_grey_and_playing_ones_coloured(models):
    ckpt = models["groove-4-4"]
    groove = decode(ckpt, [0.0, 0.0])
    step, inst = groove.hits()[0][:2]
    loop = ckpt.grid.steps / ckpt.grid.steps_per_quarter
    beat = (step / ckpt.grid.steps_per_quarter + loop / 2) % loop  # the playhead far from the hit
    at = ui.hit_point(SIZE, ckpt.grid, len(ckpt.kit), inst, float(step))
    map_surface = ui.make_map_surface(ckpt)
    for mutes in (frozenset(), frozenset({inst})):
        surface = pygame.Surface(SIZE)
        state = ControlState(mutes=mutes, microtiming=0.0)
        ui.render(surface, ckpt, state, view_of(ckpt, mutes=mutes, microtiming=0.0, beat=beat), map_surface)
        r, g, b = pixel(surface, at)
        if mutes:
            assert r == g == b > max(ui.PANEL), (r, g, b)
        else:
            assert len({r, g, b}) > 1, (r, g, b)


def test_frame_without_a_pattern_yet(models):
    ckpt = models["demo-6-8"]
    surface = pygame.Surface((500, 800))  # narrow: the pattern goes under the map
    ui.render(surface, ckpt, ControlState(), PlayerView(state="waiting for clock"), ui.make_map_surface(ckpt, extent=3))
    lay = ui.layout((500, 800), len(ckpt.kit))
    assert lay.pattern.top > lay.map.bottom
    assert pixel(surface, ui.z_to_pixel(lay.map, (0, 0), 3.0)) == ui.CURSOR_COLOUR


def test_map_follows_the_threshold_but_not_every_frame(models, monkeypatch):
    ckpt = models["groove-4-4"]
    controls = Controls()
    window = ui.Window(ckpt, controls, PlayerView, map_cells=10)
    first = window.map_surface
    monkeypatch.setattr(ui, "MAP_REFRESH", 1000.0)
    window.refresh_map(0.7)
    assert window.map_surface is first and window.map_redraws == 0
    monkeypatch.setattr(ui, "MAP_REFRESH", 0.0)
    window.refresh_map(0.7)
    window.refresh_map(0.7)
    assert window.map_surface is not first and window.map_redraws == 1
    monkeypatch.setattr(ui, "MAP_REFRESH", 1000.0)
    window.refresh_map(0.5)  # drawn before: back at once, whatever the throttle
    assert window.map_surface is first and window.map_redraws == 1


# --- the frame loop ---------------------------------------------------------------------------

def key(k: int, char: str = "", shift: bool = False) -> pygame.event.Event:
    return pygame.event.Event(pygame.KEYDOWN, key=k, unicode=char, mod=pygame.KMOD_LSHIFT if shift else 0)


def scripted(ckpt: Checkpoint, script: dict[int, list], frames: list[int]):
    """A view() that posts ``script[k]`` while frame k is drawn (handled in frame k + 1);
    a callable entry runs instead (a resize, setting stop)."""

    def view() -> PlayerView:
        k = len(frames)
        frames.append(k)
        for e in script.get(k, []):
            e() if callable(e) else pygame.event.post(e)
        return view_of(ckpt, beat=k * 0.1)

    return view


def test_window_loop_writes_controls_from_keys_and_mouse(models):
    ckpt = models["groove-4-4"]
    controls, stop, frames = Controls(ControlState(z=(0.0, 0.0))), threading.Event(), []
    map_rect = ui.layout(SIZE, len(ckpt.kit)).map
    down, there = ui.z_to_pixel(map_rect, (1.0, 1.0), 3.0), ui.z_to_pixel(map_rect, (-1.5, 2.0), 3.0)
    script = {
        0: [key(pygame.K_1, "1"), key(pygame.K_3, "3"), key(pygame.K_3, "3")],
        1: [key(pygame.K_RIGHT), key(pygame.K_UP, shift=True)],
        2: [pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=down),
            pygame.event.Event(pygame.MOUSEMOTION, pos=there, rel=(0, 0), buttons=(1, 0, 0)),
            pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=there)],
        3: [key(pygame.K_EQUALS, "="), key(pygame.K_RIGHTBRACKET, "]"), key(pygame.K_m, "m"),
            key(pygame.K_v, "v"), key(pygame.K_s, "s"), key(pygame.K_SPACE, " "),
            key(pygame.K_PERIOD, ">", shift=True), key(pygame.K_COMMA, ","), key(pygame.K_p, "p")],
        5: [pygame.event.Event(pygame.QUIT)],
    }
    times = ui.run_window(ckpt, controls, scripted(ckpt, script, frames), stop, fps=200)
    s = controls.get()
    assert s.mutes == {0}  # 3 pressed twice: back on
    assert s.z == ui.pixel_to_z(map_rect, there, 3.0)
    assert (s.threshold, s.noise, s.microtiming, s.velocity, s.swap) == (0.55, 0.05, 0.0, "fixed", "tick")
    assert (s.running, s.bpm, s.panic) == (False, 129.0, 1)
    assert stop.is_set() and len(frames) == len(times) == 6  # QUIT, posted in frame 5, ends frame 6
    assert all(0 < t < 1 for t in times)
    assert not pygame.display.get_init()


def test_shift_and_a_number_select_a_density_that_plus_and_minus_change(models):
    ckpt = models["groove-4-4"]
    controls, stop = Controls(ControlState(threshold=0.5)), threading.Event()
    script = {
        0: [key(pygame.K_3, "#", shift=True), key(pygame.K_EQUALS, "+", shift=True), key(pygame.K_EQUALS, "=")],
        1: [key(pygame.K_1, "!", shift=True), key(pygame.K_MINUS, "-")],  # another instrument
        2: [key(pygame.K_1, "!", shift=True), key(pygame.K_MINUS, "-")],  # the same again: back to the threshold
        3: [key(pygame.K_2, "@", shift=True)] + [key(pygame.K_EQUALS, "+")] * 15,  # held: stops at +1
        4: [key(pygame.K_ESCAPE), key(pygame.K_EQUALS, "=")],  # Escape: back to the threshold
        5: [key(pygame.K_4, "$", shift=True), key(pygame.K_ESCAPE, shift=True), key(pygame.K_1, "1")],
        6: [key(pygame.K_q, "q")],
    }
    ui.run_window(ckpt, controls, scripted(ckpt, script, []), stop, fps=200)
    s = controls.get()
    assert s.density == (-0.1, 1.0, 0.2)  # instrument 4 selected, never changed
    assert s.threshold == 0.5  # -0.05 then +0.05
    assert s.panic == 1 and s.mutes == {0}  # shift+Escape is still panic; 1 alone still mutes


def test_a_density_is_shown_beside_its_row(models):
    ckpt = models["groove-4-4"]
    lay = ui.layout(SIZE, len(ckpt.kit))
    top, bottom = ui._Steps(lay.pattern, ckpt.grid.steps, len(ckpt.kit)).row(2)
    names = pygame.Rect(lay.pattern.left, top, ui.NAME_W, bottom - top)
    map_surface, view = ui.make_map_surface(ckpt), view_of(ckpt)

    def column(state: ControlState, selected=None) -> bytes:
        surface = pygame.Surface(SIZE)
        ui.Renderer(ckpt).draw(surface, state, view, map_surface, selected)
        return pygame.image.tobytes(surface.subsurface(names), "RGB")

    plain = column(ControlState())
    assert column(ControlState(density=(0.0, 0.0, 0.0))) == plain  # the model's own: nothing shown
    assert column(ControlState(density=(0.0, 0.0, 0.5))) != plain
    assert column(ControlState(density=(0.0, 0.0, 0.5))) != column(ControlState(density=(0.0, 0.0, -0.5)))
    assert column(ControlState(density=(0.5,))) == plain  # another row's
    assert column(ControlState(), selected=2) != plain  # selected at 0: shown, framed


def test_arrows_move_the_cursor_by_fine_and_coarse_steps(models):
    ckpt = models["demo-6-8"]
    controls, stop = Controls(ControlState(z=(2.9, 0.0))), threading.Event()
    script = {0: [key(pygame.K_RIGHT), key(pygame.K_RIGHT), key(pygame.K_DOWN, shift=True),
                  key(pygame.K_LEFT)], 1: [key(pygame.K_q, "q")]}
    ui.run_window(ckpt, controls, scripted(ckpt, script, []), stop, fps=200)
    assert controls.get().z == (2.95, -0.25)  # clamped at the edge of the plane, then back
    assert stop.is_set()


@pytest.mark.parametrize("name", ["groove-4-4", "demo-6-8"])
def test_the_pad_reaches_every_training_loop(models, name):
    """The pad is the model's own square: a click on any training loop's dot lands within a
    pixel of its z (on the bundled 4/4 model 41 of 93 loops lie outside ±3)."""
    ckpt = models[name]
    e = ckpt.extent
    rect = ui.layout(SIZE, len(ckpt.kit)).map
    pixel_size = 2 * e / (rect.w - 1)
    for z in ckpt.latents[:, :2].tolist():
        back = ui.pixel_to_z(rect, ui.z_to_pixel(rect, z, e), e)
        assert abs(back[0] - z[0]) <= pixel_size and abs(back[1] - z[1]) <= pixel_size, (z, back)


def test_window_map_arrows_and_mouse_follow_the_controls_square(models):
    ckpt = models["groove-4-4"]
    e = ckpt.extent
    assert e > 3 and (abs(ckpt.latents[:, :2]) > 3).any()  # loops outside the old ±3
    controls = Controls(ControlState(z=(e - 0.1, 0.0), extent=e))
    window = ui.Window(ckpt, controls, PlayerView, map_cells=10)
    drawn = pygame.image.tobytes(window.map_surface, "RGB")
    assert drawn == pygame.image.tobytes(ui.make_map_surface(ckpt, 0.5, cells=10, extent=e), "RGB")
    surface = pygame.Surface(SIZE)
    rect = ui.layout(SIZE, len(ckpt.kit)).map
    window.frame(surface, [key(pygame.K_RIGHT), key(pygame.K_RIGHT)])
    assert controls.get().z == (e, 0.0)  # clamped at the model's edge, not at 3
    corner = (rect.left, rect.top)
    click = pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=corner)
    window.frame(surface, [click, pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=corner)])
    assert controls.get().z == (-e, e)
    assert pixel(surface, corner) == ui.CURSOR_COLOUR
    controls.set_extent(3.0)  # another square at runtime (a model swapped in): the map is decoded afresh
    window.frame(surface, [])
    assert window.map_redraws == 1 and controls.get().z == (-3.0, 3.0)
    assert pygame.image.tobytes(window.map_surface, "RGB") == pygame.image.tobytes(
        ui.make_map_surface(ckpt, 0.5, cells=10, extent=3.0), "RGB"
    )
    assert pixel(surface, corner) == ui.CURSOR_COLOUR


def test_window_follows_a_resize_and_an_outside_stop(models):
    ckpt = models["demo-6-8"]
    controls, stop = Controls(), threading.Event()
    small = (700, 900)
    target = ui.z_to_pixel(ui.layout(small, len(ckpt.kit)).map, (-2.0, -2.0), 3.0)
    script = {
        1: [lambda: pygame.display.set_mode(small, pygame.RESIZABLE)],
        3: [pygame.event.Event(pygame.MOUSEBUTTONDOWN, button=1, pos=target),
            pygame.event.Event(pygame.MOUSEBUTTONUP, button=1, pos=target)],
        5: [stop.set],
    }
    times = ui.run_window(ckpt, controls, scripted(ckpt, script, []), stop, fps=200)
    assert controls.get().z == ui.pixel_to_z(ui.layout(small, len(ckpt.kit)).map, target, 3.0)
    assert len(times) == 6


def test_max_frames_ends_the_loop_without_stop_and_on_frame_runs_each_frame(models):
    stop, calls = threading.Event(), []
    times = ui.run_window(models["demo-6-8"], Controls(), PlayerView, stop, fps=500, max_frames=3,
                          on_frame=lambda: calls.append(1))
    assert len(times) == len(calls) == 3 and not stop.is_set()


def test_open_display_says_why_there_is_none(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    why = ui.open_display()
    assert why and "dummy" in why
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    why = ui.open_display()
    assert why and why.startswith("no display could open (")
    assert not pygame.display.get_init()


def test_console_in_a_log_prints_one_line_a_bar_however_the_tempo_wobbles(models, monkeypatch):
    # following a clock, the estimated tempo flips 119.7 / 120.3 many times a bar
    monkeypatch.setattr(ui.os, "isatty", lambda fd: False)
    base = view_of(models["groove-4-4"], beat=0.0)
    beats = [0.0, 0.1, 0.2, 0.3, 1.0, 2.0, 3.0, 4.0, 4.1, 4.2, 5.0]
    views = [dataclasses.replace(base, beat=b, bpm=119.7 + 0.6 * (k % 2)) for k, b in enumerate(beats)]
    it, stop, lines = iter(views), threading.Event(), []
    current = {"v": views[0]}

    def tick() -> None:
        try:
            current["v"] = next(it)
        except StopIteration:
            stop.set()

    names = models["groove-4-4"].kit.names
    ui.run_console(lambda: current["v"], names, stop, tick, show=lines.append, verbose=True)
    bars = [ln for ln in lines if "BPM" in ln]
    assert [ln.split()[0] for ln in bars] == ["1:1", "2:1"]
    assert lines.count(ui.LATE_EXPLAINED) == 1 and lines.index(ui.LATE_EXPLAINED) < lines.index(bars[0])


def run_console_over(views: list[PlayerView], names: list[str], verbose: bool = False) -> list[str]:
    """What run_console prints in a log (not a terminal) as the view goes through ``views``."""
    it, stop, lines = iter(views), threading.Event(), []
    current = {"v": views[0]}

    def tick() -> None:
        try:
            current["v"] = next(it)
        except StopIteration:
            stop.set()

    ui.run_console(lambda: current["v"], names, stop, tick, show=lines.append, verbose=verbose)
    return lines


def test_console_in_a_log_says_each_change_of_state_and_no_bar_lines_without_v(models, monkeypatch):
    monkeypatch.setattr(ui.os, "isatty", lambda fd: False)
    base = view_of(models["groove-4-4"], beat=0.0)
    ports = base.ports

    def at(beat, state="playing", **kw):
        return dataclasses.replace(base, beat=beat, state=state, **kw)

    views = [
        at(0.0, "stopped"),  # before the first turn: nothing to say
        *[at(b) for b in (0.0, 1.0, 4.0, 5.0)],
        at(5.5, "stopped"),  # /rvae/stop on the internal clock
        at(0.0),
        *[at(b, "clock lost") for b in (9.0, 9.0, 9.0)],  # a followed clock's pulses stopped
        at(9.1),
        at(9.5, "waiting for clock"),  # the rig's Stop
        at(10.0),
        at(10.5, ports=ports + "  (MIDI out LOST)"),
        at(11.0, ports=ports + "  (MIDI out LOST)", late_events=3),
        at(12.0, ports=ports + "  (MIDI out LOST)", late_events=5),
    ]
    lines = [ln for ln in run_console_over(views, models["groove-4-4"].kit.names) if "pattern 1" not in ln]
    assert lines == [
        "playing from bar 1",
        "stopped at bar 2",
        "playing from bar 1",
        "clock lost at bar 3: no MIDI clock pulses, notes silenced; playing on when they return",
        "clock back: playing on from bar 3",
        "stopped at bar 3 (the clock's Stop); waiting for clock",
        "playing from bar 3",
        f"ports now: {ports}  (MIDI out LOST)",
        "3 notes left over 1 ms late (a busy machine?); rvae -v perform prints the count every bar",
    ]


def test_a_stop_of_the_performers_own_on_link_is_not_called_the_clocks(models):
    v = view_of(models["groove-4-4"], beat=4.0)
    waiting = dataclasses.replace(v, state="waiting for Link start (space starts everyone)")
    grid = models["groove-4-4"].grid
    said = "stopped at bar 2; waiting for Link start (space starts everyone)"
    assert ui.state_line("playing", waiting, grid, ours=True) == said
    assert ui.state_line("playing", waiting, grid) == said.replace("; ", " (the clock's Stop); ")
