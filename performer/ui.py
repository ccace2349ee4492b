"""The performer's window: the latent map to play on, the pattern playing now, a status line.

The window runs on the main thread and does no timing-critical work: the clock thread owns
playback. Each frame it reads two snapshots (``view() -> PlayerView`` and
``controls.get()``), writes controls from keys and mouse, and renders. Everything that
costs more than a blit is cached and rebuilt only when its input changes: the decoded
plane once per window, its picture when the threshold changes (at most every
``MAP_REFRESH`` seconds), the pattern layer when a new pattern arrives or mutes change,
text when it changes. So a frame is a few blits and one line for the playhead, and the
main thread holds the GIL for as little as possible (see DESIGN.md, "Realtime rules").

Keys: mouse drag on the map or arrows (shift: coarse) move the cursor; 1-9 mute
instruments 1-9; shift + 1-9 selects an instrument's density, which + / - then change
(shift + the same number or Escape: back to the threshold); space start/stop; + / -
threshold; [ / ] noise; m microtiming 0/50/100%;
v velocity fixed/decoded; s swap tick/beat/bar; , / . tempo -/+1 (shift: 10);
p or shift+Escape panic; q or closing the window quits. With ``--learn-in``: l learns the bars
played, u undoes the last learn, f moves the cursor to the last bar played; the captured bars
show as a strip under the pattern (performer.learn).

The map and the pad show the square the controls hold (``ControlState.extent``: the model's own,
or --extent), and follow it when it changes.

``render`` draws one frame onto any surface, so tests and ``screenshot`` need no display.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # before the import, which prints otherwise
import pygame

from performer.control import DENSITY_RANGE, TEMPO_RANGE, Controls, ControlState
from performer.learn import HELD, LearnView
from performer.sequencer import SWAP_MODES, Pattern, PlayerView, bar_beat, shift
from rvae.checkpoint import Checkpoint
from rvae.files import save_surface
from rvae.grid import Grid
from rvae.latent import latent_map
from rvae.picture import instrument_colours, map_image

__all__ = [
    "CURSOR_COLOUR",
    "Layout",
    "Renderer",
    "Window",
    "bar_beat",
    "grid_lines",
    "hit_point",
    "layout",
    "make_map_surface",
    "open_display",
    "pixel_to_z",
    "render",
    "run_window",
    "screenshot",
    "z_to_pixel",
]

MAP_CELLS = 30  # cells per side of the latent map, as `rvae map`
MAP_CELL_PX = 24  # pixels per cell before scaling to the window, as `rvae map`
MAP_REFRESH = 0.25  # seconds between two redraws of the map while the threshold moves
MAP_CACHE = 24  # map pictures kept, by threshold: the keys only ever make 19 different ones
FRAME_HISTORY = 600  # frame times kept (10 s at 60 fps), for benchmarks

# Control steps and ranges of the keys
Z_FINE, Z_COARSE = 1 / 60, 1 / 12  # of the square's half-width: a press moves as many pixels on any model
THRESHOLD_STEP, THRESHOLD_RANGE = 0.05, (0.05, 0.95)  # 0 or 1 would mean every step or none
NOISE_STEP, NOISE_RANGE = 0.05, (0.0, 1.0)
DENSITY_STEP = 0.1  # twenty presses from -1 to 1
MICROTIMING_CYCLE = (0.0, 0.5, 1.0)

BG = (14, 14, 17)
PANEL = (24, 24, 29)
TEXT = (225, 225, 230)
DIM = (130, 130, 140)
CURSOR_COLOUR = (255, 255, 0)  # never in the map: instrument colours have saturation 0.65
PLAYHEAD = (255, 255, 255)
PATTERN_Z = (200, 200, 255)  # where the pattern playing now was decoded
GRID_LINE = {0: (32, 32, 38), 1: (48, 48, 56), 2: (78, 78, 90), 3: (140, 140, 155)}  # 16th, unit, beat, bar

PAD = 12
LINE = 22  # status line height
HEADER = 22  # pattern header: meter and counts
NAME_W = 128  # instrument names column, and each one's density
ROW_MAX = 40  # tallest instrument row
MIN_SIDE_PANEL = 260  # narrower than this and the pattern goes under the map
HELP = (  # (keys, what they do), drawn as two columns
    ("drag, arrows", "move the cursor (shift: coarse)"),
    ("1-9", "mute instrument"),
    ("shift+1-9", "density: + / - (Esc: threshold)"),
    ("space", "start / stop"),
    ("+ / -", "threshold"),
    ("[ / ]", "noise"),
    ("m", "microtiming 0 / 50 / 100%"),
    ("v", "velocity fixed / decoded"),
    ("s", "swap at tick / beat / bar"),
    (", / .", "tempo -/+ 1 (shift: 10)"),
    ("p, shift+Esc", "panic"),
    ("q", "quit"),
)
LEARN_HELP = (("l / u / f", "learn bars played / undo / find"),)
STRIP_H = 30  # the captured bars' strip under the pattern
SELECTED = (120, 220, 120)  # outline of the bars a learn takes
UNSAVED = (230, 90, 80)  # outline of a bar not on disk, and what failed


# --- geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    map: pygame.Rect  # square, the pad's square of the plane, [-extent, extent]^2
    pattern: pygame.Rect
    help: pygame.Rect | None  # None when there is no room for it
    status: pygame.Rect
    strip: pygame.Rect | None = None  # the captured bars, with --learn-in


def layout(size: tuple[int, int], instruments: int, learning: bool = False) -> Layout:
    """Where everything goes in a window of ``size``: map on the left, pattern and key help
    on the right, status at the bottom; in a narrow window the pattern goes under the map.
    ``learning``: a strip for the captured bars under the pattern, a status line more."""
    lay = _layout(size, instruments, 1 if learning else 0)
    if not learning:
        return lay
    p = lay.pattern
    if lay.help is not None:  # the key help moves down
        strip = pygame.Rect(p.left, p.bottom + PAD // 2, p.w, STRIP_H)
        h = lay.help.move(0, STRIP_H + PAD // 2)
        h.h -= STRIP_H + PAD // 2
        return Layout(lay.map, p, h if h.h >= LINE * 3 else None, lay.status, strip)
    pattern = pygame.Rect(p.left, p.top, p.w, max(HEADER + 1, p.h - STRIP_H - PAD // 2))  # narrow: it gives way
    return Layout(lay.map, pattern, None, lay.status, pygame.Rect(p.left, pattern.bottom + PAD // 2, p.w, STRIP_H))


def _layout(size: tuple[int, int], instruments: int, more_lines: int) -> Layout:
    w, h = max(int(size[0]), 160), max(int(size[1]), 160)
    lines = (2 if w >= 1000 else 3 if w >= 700 else 4) + more_lines  # the status items wrap in narrow windows
    status = pygame.Rect(PAD, h - lines * LINE - PAD // 2, w - 2 * PAD, lines * LINE)
    avail_h = status.top - 2 * PAD
    pattern_h = HEADER + instruments * ROW_MAX
    side = max(40, min(avail_h, int(w * 0.6)))
    right = w - side - 3 * PAD
    if right >= MIN_SIDE_PANEL:
        mp = pygame.Rect(PAD, PAD, side, side)
        pattern = pygame.Rect(mp.right + PAD, PAD, right, min(pattern_h, avail_h))
        help_top = pattern.bottom + PAD
        help_rect = pygame.Rect(pattern.left, help_top, right, avail_h + PAD - help_top)
        return Layout(mp, pattern, help_rect if help_rect.h >= LINE * 3 else None, status)
    # narrow: the pattern gets at least a third of the height, the map what is left
    pattern_h = min(pattern_h, max(HEADER + instruments * 8, avail_h // 3))
    side = max(40, min(w - 2 * PAD, avail_h - pattern_h - PAD))
    mp = pygame.Rect((w - side) // 2, PAD, side, side)
    pattern_h = max(HEADER + instruments, status.top - mp.bottom - 2 * PAD)
    pattern = pygame.Rect(PAD, mp.bottom + PAD, w - 2 * PAD, pattern_h)
    return Layout(mp, pattern, None, status)


def z_to_pixel(rect: pygame.Rect, z: tuple[float, ...], extent: float) -> tuple[int, int]:
    """Latent (x, y), y up, -> the pixel in ``rect``, which shows [-extent, extent]^2; points
    outside the square go to its edge."""
    x = min(max(float(z[0]), -extent), extent)
    y = min(max(float(z[1]), -extent), extent)
    px = rect.left + round((x + extent) / (2 * extent) * (rect.w - 1))
    py = rect.top + round((extent - y) / (2 * extent) * (rect.h - 1))
    return px, py


def pixel_to_z(rect: pygame.Rect, pos: tuple[int, int], extent: float) -> tuple[float, float]:
    """Inverse of ``z_to_pixel``, clamped to the square."""
    fx = (pos[0] - rect.left) / max(1, rect.w - 1)
    fy = (pos[1] - rect.top) / max(1, rect.h - 1)
    x = min(max(-extent + 2 * extent * fx, -extent), extent)
    y = min(max(extent - 2 * extent * fy, -extent), extent)
    return round(x, 4), round(y, 4)


@dataclass(frozen=True)
class _Steps:
    """Where steps and rows fall inside a pattern rectangle."""

    rect: pygame.Rect
    steps: int
    instruments: int

    @property
    def left(self) -> int:
        return self.rect.left + NAME_W

    @property
    def step_w(self) -> float:
        return max(1, self.rect.w - NAME_W - 4) / self.steps

    @property
    def row_h(self) -> float:
        return max(1, self.rect.h - HEADER) / self.instruments

    def x(self, step: float) -> int:
        return self.left + math.floor(step * self.step_w)

    def row(self, i: int) -> tuple[int, int]:
        top = self.rect.top + HEADER + round(i * self.row_h)
        return top, self.rect.top + HEADER + round((i + 1) * self.row_h)

    def hit_rect(self, i: int, step: float, grid: Grid) -> pygame.Rect:
        top, bottom = self.row(i)
        width = max(2, round(self.step_w * grid.steps_per_quarter / 8))  # a 32nd: 16ths never touch
        return pygame.Rect(self.x(step), top + 3, width, max(1, bottom - top - 6))


def hit_point(size: tuple[int, int], grid: Grid, instruments: int, instrument: int, step: float) -> tuple[int, int]:
    """A pixel inside the bar drawn for a hit of ``instrument`` at grid position ``step``
    (microtiming included), in a window of ``size``: for tests."""
    r = _Steps(layout(size, instruments).pattern, grid.steps, instruments).hit_rect(instrument, step, grid)
    return r.left + min(1, r.w - 1), r.centery


def grid_lines(grid: Grid) -> list[tuple[float, int, int]]:
    """(step, level, count) for the lines of one loop: level 0 = 16th, 1 = the meter's unit
    (quarter in x/4, eighth in x/8), 2 = beat (a dotted quarter in 6/8, 9/8, 12/8), 3 = bar;
    count = 1-based unit in the bar, 0 between units."""
    num, den = grid.time_signature
    spq = grid.steps_per_quarter
    unit = Fraction(4 * spq, den)
    beat = unit * 3 if den >= 8 and num % 3 == 0 and num > 3 else unit
    sixteenth = Fraction(spq, 4)
    fine = sixteenth if sixteenth < unit and (unit / sixteenth).denominator == 1 else unit
    bar = grid.steps_per_bar
    out = []
    k = Fraction(0)
    while k < grid.steps:
        in_bar = k % bar
        level = 3 if in_bar == 0 else 2 if in_bar % beat == 0 else 1 if in_bar % unit == 0 else 0
        count = int(in_bar / unit) + 1 if in_bar % unit == 0 else 0
        out.append((float(k), level, count))
        k += fine
    return out


# --- drawing ----------------------------------------------------------------------------------


def make_map_surface(
    ckpt: Checkpoint,
    threshold: float = 0.5,
    probs: np.ndarray | None = None,
    cells: int = MAP_CELLS,
    extent: float | None = None,
) -> pygame.Surface:
    """The picture `rvae map` draws, as a surface, over [-extent, extent]^2 (default: the
    model's own square, ``ckpt.extent``). ``probs``: a ``latent_map`` already decoded over
    that square (it does not depend on the threshold, so the window decodes the plane once)."""
    e = ckpt.extent if extent is None else extent
    if probs is None:
        probs = latent_map(ckpt, cells, e)
    img = map_image(ckpt, probs, threshold, MAP_CELL_PX, e)  # (H, W, 3), rows first: a plain RGB buffer
    return pygame.image.frombuffer(img.tobytes(), (img.shape[1], img.shape[0]), "RGB")


class Renderer:
    """Draws frames for one checkpoint, caching what does not change between frames."""

    def __init__(self, ckpt: Checkpoint) -> None:
        pygame.font.init()
        self.ckpt = ckpt
        self.names = ckpt.kit.names
        self.colours = [(int(r), int(g), int(b)) for r, g, b in instrument_colours(len(self.names))]
        self.font = pygame.font.Font(None, 20)
        self.small = pygame.font.Font(None, 17)
        self._text: dict[tuple, pygame.Surface] = {}
        self._map_key: tuple | None = None
        self._map_scaled: pygame.Surface | None = None
        self._pattern_key: tuple | None = None
        self._pattern_layer: pygame.Surface | None = None
        self._help_key: tuple | None = None
        self._help_layer: pygame.Surface | None = None

    def text(self, s: str, colour: tuple[int, int, int] = TEXT, small: bool = False) -> pygame.Surface:
        key = (s, colour, small)
        surf = self._text.get(key)
        if surf is None:
            if len(self._text) > 512:  # the status line changes every beat: don't grow forever
                self._text.clear()
            surf = self._text[key] = (self.small if small else self.font).render(s, True, colour)
        return surf

    def draw(
        self,
        surface: pygame.Surface,
        state: ControlState,
        view: PlayerView,
        map_surface: pygame.Surface,
        selected: int | None = None,
        learn: LearnView | None = None,
    ) -> None:
        """One frame; ``selected``: the instrument whose density + / - change, if any;
        ``learn``: learning on stage's view (the captured bars' strip, its status)."""
        lay = layout(surface.get_size(), len(self.names), learn is not None)
        surface.fill(BG)
        self._draw_map(surface, lay.map, map_surface, state, view)
        if learn is not None and lay.strip is not None:
            self._draw_strip(surface, lay.strip, learn)
        self._draw_pattern(surface, lay.pattern, state, view, selected)
        if lay.help is not None:
            self._draw_help(surface, lay.help, learn is not None)
        self._draw_status(surface, lay.status, state, view, selected, learn)

    def _draw_strip(self, surface: pygame.Surface, rect: pygame.Rect, learn: LearnView) -> None:
        """The captured bars, oldest left, each a tiny pattern; the ones a learn takes outlined."""
        pygame.draw.rect(surface, PANEL, rect)
        label = f"played {len(learn.bars)}, learn {learn.selected}"
        surface.blit(self.text(label, DIM, small=True), (rect.left + 6, rect.centery - 6))
        slot_w = (rect.w - NAME_W) / HELD
        n = len(self.names)
        first_selected = len(learn.bars) - learn.selected
        for k, bar in enumerate(learn.bars):
            cell = pygame.Rect(round(rect.left + NAME_W + k * slot_w) + 1, rect.top + 2, round(slot_w) - 3, rect.h - 4)
            g = bar.groove
            inst, step = np.nonzero(g.onsets)
            for i, st in zip(inst.tolist(), step.tolist(), strict=True):
                x = cell.left + 1 + st * (cell.w - 3) // g.grid.steps
                y = cell.top + 1 + i * (cell.h - 3) // max(1, n)
                surface.fill(self.colours[i % len(self.colours)], (x, y, 2, 2))
            if not bar.saved:
                pygame.draw.rect(surface, UNSAVED, cell, 1)
            elif k >= first_selected:
                pygame.draw.rect(surface, SELECTED, cell, 1)
            else:
                pygame.draw.rect(surface, GRID_LINE[2], cell, 1)

    def _draw_map(self, surface, rect, map_surface, state, view) -> None:
        key = (id(map_surface), rect.size)
        if key != self._map_key or self._map_scaled is None:
            scaled = pygame.transform.smoothscale(map_surface, rect.size)
            self._map_scaled = scaled.convert() if pygame.display.get_surface() is not None else scaled
            self._map_key = key
            self._map_source = map_surface  # keeps id(map_surface) from being reused while cached
        surface.blit(self._map_scaled, rect)
        pygame.draw.rect(surface, DIM, rect.inflate(2, 2), 1)
        p = view.pattern
        if p is not None and len(p.z) >= 2:
            pygame.draw.circle(surface, PATTERN_Z, z_to_pixel(rect, p.z, state.extent), 9, 1)
        cx, cy = z_to_pixel(rect, state.z, state.extent)
        pygame.draw.line(surface, (0, 0, 0), (cx - 12, cy), (cx + 12, cy), 3)
        pygame.draw.line(surface, (0, 0, 0), (cx, cy - 12), (cx, cy + 12), 3)
        pygame.draw.line(surface, CURSOR_COLOUR, (cx - 11, cy), (cx + 11, cy), 1)
        pygame.draw.line(surface, CURSOR_COLOUR, (cx, cy - 11), (cx, cy + 11), 1)
        pygame.draw.circle(surface, (0, 0, 0), (cx, cy), 6)
        pygame.draw.circle(surface, CURSOR_COLOUR, (cx, cy), 4)

    def _draw_pattern(self, surface, rect, state, view, selected) -> None:
        p = view.pattern
        grid = p.grid if p is not None else self.ckpt.grid
        key = (
            id(p),
            p.serial if p else -1,
            state.mutes,
            state.density,
            selected,
            state.microtiming,
            state.velocity,
            state.fixed_velocity,
            rect.size,
        )
        if key != self._pattern_key or self._pattern_layer is None:
            layer = pygame.Surface(rect.size)
            self._paint_pattern(layer, p, grid, state, selected)
            self._pattern_layer = layer.convert() if pygame.display.get_surface() is not None else layer
            self._pattern_key = key
            self._pattern_ref = p  # keeps id(p) from being reused while cached
        surface.blit(self._pattern_layer, rect)
        geo = _Steps(rect, grid.steps, len(self.names))
        loop = grid.steps / grid.steps_per_quarter
        x = geo.x((view.beat % loop) * grid.steps_per_quarter)
        pygame.draw.line(surface, PLAYHEAD, (x, rect.top + HEADER - 4), (x, rect.bottom - 1), 2)

    def _paint_pattern(
        self, layer: pygame.Surface, p: Pattern | None, grid: Grid, state: ControlState, selected: int | None = None
    ) -> None:
        """The pattern, without the playhead, on a surface of the pattern rectangle's size;
        each row's density beside its name when it is not the model's own, or selected."""
        layer.fill(PANEL)
        n = len(self.names)
        geo = _Steps(layer.get_rect(), grid.steps, n)
        bars = f"{grid.bars} bar{'s' if grid.bars > 1 else ''}"
        layer.blit(self.text(f"{grid.meter} · {bars}", DIM, small=True), (6, 4))
        for i, name in enumerate(self.names):
            top, bottom = geo.row(i)
            if i % 2:
                layer.fill((29, 29, 35), (geo.left, top, layer.get_width() - geo.left, bottom - top))
            muted = i in state.mutes
            colour = DIM if muted else self.colours[i]
            label = f"{i + 1} {name}" if i < 9 else name
            layer.fill(colour, (6, top + (bottom - top) // 2 - 4, 8, 8))
            layer.blit(self.text(label, colour, small=True), (20, top + (bottom - top) // 2 - 6))
            d = state.density[i] if i < len(state.density) else 0.0
            if d or i == selected:
                text = self.text(f"{d:+.1f}", TEXT if i == selected else colour, small=True)
                layer.blit(text, (NAME_W - 6 - text.get_width(), top + (bottom - top) // 2 - 6))
            if i == selected:
                pygame.draw.rect(layer, TEXT, (2, top + 1, NAME_W - 4, max(2, bottom - top - 2)), 1)
        for step, level, count in grid_lines(grid):
            x = geo.x(step)
            layer.fill(GRID_LINE[level], (x, HEADER - 2, 1, layer.get_height() - HEADER + 2))
            if count:
                layer.blit(self.text(str(count), TEXT if level >= 2 else DIM, small=True), (x + 3, 5))
        for i, step, vel in self._hits(p, grid, state):
            if i >= n:
                continue
            if i in state.mutes:
                level = int(60 + 90 * vel / 127)
                colour = (level, level, level)
            else:
                bright = 0.3 + 0.7 * vel / 127  # velocity as brightness
                r, g, b = self.colours[i]
                colour = (int(r * bright), int(g * bright), int(b * bright))
            layer.fill(colour, geo.hit_rect(i, step, grid))

    @staticmethod
    def _hits(p: Pattern | None, grid: Grid, state: ControlState) -> list[tuple[int, float, int]]:
        """(instrument, position in steps, velocity) to draw: what plays, from the pattern;
        muted instruments from the decoded groove, as they would play if unmuted."""
        if p is None:
            return []
        out = [
            (int(i), float(s + o), int(v))
            for i, s, o, v in zip(p.instruments, p.steps, p.offsets, p.velocities, strict=True)
            if int(i) not in state.mutes
        ]
        g = p.groove
        if g is not None and state.mutes:
            fixed = state.fixed_velocity if state.velocity == "fixed" else None
            for step, i, vel, off in g.hits():
                if i in state.mutes:
                    out.append((i, step + float(shift(off, state.microtiming)), fixed or vel))
        return out

    def _draw_help(self, surface, rect, learning: bool = False) -> None:
        key = (rect.size, learning)
        if key != self._help_key or self._help_layer is None:
            layer = pygame.Surface(rect.size)
            layer.fill(BG)
            for k, (keys, what) in enumerate(HELP[:1] + (LEARN_HELP if learning else ()) + HELP[1:]):  # seen first
                if (k + 1) * 19 > rect.h:
                    break
                layer.blit(self.text(keys, TEXT, small=True), (4, k * 19))
                layer.blit(self.text(what, DIM, small=True), (100, k * 19))
            self._help_layer, self._help_key = layer, key
        surface.blit(self._help_layer, rect)

    def _draw_status(self, surface, rect, state, view, selected=None, learn: LearnView | None = None) -> None:
        grid = view.pattern.grid if view.pattern is not None else self.ckpt.grid
        bar, unit = bar_beat(view.beat, grid)
        playing = [f"{view.bpm:.1f} BPM", f"{view.clock} clock, {view.state}", f"bar {bar}:{unit}"]
        if view.detail:
            playing.append(str(view.detail))  # numbers from the clock thread, formatted here
        if view.ports:
            playing.append(view.ports)
        if view.late_events or view.missed_ticks:
            playing.append(f"late events {view.late_events}, missed ticks {view.missed_ticks}")
        mutes = ", ".join(f"{i + 1} {self.names[i]}" for i in sorted(state.mutes) if i < len(self.names)) or "none"
        vel = f"fixed {state.fixed_velocity}" if state.velocity == "fixed" else state.velocity
        densities = ", ".join(
            f"{i + 1} {d:+.1f}" for i, d in enumerate(state.density[: len(self.names)]) if d or i == selected
        )
        controls = [
            f"threshold {state.threshold:.2f}" + (f"  density {densities}" if densities else ""),
            f"swap {state.swap}",
            f"mutes {mutes}",
            f"microtiming {round(state.microtiming * 100)}%",
            f"velocity {vel}",
            f"noise {state.noise:.2f}",
            f"z ({state.z[0]:+.2f}, {state.z[1]:+.2f})",
        ]
        if not state.running and view.state == "playing":
            controls.append("stopping")
        learned: list[str] = []
        if learn is not None:
            unmapped = f", unmapped notes {learn.unmapped}" if learn.unmapped else ""
            controls.append(f"captured {len(learn.bars)}{unmapped}")
            learned = [t for t in (learn.problem, learn.state) if t]
        x, y = rect.left, rect.top
        news = UNSAVED if learn and learn.problem else TEXT
        for colour, items in ((TEXT, playing), (DIM, controls), (news, learned)):
            for item in items:
                text = self.text(item, colour)
                if x > rect.left and x + text.get_width() > rect.right:  # wrap rather than clip
                    x, y = rect.left, y + LINE
                surface.blit(text, (x, y))
                x += text.get_width() + 22
            x, y = rect.left, y + LINE


def render(
    surface: pygame.Surface,
    ckpt: Checkpoint,
    state: ControlState,
    view: PlayerView,
    map_surface: pygame.Surface,
    learn: LearnView | None = None,
) -> None:
    """Draw one frame onto ``surface`` (any size): no display, no events, no controls written."""
    Renderer(ckpt).draw(surface, state, view, map_surface, learn=learn)


def screenshot(
    ckpt: Checkpoint, state: ControlState, view: PlayerView, path: str | Path, size: tuple[int, int] = (1100, 720)
) -> Path:
    """Render one frame to a PNG at ``path``, offscreen (no display is opened)."""
    surface = pygame.Surface(size)
    render(surface, ckpt, state, view, make_map_surface(ckpt, state.threshold, extent=state.extent))
    return save_surface(surface, path)


# --- the window -------------------------------------------------------------------------------


def _cycle(values: tuple, current) -> object:
    """The value after ``current`` in ``values``, wrapping; the first if current is not there."""
    try:
        return values[(values.index(current) + 1) % len(values)]
    except ValueError:
        return values[0]


def _clamp(x: float, lo_hi: tuple[float, float]) -> float:
    return min(max(x, lo_hi[0]), lo_hi[1])


class Window:
    """The window's state between frames: handles events (writing Controls), keeps the map
    picture up to date with the threshold, and draws. Only ``run`` opens a display: the rest
    can be driven with synthetic events onto an offscreen surface."""

    def __init__(
        self,
        ckpt: Checkpoint,
        controls: Controls,
        view: Callable[[], PlayerView],
        map_cells: int = MAP_CELLS,
        learn: Callable[[], LearnView] | None = None,
    ) -> None:
        self.controls = controls
        self.view = view
        self.learn = learn
        self.renderer = Renderer(ckpt)
        self.ckpt = ckpt
        self.instruments = len(ckpt.kit)
        self.map_cells = map_cells
        self.map_redraws = 0  # pictures drawn since the first, for tests and benchmarks
        self._decode_plane(controls.get().extent, controls.get().threshold)
        self.size: tuple[int, int] = (1100, 720)  # of the surface drawn last: mouse positions refer to it
        self._dragging = False
        self.selected: int | None = None  # the instrument whose density + / - change; None: the threshold
        self.frame_times: deque[float] = deque(maxlen=FRAME_HISTORY)  # seconds of work per frame

    def set_model(self, ckpt: Checkpoint) -> None:
        """Show ``ckpt`` (learning swapped it in, or an undo back): its map, with its loops' dots."""
        self.ckpt = ckpt
        self.renderer = Renderer(ckpt)
        self.instruments = len(ckpt.kit)
        st = self.controls.get()
        self._decode_plane(st.extent, st.threshold)
        self.map_redraws += 1

    def handle(self, events: list[pygame.event.Event]) -> bool:
        """Apply a frame's events to the controls; False when the window should close."""
        drag_z = None
        for e in events:
            if e.type in (pygame.QUIT, pygame.WINDOWCLOSE):
                return False
            if e.type == pygame.KEYDOWN:
                if not self._key(e):
                    return False
            elif e.type == pygame.MOUSEBUTTONDOWN and e.button == 1:
                rect = layout(self.size, self.instruments, self.learn is not None).map
                if rect.collidepoint(e.pos):
                    self._dragging = True
                    drag_z = pixel_to_z(rect, e.pos, self.controls.get().extent)
            elif e.type == pygame.MOUSEMOTION and self._dragging:
                drag_z = pixel_to_z(
                    layout(self.size, self.instruments, self.learn is not None).map, e.pos, self.controls.get().extent
                )
            elif e.type == pygame.MOUSEBUTTONUP and e.button == 1:
                self._dragging = False
        if drag_z is not None:  # one write per frame: the decoder polls and decodes only the newest
            self.controls.update(z=drag_z)
        return True

    def _key(self, e: pygame.event.Event) -> bool:
        """One key press; False for quit."""
        key, char = e.key, getattr(e, "unicode", "")
        shift = bool(getattr(e, "mod", 0) & pygame.KMOD_SHIFT)
        c = self.controls
        s = c.get()
        if key == pygame.K_q or char == "q":
            return False
        if key in _ARROWS:
            dx, dy = _ARROWS[key]
            d = (Z_COARSE if shift else Z_FINE) * s.extent
            z = tuple(round(_clamp(v + dv * d, (-s.extent, s.extent)), 4) for v, dv in zip(s.z, (dx, dy), strict=True))
            c.update(z=z)
        elif shift and pygame.K_1 <= key <= pygame.K_9:
            i = key - pygame.K_1
            if i < self.instruments:
                self.selected = None if self.selected == i else i
        elif key == pygame.K_ESCAPE and not shift and self.selected is not None:  # shift+Esc stays panic
            self.selected = None
        elif self.selected is not None and (
            key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS, pygame.K_MINUS, pygame.K_KP_MINUS)
            or char in ("+", "-")
        ):
            sign = -1 if key in (pygame.K_MINUS, pygame.K_KP_MINUS) or char == "-" else 1
            d = s.density[self.selected] if self.selected < len(s.density) else 0.0
            c.set_density(self.selected, round(_clamp(d + sign * DENSITY_STEP, DENSITY_RANGE), 2))
        elif pygame.K_1 <= key <= pygame.K_9 or (char and char in "123456789"):
            i = key - pygame.K_1 if pygame.K_1 <= key <= pygame.K_9 else int(char) - 1
            if i < self.instruments:
                c.toggle_mute(i)
        elif key == pygame.K_SPACE:
            c.update(running=not s.running)
        elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS) or char == "+":
            c.update(threshold=round(_clamp(s.threshold + THRESHOLD_STEP, THRESHOLD_RANGE), 2))
        elif key in (pygame.K_MINUS, pygame.K_KP_MINUS) or char == "-":
            c.update(threshold=round(_clamp(s.threshold - THRESHOLD_STEP, THRESHOLD_RANGE), 2))
        elif key == pygame.K_LEFTBRACKET or char == "[":
            c.update(noise=round(_clamp(s.noise - NOISE_STEP, NOISE_RANGE), 2))
        elif key == pygame.K_RIGHTBRACKET or char == "]":
            c.update(noise=round(_clamp(s.noise + NOISE_STEP, NOISE_RANGE), 2))
        elif key == pygame.K_m:
            nxt = next((v for v in MICROTIMING_CYCLE if v > s.microtiming + 1e-6), MICROTIMING_CYCLE[0])
            c.update(microtiming=nxt)
        elif key == pygame.K_v:
            c.update(velocity="decoded" if s.velocity == "fixed" else "fixed")
        elif key == pygame.K_s:
            c.update(swap=_cycle(SWAP_MODES, s.swap))
        elif key in (pygame.K_COMMA, pygame.K_PERIOD) or char in ("<", ">"):
            sign = 1 if key == pygame.K_PERIOD or char == ">" else -1
            step = 10 if shift or char in ("<", ">") else 1
            c.update(bpm=round(_clamp(s.bpm + sign * step, TEMPO_RANGE), 2))
        elif key == pygame.K_p or (key == pygame.K_ESCAPE and shift):
            c.request_panic()
        elif self.learn is not None and key in (pygame.K_l, pygame.K_u, pygame.K_f):
            if key == pygame.K_l:
                c.request("learn", learn_bars=0)  # the bars since the last learn
            else:
                c.request("undo" if key == pygame.K_u else "find")
        return True

    def _decode_plane(self, extent: float, threshold: float) -> None:
        """Decode the square the pad shows (~25 ms of torch) and draw its picture: once per
        model and square, for the decoded plane does not depend on the threshold."""
        self._plane = (self.ckpt, extent)
        self._probs = latent_map(self.ckpt, self.map_cells, extent)
        self._map_threshold = threshold
        self.map_surface = make_map_surface(self.ckpt, threshold, self._probs, extent=extent)
        self._maps: dict[float, pygame.Surface] = {threshold: self.map_surface}
        self._map_time = time.perf_counter()

    def refresh_map(self, threshold: float, extent: float | None = None) -> None:
        """Show the map picture for a new threshold, and for a new square or model (``ckpt``
        replaced) at once. Drawing one holds the GIL for ~5 ms
        (``map_image`` loops over cells in Python), time the clock thread may lose: so
        pictures are kept by threshold, and a new one is drawn at most every MAP_REFRESH
        seconds while the threshold moves; the map catches up once it stops."""
        e = self._plane[1] if extent is None else extent
        if (self.ckpt, e) != self._plane:
            self._decode_plane(e, threshold)
            self.map_redraws += 1
            return
        if threshold == self._map_threshold:
            return
        cached = self._maps.get(threshold)
        now = time.perf_counter()
        if cached is None and now - self._map_time < MAP_REFRESH:
            return
        if cached is None:
            if len(self._maps) >= MAP_CACHE:
                self._maps.pop(next(iter(self._maps)))  # the oldest
            cached = self._maps[threshold] = make_map_surface(self.ckpt, threshold, self._probs, extent=e)
            self._map_time = now
            self.map_redraws += 1
        self.map_surface, self._map_threshold = cached, threshold

    def draw(self, surface: pygame.Surface) -> None:
        """Render the current snapshots; writes nothing."""
        self.size = surface.get_size()
        learn = self._learned()
        self.renderer.draw(surface, self.controls.get(), self.view(), self.map_surface, self.selected, learn)

    def _learned(self) -> LearnView | None:
        """Learning's view; a model it swapped in (a learn, an undo) is shown: its map, its new dots."""
        learn = self.learn() if self.learn is not None else None
        if learn is not None and learn.model is not None and learn.model is not self.ckpt:
            self.set_model(learn.model)
        return learn

    def frame(self, surface: pygame.Surface, events: list[pygame.event.Event]) -> bool:
        """One frame's work: events, map, drawing. False when the window should close."""
        if not self.handle(events):
            return False
        self._learned()  # a new model first: its map is decoded once, in its square
        st = self.controls.get()
        self.refresh_map(st.threshold, st.extent)
        self.draw(surface)
        return True

    def run(
        self,
        stop: threading.Event,
        fps: int = 60,
        size: tuple[int, int] = (1100, 720),
        max_frames: int | None = None,
        on_frame: Callable[[], None] | None = None,
    ) -> list[float]:
        """The frame loop on a real (or dummy) display; see ``run_window``. Frame times are
        the work of a frame (events, drawing, flip, on_frame), not the wait for the next one."""
        pygame.display.init()
        try:
            pygame.display.set_mode(size, pygame.RESIZABLE)
            name = self.ckpt.path.name if self.ckpt.path else "model"
            pygame.display.set_caption(f"rvae performer — {name} ({self.ckpt.grid.meter})")
            pygame.key.set_repeat(300, 40)  # held arrows and +/- keep moving
            clock = pygame.time.Clock()
            frames = 0
            while not stop.is_set():
                # tick sleeps until the frame is due; SDL_Delay releases the GIL, so the clock
                # thread runs freely while the window waits
                clock.tick(fps)
                t0 = time.perf_counter()
                screen = pygame.display.get_surface()  # pygame 2 resizes it itself on VIDEORESIZE
                if not self.frame(screen, pygame.event.get()):
                    stop.set()
                    break
                pygame.display.flip()
                if on_frame is not None:
                    on_frame()
                self.frame_times.append(time.perf_counter() - t0)
                frames += 1
                if max_frames is not None and frames >= max_frames:
                    break
            return list(self.frame_times)
        finally:
            pygame.display.quit()


