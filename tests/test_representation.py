"""The representation: grid math, drum maps, and MIDI -> Groove -> MIDI.

Inputs are MIDI files written inline (positions in quarter notes, 480 ticks per quarter);
expected grids are literals: ``hits`` lists (step, class, velocity, offset) and, at 4 steps
per quarter, one string per instrument ("x" = a hit).
"""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from rvae.grid import Grid, parse_time_signature
from rvae.groove import Groove
from rvae.kit import KITS, DrumClass, Kit, load_kit
from rvae.midi_io import read_midi, write_midi

DEFAULT = KITS["default"]
TICK = 1 / 480  # one tick at 480 ticks per quarter, in quarter notes


def hits(groove) -> list[tuple[int, str, int, float]]:
    """(step, class name, MIDI velocity, offset to 2 decimals) for every hit, in time order."""
    return [(s, groove.kit.names[i], v, round(o, 2)) for s, i, v, o in groove.hits()]


def rows(groove) -> dict[str, str]:
    """The onset grid as one string per instrument that plays: 'x' a hit, '.' none."""
    return {name: "".join("x" if v else "." for v in row)
            for name, row in zip(groove.kit.names, groove.onsets, strict=True) if row.any()}


def note_ons(path) -> list[tuple[int, int, int]]:
    """(absolute tick, note, velocity) of every note-on in a MIDI file."""
    out, now = [], 0
    for msg in mido.merge_tracks(mido.MidiFile(path).tracks):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append((now, msg.note, msg.velocity))
    return sorted(out)


# ---------------------------------------------------------------------------- grid math

@pytest.mark.parametrize(("ts", "steps"), [((4, 4), 96), ((3, 4), 72), ((6, 8), 72), ((12, 8), 144), ((5, 4), 120),
                                           ((7, 8), 84)])
def test_steps_per_bar_follow_the_meter_at_24_per_quarter(ts, steps):
    assert Grid(ts).steps_per_bar == steps
    assert Grid(ts).steps == steps
    assert Grid(ts, bars=2).steps == 2 * steps


@pytest.mark.parametrize(("ts", "spq", "steps"), [
    ((4, 4), 4, 16), ((6, 8), 4, 12), ((7, 8), 4, 14), ((5, 4), 4, 20),
    ((4, 4), 12, 48), ((12, 8), 12, 72), ((7, 8), 12, 42), ((3, 4), 12, 36),
])
def test_other_resolutions(ts, spq, steps):
    assert Grid(ts, spq).steps_per_bar == steps


def test_grid_refuses_a_resolution_that_does_not_divide_the_bar():
    with pytest.raises(ValueError, match=r"7/8.*multiple of 2"):
        Grid((7, 8), steps_per_quarter=1)  # 3.5 steps per bar
    with pytest.raises(ValueError, match="at least 1"):
        Grid(steps_per_quarter=0)
    with pytest.raises(ValueError, match="at least 1"):
        Grid(bars=0)


def test_grid_dict_round_trip():
    g = Grid((7, 8), 12, 2)
    assert Grid.from_dict(json.loads(json.dumps(g.to_dict()))) == g


@pytest.mark.parametrize(("text", "ts"), [("4/4", (4, 4)), (" 6/8 ", (6, 8)), ("12/8", (12, 8)), ("7/16", (7, 16))])
def test_parse_time_signature(text, ts):
    assert parse_time_signature(text) == ts


@pytest.mark.parametrize(("text", "says"), [("4-4", "form N/D"), ("x/4", "form N/D"), ("", "form N/D"),
                                            ("4/4/4", "form N/D"), ("0/4", "numerator"), ("4/3", "power of two"),
                                            ("4/64", "power of two")])
def test_parse_time_signature_errors_say_what_is_wrong(text, says):
    with pytest.raises(ValueError, match=says):
        parse_time_signature(text)


def test_quantize_steps_and_offsets():
    g = Grid()  # 24 steps per quarter: one step is 20 ticks at 480 ticks per quarter
    q = np.array([0.0, 5 * TICK, -5 * TICK, 1.0 - 5 * TICK, 0.25, 1 / 3, 10 * TICK, 30 * TICK, 9 * TICK])
    step, offset = g.quantize(q)
    assert step.tolist() == [0, 0, 0, 24, 6, 8, 1, 2, 0]
    # Positive = late: 5 ticks after a step is +0.5 (of half a step, 10 ticks). Exactly halfway
    # rounds to the later step, at -1.
    np.testing.assert_allclose(offset, [0.0, 0.5, -0.5, -0.5, 0.0, 0.0, -1.0, -1.0, 0.9], atol=1e-9)