_ARROWS = {pygame.K_LEFT: (-1, 0), pygame.K_RIGHT: (1, 0), pygame.K_UP: (0, 1), pygame.K_DOWN: (0, -1)}


def open_display() -> str | None:
    """Try to open a real display: None if it works, else why not, as one clause without a
    final stop, to go into a longer message ("no window: <why>; going on headless")."""
    try:
        pygame.display.init()
    except pygame.error as e:
        return f"no display could open ({str(e).strip().rstrip('.')})"
    driver = pygame.display.get_driver()
    if driver in ("dummy", "offscreen"):  # SDL falls back to "offscreen" when nothing else works
        pygame.display.quit()
        why = (
            "SDL_VIDEODRIVER asks for it"
            if os.environ.get("SDL_VIDEODRIVER")
            else "neither DISPLAY nor WAYLAND_DISPLAY is set"
        )
        return f"no real display, only SDL's {driver} driver ({why})"
    return None


def run_window(
    ckpt: Checkpoint,
    controls: Controls,
    view: Callable[[], PlayerView],
    stop: threading.Event,
    fps: int = 60,
    size: tuple[int, int] = (1100, 720),
    max_frames: int | None = None,
    on_frame: Callable[[], None] | None = None,
    learn: Callable[[], LearnView] | None = None,
) -> list[float]:
    """Open the window and run it until q / close (which sets ``stop``), until ``stop`` is set
    elsewhere, or after ``max_frames`` frames. ``on_frame`` runs on the main thread after
    each frame (keep it short: it delays the next). ``learn``: learning on stage's view, for
    the captured bars' strip, its status and keys. Returns the work time of the last
    frames, in seconds (``Window.run``)."""
    return Window(ckpt, controls, view, learn=learn).run(stop, fps, size, max_frames, on_frame)