def test_position_inverts_quantize():
    for g in (Grid(), Grid((7, 8), 12), Grid((6, 8), 4, bars=2)):
        q = np.array([0.0, 0.01, 0.49, 1 / 3, 2.999, 3.5 - 0.001, 7 * TICK, 1913 * TICK])
        step, offset = g.quantize(q)
        assert np.all((offset >= -1) & (offset < 1))
        np.testing.assert_allclose(g.position(step, offset), q, atol=1e-12)


# ---------------------------------------------------------------------------- kits

def test_builtin_kits():
    assert len(KITS["default"]) == 9
    assert len(KITS["rvae"]) == 9
    assert load_kit("default") is KITS["default"]
    assert load_kit("rvae").names == ["kick", "snare", "closed hat", "open hat", "low tom", "mid tom", "high tom",
                                      "clap", "rim"]
    assert KITS["default"].out_notes == [36, 38, 42, 46, 43, 47, 50, 49, 51]
    # Pad kits: one class per pad, played back on the same pad.
    assert KITS["mpc"].out_notes == [37, 36, 42, 82, 40, 38, 46, 44, 48, 47, 45, 43, 49, 55, 51, 53]
    assert KITS["mpk"].out_notes == KITS["maschine"].out_notes == list(range(36, 52))
    assert [c.notes for c in KITS["mpc"].classes] == [(n,) for n in KITS["mpc"].out_notes]
    assert KITS["battery"].lookup()[44] == KITS["battery"].names.index("open hat")


def test_default_kit_reads_the_td11_edge_and_rim_notes(make_midi):
    path = make_midi([(22, 90, 0.0), (26, 91, 1.0), (58, 92, 2.0), (42, 93, 3.0)])
    got = read_midi(path, Grid(), DEFAULT)
    assert got.unmapped == 0
    assert hits(got.loops[0]) == [(0, "closed hat", 90, 0.0), (24, "open hat", 91, 0.0), (48, "low tom", 92, 0.0),
                                  (72, "closed hat", 93, 0.0)]


def test_unmapped_notes_are_dropped_and_counted(make_midi):
    path = make_midi([(36, 100, 0.0), (60, 90, 1.0), (61, 90, 2.0), (38, 80, 2.0)])
    got = read_midi(path, Grid(), DEFAULT)
    assert (got.notes, got.unmapped) == (4, 2)
    assert hits(got.loops[0]) == [(0, "kick", 100, 0.0), (48, "snare", 80, 0.0)]


USER_KIT_TOML = """
name = "two"
[[classes]]
name = "low"
out = 35
notes = [35, 36, 60]

[[classes]]
name = "high"
out = 42
notes = [42, 61]
"""


def test_user_kit_from_toml_and_json(tmp_path, make_midi):
    (tmp_path / "two.toml").write_text(USER_KIT_TOML)
    (tmp_path / "two.json").write_text(json.dumps({"name": "two", "classes": [
        {"name": "low", "out": 35, "notes": [35, 36, 60]}, {"name": "high", "out": 42, "notes": [42, 61]}]}))
    path = make_midi([(60, 100, 0.0), (61, 70, 0.5), (38, 90, 1.0)])
    for kit_file in ("two.toml", "two.json"):
        kit = load_kit(tmp_path / kit_file)
        assert (kit.name, kit.names, kit.out_notes) == ("two", ["low", "high"], [35, 42])
        got = read_midi(path, Grid(), kit)
        assert got.unmapped == 1  # the snare: this kit has none
        assert hits(got.loops[0]) == [(0, "low", 100, 0.0), (12, "high", 70, 0.0)]
        assert got.loops[0].onsets.shape == (2, 96)