# --- headless ---------------------------------------------------------------------------------


def pattern_text(p: Pattern | None, names: list[str]) -> str:
    """The pattern as text, one row per instrument, one column per 16th (x = a hit in it)."""
    if p is None:
        return "(no pattern yet)"
    g = p.grid
    per = max(1, g.steps_per_quarter // 4)
    cols = math.ceil(g.steps / per)
    rows = []
    for i, name in enumerate(names):
        hit = set((p.steps[p.instruments == i] // per).tolist())
        if hit:
            beats = "".join(("x" if c in hit else ".") + (" " if (c + 1) % 4 == 0 else "") for c in range(cols))
            rows.append(f"  {name:>11s} {beats}")
    return "\n".join(rows) or "  (silence)"


LATE_EXPLAINED = (
    "(late N: notes that left over 1 ms after their time since the start, 0 when all were on "
    "time; a busy machine raises it)"
)


def state_line(old: str | None, v: PlayerView, grid: Grid | None, ours: bool = False) -> str | None:
    """The line that says the performer went from state ``old`` to ``v.state``, or None when
    there is nothing to say (the clock's idle state before anything played). ``ours``: the
    performer's own stop (space, /rvae/stop) did it, which Link passes on to its peers."""
    bar = f"bar {bar_beat(v.beat, grid)[0]}" if grid is not None else "bar 1"
    if v.state == "playing":
        return f"clock back: playing on from {bar}" if old == "clock lost" else f"playing from {bar}"
    if v.state == "clock lost":
        return f"clock lost at {bar}: no MIDI clock pulses, notes silenced; playing on when they return"
    if v.state == "stopped":
        return f"stopped at {bar}" if old in ("playing", "clock lost") else None
    if old in ("playing", "clock lost"):
        why = "" if ours else " (the clock's Stop)"
        return f"stopped at {bar}{why}; {v.state}"
    return v.state  # waiting for clock


def run_console(
    view: Callable[[], PlayerView],
    names: list[str],
    stop: threading.Event,
    on_tick: Callable[[], None],
    show: Callable[[str], object] = print,
    verbose: bool = False,
    extra: Callable[[], str] | None = None,
    stopped_here: Callable[[], bool] = lambda: False,
) -> None:
    """Headless, until ``stop`` is set: each new pattern as text, and a line for every change
    of state (playing, stopped, waiting for clock, clock lost and back, the ports, the first
    late note). The position (bar:beat, state, tempo, late count) is a status line rewritten
    in place on a terminal; in a log, a line a bar only when ``verbose`` (rvae -v).
    ``extra()`` is added to the position (learning's captured and unmapped counts);
    ``stopped_here()`` tells a stop of the performer's own from the rig's."""
    last_serial, last_pos, last_logged = None, None, None
    last_state: str | None = None
    last_ports: str | None = None
    late_said = explained = False
    tty = os.isatty(1)
    on_screen = False  # the terminal's status line is showing: a line must start below it

    def say(line: str) -> None:
        nonlocal on_screen, last_pos
        show(("\n" if on_screen else "") + line)
        on_screen, last_pos = False, None  # the status line is drawn again below

    while not stop.wait(0.05):
        on_tick()
        v = view()
        p = v.pattern
        grid = p.grid if p is not None else None
        if p is not None and p.serial != last_serial:
            last_serial = p.serial
            z = ", ".join(f"{v:+.2f}" for v in p.z)
            say(f"pattern {p.serial} at z = ({z}), {len(p.steps)} hits:\n{pattern_text(p, names)}")
        if v.state != last_state:
            line = state_line(last_state, v, grid, stopped_here())
            last_state = v.state
            if line:
                say(line)
        if v.ports != last_ports:
            if last_ports is not None:  # the first is in the "playing ... on" line
                say(f"ports now: {v.ports}")
            last_ports = v.ports
        if v.late_events and not late_said and not verbose:
            late_said = True
            n = v.late_events
            say(
                f"{n} note{'s' if n > 1 else ''} left over 1 ms late (a busy machine?); "
                "rvae -v perform prints the count every bar"
            )
        bar, unit = bar_beat(v.beat, grid) if grid is not None else (0, 0)
        pos = f"{bar}:{unit}  {v.state}  {v.bpm:.1f} BPM  late {v.late_events}"
        pos += (f"  {v.detail}" if v.detail else "") + (f"  {extra()}" if extra else "")
        if pos == last_pos or not (tty or verbose):
            continue
        if not explained:  # once, the first time the figure shows
            explained = True
            say(LATE_EXPLAINED)
        last_pos = pos
        if tty:
            sys.stdout.write("\r" + pos + "   ")
            sys.stdout.flush()
            on_screen = True
        elif unit == 1 and (bar, v.state) != last_logged:
            last_logged = (bar, v.state)
            show(pos)  # in a log: one line a bar (a followed tempo's wobble is not news)