@pytest.mark.parametrize(("name", "text"), [
    ("syntax.toml", "name = \n[[classes]"),
    ("syntax.json", '{"classes": ['),
    ("no_notes.toml", '[[classes]]\nname = "kick"\nout = 36\n'),
    ("no_classes.json", '{"name": "empty", "classes": []}'),
    ("list.json", "[1, 2]"),
    ("out_of_range.toml", '[[classes]]\nname = "kick"\nout = 36\nnotes = [200]\n'),
    ("not_a_number.json", '{"classes": [{"name": "kick", "out": 36, "notes": ["abc"]}]}'),
    ("twice.toml", '[[classes]]\nname = "kick"\nout = 36\nnotes = [36]\n'
                   '[[classes]]\nname = "snare"\nout = 38\nnotes = [38, 36]\n'),
    ("binary.toml", b"\xff\xfe\x00kit"),
])
def test_bad_kit_files_give_a_value_error_naming_the_file(tmp_path, name, text):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_kit(path)
    assert str(path) in str(err.value)


KICK = '[[classes]]\nname = "kick"\n'


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "typo.toml",
            KICK + "out = 36\nnots = [36]\n",
            "class 'kick' has unknown key 'nots' (expected name, out, notes)",
        ),
        (
            "top.toml",
            'nme = "x"\n' + KICK + "out = 36\nnotes = [36]\n",
            "the kit has unknown key 'nme' (expected name, classes)",
        ),
        (
            "singular.toml",
            '[[class]]\nname = "kick"\nout = 36\nnotes = [36]\n',
            "the kit has unknown key 'class' (expected name, classes)",
        ),
        ("no_notes.toml", KICK + "out = 36\n", "class 'kick' is missing key 'notes' (expected name, out, notes)"),
        (
            "no_name.json",
            '{"classes": [{"out": 36, "notes": [36]}]}',
            "class 1 is missing key 'name' (expected name, out, notes)",
        ),
        (
            "one_note.toml",
            KICK + 'out = 36\nnotes = "36"\n',
            "class 'kick': 'notes' must be a list of MIDI note numbers, not '36'",
        ),
        (
            "bad_out.json",
            '{"classes": [{"name": "kick", "out": "abc", "notes": [36]}]}',
            "class 'kick': 'out' must be a MIDI note number, not 'abc'",
        ),
    ],
)
def test_kit_file_mistakes_are_one_sentence_naming_file_class_and_key(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_kit(path)
    assert str(err.value) == f"kit file {path}: {problem}"


def test_kit_round_trips_through_its_dict():
    kit = KITS["default"]
    assert Kit.from_dict(json.loads(json.dumps(kit.to_dict()))) == kit


def test_unknown_kit_name():
    with pytest.raises(ValueError, match="neither a built-in"):
        load_kit("no such kit")


def test_a_note_in_two_classes_is_rejected():
    with pytest.raises(ValueError, match="note 38 is in both 'snare' and 'rim'"):
        Kit("k", (DrumClass("snare", 38, (38, 40)), DrumClass("rim", 37, (37, 38))))
    # Two classes that share a name are still two classes: a note cannot be in both.
    with pytest.raises(ValueError, match="note 36 is in both"):
        Kit("k", (DrumClass("kick", 36, (36,)), DrumClass("kick", 35, (35, 36))))


# ---------------------------------------------------------------------------- MIDI -> Groove

def test_a_bar_of_4_4_as_a_literal_grid(make_midi):
    notes = [(36, 100, 0.0), (36, 100, 2.5), (38, 100, 1.0), (38, 100, 3.0)] + [(42, 80, i / 2) for i in range(8)]
    got = read_midi(make_midi(notes), Grid(steps_per_quarter=4), DEFAULT)
    assert len(got.loops) == 1
    assert rows(got.loops[0]) == {
        "kick":       "x.........x.....",
        "snare":      "....x.......x...",
        "closed hat": "x.x.x.x.x.x.x.x.",
    }


def test_6_8_keeps_its_eighth_notes_and_triplets(make_midi):
    # Eighths of 6/8 are 1/2 quarter = 12 steps; the bar is 3 quarters = 72 steps.
    notes = [(42, 80, i / 2) for i in range(6)] + [(36, 100, 0.0), (38, 100, 1.5), (36, 100, 3.0), (42, 81, 3.5)]
    got = read_midi(make_midi(notes, ts=(6, 8)), Grid((6, 8)), DEFAULT)
    assert [g.source for g in got.loops] == ["clip0.mid bar 1", "clip0.mid bar 2"]
    assert [(s, n) for s, n, _, _ in hits(got.loops[0])] == [
        (0, "kick"), (0, "closed hat"), (12, "closed hat"), (24, "closed hat"), (36, "snare"), (36, "closed hat"),
        (48, "closed hat"), (60, "closed hat")]
    assert hits(got.loops[1]) == [(0, "kick", 100, 0.0), (12, "closed hat", 81, 0.0)]


def test_12_8_shuffle_bar_is_144_steps(make_midi):
    # Triplet-8th ride across a bar of 12/8 (8 steps each), kick on the dotted quarters.
    notes = [(51, 90, i / 2) for i in range(12)] + [(36, 110, 1.5 * i) for i in range(4)]
    got = read_midi(make_midi(notes, ts=(12, 8)), Grid((12, 8)), DEFAULT)
    assert len(got.loops) == 1
    loop = got.loops[0]
    assert loop.onsets.shape == (9, 144)
    assert np.nonzero(loop.onsets[DEFAULT.names.index("ride")])[0].tolist() == list(range(0, 144, 12))
    assert np.nonzero(loop.onsets[0])[0].tolist() == [0, 36, 72, 108]


def test_16th_and_32nd_triplets_in_4_4_are_exact(make_midi):
    notes = [(42, 80, i / 6) for i in range(6)] + [(46, 70, 2 + i / 12) for i in range(3)]
    got = read_midi(make_midi(notes), Grid(), DEFAULT)
    assert [(s, n, o) for s, n, _, o in hits(got.loops[0])] == [
        (0, "closed hat", 0.0), (4, "closed hat", 0.0), (8, "closed hat", 0.0), (12, "closed hat", 0.0),
        (16, "closed hat", 0.0), (20, "closed hat", 0.0),
        (48, "open hat", 0.0), (50, "open hat", 0.0), (52, "open hat", 0.0)]


@pytest.mark.parametrize(("ts", "bar_q", "steps"), [((7, 8), 3.5, 84), ((5, 4), 5.0, 120), ((3, 4), 3.0, 72)])
def test_odd_meters_are_cut_at_their_bar_lines(make_midi, ts, bar_q, steps):
    # A kick on each downbeat of 3 bars, a snare one 8th before each bar line after the first.
    notes = [(36, 100, b * bar_q) for b in range(3)] + [(38, 90, b * bar_q - 0.5) for b in (1, 2, 3)]
    got = read_midi(make_midi(notes, ts=ts), Grid(ts), DEFAULT)
    assert len(got.loops) == 3
    for loop in got.loops:
        assert hits(loop) == [(0, "kick", 100, 0.0), (steps - 12, "snare", 90, 0.0)]


def test_loops_of_two_bars(make_midi):
    # Four bars of 4/4: a kick on each downbeat, a snare on beat 2 of bars 2 and 4.
    notes = [(36, 100, 4.0 * b) for b in range(4)] + [(38, 90, 5.0), (38, 91, 13.0)]
    got = read_midi(make_midi(notes), Grid(bars=2), DEFAULT)
    assert [g.source for g in got.loops] == ["clip0.mid bar 1", "clip0.mid bar 3"]
    assert [hits(g) for g in got.loops] == [
        [(0, "kick", 100, 0.0), (96, "kick", 100, 0.0), (120, "snare", 90, 0.0)],
        [(0, "kick", 100, 0.0), (96, "kick", 100, 0.0), (120, "snare", 91, 0.0)],
    ]
    # A fifth bar does not make a loop of two: it is left out.
    five = read_midi(make_midi([*notes, (36, 100, 16.0)]), Grid(bars=2), DEFAULT)
    assert len(five.loops) == 2


def test_a_note_played_early_belongs_to_the_next_bar(make_midi):
    # 10 ticks (exactly half a step) before bar 2: step 0 of bar 2 at offset -1, not a step
    # late at +1; 3 ticks before bar 3: step 0 of bar 3 at offset -0.3.
    notes = [(36, 100, 0.0), (38, 90, 4.0 - 10 * TICK), (38, 91, 8.0 - 3 * TICK), (36, 100, 9.0)]
    got = read_midi(make_midi(notes), Grid(), DEFAULT)
    assert [hits(g) for g in got.loops] == [
        [(0, "kick", 100, 0.0)],
        [(0, "snare", 90, -1.0)],
        [(0, "snare", 91, -0.3), (24, "kick", 100, 0.0)],
    ]


def test_a_lone_downbeat_at_the_end_does_not_open_a_bar(make_midi):
    # The hit that ends a take, early, on time or late by under half a step, would make a bar
    # of one hit the file does not have: it is left out. Half a step late, it is a bar.
    body = [(36, 100, 0.0), (38, 90, 1.0), (38, 90, 3.0)]
    for end, bars in [(4.0 - 4 * TICK, 1), (4.0, 1), (4.0 + 9 * TICK, 1), (4.0 + 10 * TICK, 2), (4.0 + 0.5, 2)]:
        got = read_midi(make_midi([*body, (49, 110, end)]), Grid(), DEFAULT)
        assert len(got.loops) == bars, end
    assert hits(got.loops[1]) == [(12, "crash", 110, 0.0)]


def test_tempo_changes_do_not_move_notes(make_midi):
    notes = [(36, 100, 0.0), (42, 80, 0.5 + 3 * TICK), (38, 90, 1.0), (42, 80, 2.75), (36, 100, 4.0), (38, 90, 7.0)]
    steady = read_midi(make_midi(notes), Grid(), DEFAULT)
    changing = read_midi(make_midi(notes, tempo_changes=[(0.7, 61.0), (2.0, 190.0), (4.0 + 7 * TICK, 97.5)]),
                         Grid(), DEFAULT)
    expected = [[(0, "kick", 100, 0.0), (12, "closed hat", 80, 0.3), (24, "snare", 90, 0.0),
                 (66, "closed hat", 80, 0.0)],
                [(0, "kick", 100, 0.0), (72, "snare", 90, 0.0)]]
    assert [hits(g) for g in steady.loops] == expected
    assert [hits(g) for g in changing.loops] == expected


def test_two_hits_of_one_class_in_one_cell_keep_the_louder(make_midi):
    # 42 and 44 are both "closed hat"; 3 ticks apart, one step.
    soft_first = [(42, 60, 1.0), (44, 90, 1.0 + 3 * TICK), (38, 50, 1.0)]
    loud_first = [(42, 90, 1.0), (44, 60, 1.0 + 3 * TICK), (38, 50, 1.0)]
    a = read_midi(make_midi(soft_first), Grid(), DEFAULT).loops[0]
    b = read_midi(make_midi(loud_first), Grid(), DEFAULT).loops[0]
    assert hits(a) == [(24, "snare", 50, 0.0), (24, "closed hat", 90, 0.3)]  # the louder keeps its own offset
    assert hits(b) == [(24, "snare", 50, 0.0), (24, "closed hat", 90, 0.0)]


def test_a_clip_exported_on_channel_1_is_read_whole(make_midi):
    got = read_midi(make_midi([(36, 100, 0.0), (38, 90, 1.0)], channel=0), Grid(), DEFAULT)
    assert hits(got.loops[0]) == [(0, "kick", 100, 0.0), (24, "snare", 90, 0.0)]


def test_mixed_meters_read_the_bars_in_the_grids_meter(make_midi):
    # One bar of 4/4, then two of 3/4: a 3/4 model reads bars 2 and 3.
    notes = [(36, 100, 0.0), (38, 90, 4.0), (38, 91, 5.0), (36, 100, 7.0), (38, 92, 9.0)]
    got = read_midi(make_midi(notes, name="mixed.mid", time_signatures=[(0.0, (4, 4)), (4.0, (3, 4))]),
                    Grid((3, 4)), DEFAULT)
    assert (got.meters, got.bars_other_meter) == (["3/4", "4/4"], 1)
    assert [g.source for g in got.loops] == ["mixed.mid bar 2", "mixed.mid bar 3"]
    assert [hits(g) for g in got.loops] == [[(0, "snare", 90, 0.0), (24, "snare", 91, 0.0)],
                                            [(0, "kick", 100, 0.0), (48, "snare", 92, 0.0)]]


# ---------------------------------------------------------------------------- MIDI -> Groove -> MIDI

ROUND_TRIP = {
    # meter: [(note, velocity, quarter position)], microtimed up to half a step (10 ticks) either way
    (4, 4): [(36, 100, 0.0), (42, 80, 0.5 + 7 * TICK), (38, 112, 1.0 - 3 * TICK), (42, 64, 1.25 + 10 * TICK),
             (46, 71, 1.75 - 9 * TICK), (36, 99, 4.0 - 10 * TICK), (42, 1, 4.5), (38, 127, 5.0 + TICK),
             (49, 90, 6 + 1 / 3), (51, 55, 7.0 - 1 * TICK), (50, 77, 7.5 + 2 * TICK)],
    (3, 4): [(36, 100, 0.0 + 4 * TICK), (38, 90, 1.0), (42, 60, 2.0 - 10 * TICK), (36, 101, 3.0 - 6 * TICK),
             (38, 91, 5.0 + 8 * TICK)],
    (6, 8): [(36, 100, 0.0), (42, 50, 0.5 + 5 * TICK), (42, 51, 1.0 - 5 * TICK), (38, 96, 1.5 + 2 * TICK),
             (42, 52, 2.5), (36, 102, 3.0 - 10 * TICK), (47, 70, 4.5 + 9 * TICK), (43, 71, 5.5 - 8 * TICK)],
    (12, 8): [(36, 100, 0.0), (51, 60, 1 / 3 + 4 * TICK), (38, 110, 1.5 - 4 * TICK), (51, 61, 2 + 2 / 3),
              (36, 101, 4.5 + 10 * TICK), (53, 62, 5.5 - 7 * TICK),
              (36, 103, 6.0 + 3 * TICK), (51, 63, 11.0 - 5 * TICK)],
    (5, 4): [(36, 100, 0.0), (38, 90, 1.0 + 3 * TICK), (42, 70, 2.25 - 6 * TICK), (36, 100, 3.0),
             (38, 91, 4.0 - 2 * TICK), (36, 101, 5.0 - 10 * TICK), (45, 80, 9.75 + 5 * TICK)],
    (7, 8): [(36, 100, 0.0), (38, 90, 1.0 - 4 * TICK), (42, 70, 2.0 + 7 * TICK), (38, 92, 3.0),
             (36, 101, 3.5 - 10 * TICK), (42, 71, 4.5 + 10 * TICK), (38, 93, 6.5 - 1 * TICK)],
}


@pytest.mark.parametrize("bars", [1, 2])
@pytest.mark.parametrize("ts", list(ROUND_TRIP), ids=lambda ts: f"{ts[0]}-{ts[1]}")
def test_midi_groove_midi_round_trip(make_midi, tmp_path, ts, bars):
    notes = ROUND_TRIP[ts]
    grid = Grid(ts, bars=bars)
    src = make_midi(notes, ts=ts, name="src.mid")
    first = read_midi(src, grid, DEFAULT)
    out = write_midi(first.loops, tmp_path / "out.mid")
    second = read_midi(out, grid, DEFAULT)

    # Every onset back on its step, with its velocity and microtiming.
    assert [hits(g) for g in second.loops] == [hits(g) for g in first.loops]
    assert first.notes == len(notes) == sum(g.n_onsets for g in first.loops)
    # And in ticks: each note at most 1 tick and 1 velocity step away, on its class's out note.
    out_note = dict(zip(DEFAULT.names, DEFAULT.out_notes, strict=True))
    lookup = DEFAULT.lookup()
    want = sorted((round(q * 480), out_note[DEFAULT.names[lookup[n]]], v) for n, v, q in notes)
    got = note_ons(out)
    assert len(got) == len(want)
    for (t0, n0, v0), (t1, n1, v1) in zip(want, got, strict=True):
        assert n1 == n0 and abs(t1 - t0) <= 1 and abs(v1 - v0) <= 1, (t0, n0, v0, t1, n1, v1)


@pytest.mark.parametrize("tpq", [480, 96, 24])
def test_write_midi_keeps_offsets_near_the_cell_edge_on_their_step(tmp_path, tpq):
    # A decoder's offsets reach the edge of the cell (|offset| near 1 half step): written at
    # any resolution, each hit must read back on its own step, not the next one.
    grid = Grid((4, 4), bars=1)
    steps = [0, 5, 24, 37, 50, 71, 90]
    onsets, velocities, offsets = (np.zeros((len(DEFAULT.names), grid.steps), np.float32) for _ in range(3))
    onsets[0, steps] = 1
    velocities[0, steps] = 0.8
    offsets[0, steps] = [0.95, 0.99, -1.0, -0.96, 0.999, 0.5, -0.5]
    groove = Groove(onsets, velocities, offsets, grid, DEFAULT)
    back = read_midi(write_midi([groove], tmp_path / "edge.mid", ticks_per_quarter=tpq), grid, DEFAULT)
    assert [s for s, *_ in back.loops[0].hits()] == steps
