"""Drum maps: which MIDI notes make up each instrument class, and which note it plays back.

A Kit is a table, one row per class. Reading maps every listed note to its class; any other
note is *unmapped*: it is dropped and counted, so ingest can say how much it lost.
Writing plays each class on its ``out`` note (General MIDI by default).

Built-ins:
- ``default``: the 9 classes of Magenta's GrooVAE (kick, snare, closed hat, open hat, three
  toms, crash, ride) with both General MIDI notes and the Roland TD-11 notes the Groove MIDI
  Dataset was recorded with (22 and 26 are hi-hat edge hits, 58 the floor tom rim), so no
  hi-hat of that dataset is lost.
- ``rvae``: R-VAE / RhythmVAE's 9 classes and its loose note map, for comparable figures.
  Note that map puts crashes on "clap" and rides on "rim", as the original does.
- ``mpc``, ``mpk``, ``maschine``: one class per pad, for clips recorded on pads: which sound
  sits on a pad is the player's choice, so the model learns pads and plays the same pads back.
  ``mpc`` is the note layout of MPC DRUM programs (every MPC since the MPC60, and the default
  up to MPC software 2.10); ``mpk`` the chromatic layout from note 36 (MPC 2.11 and later, MPK
  and LPD pads); ``maschine`` Maschine's sound slots from its default root note C1 (36).
- ``battery``: General MIDI as ``default``, but with the open hi-hat on 44, where Native
  Instruments Battery's kits put it.

A user kit is a TOML or JSON file::

    name = "my kit"
    [[classes]]
    name = "kick"
    out = 36
    notes = [35, 36]
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvae.errors import UserError

__all__ = ["KITS", "DrumClass", "Kit", "load_kit"]


@dataclass(frozen=True)
class DrumClass:
    name: str
    out: int  # the note the generator writes
    notes: tuple[int, ...]  # the notes read as this class


@dataclass(frozen=True)
class Kit:
    name: str
    classes: tuple[DrumClass, ...]

    def __post_init__(self) -> None:
        seen: dict[int, int] = {}  # note -> index of its class (by index: two classes may share a name)
        if not self.classes:
            raise UserError(f"kit {self.name!r} has no classes")
        for i, c in enumerate(self.classes):
            for n in (*c.notes, c.out):
                if not 0 <= n <= 127:
                    raise UserError(f"kit {self.name!r}, class {c.name!r}: note {n} is outside 0..127")
            for n in c.notes:
                if seen.get(n, i) != i:
                    other = self.classes[seen[n]].name
                    raise UserError(f"kit {self.name!r}: note {n} is in both {other!r} and {c.name!r}")
                seen[n] = i

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def out_notes(self) -> list[int]:
        return [c.out for c in self.classes]

    def lookup(self) -> np.ndarray:
        """(128,) int array: MIDI note -> class index, -1 where unmapped."""
        table = np.full(128, -1, dtype=np.int64)
        for i, c in enumerate(self.classes):
            table[list(c.notes)] = i
        return table

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": [{"name": c.name, "out": c.out, "notes": list(c.notes)} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "kit") -> Kit:
        """A kit from its ``to_dict`` form (a kit file's contents); ``source`` is its name when
        the dict has none. Any key it does not know is an error: a typo like ``nots`` would
        otherwise drop a class's notes without a word."""
        if not isinstance(d, dict):
            raise UserError(f"a kit is a table with keys {', '.join(_KIT_KEYS)}, not a {type(d).__name__}")
        _check_keys(d, _KIT_KEYS, "the kit", required=("classes",))  # no name: the file's
        if not isinstance(d["classes"], list):
            raise UserError(f"'classes' must be a list of tables with keys {', '.join(_CLASS_KEYS)}")
        classes = []
        for i, c in enumerate(d["classes"], 1):
            if not isinstance(c, dict):
                raise UserError(f"class {i} must be a table with keys {', '.join(_CLASS_KEYS)}, not {c!r}")
            label = f"class {c['name']!r}" if isinstance(c.get("name"), str) else f"class {i}"
            _check_keys(c, _CLASS_KEYS, label)
            notes = c["notes"]
            if not isinstance(notes, list) or not all(_is_note(n) for n in notes):
                raise UserError(f"{label}: 'notes' must be a list of MIDI note numbers, not {notes!r}")
            if not _is_note(c["out"]):
                raise UserError(f"{label}: 'out' must be a MIDI note number, not {c['out']!r}")
            classes.append(DrumClass(str(c["name"]), int(c["out"]), tuple(int(n) for n in notes)))
        return cls(str(d.get("name", source)), tuple(classes))  # its own checks: ranges, shared notes


_KIT_KEYS = ("name", "classes")
_CLASS_KEYS = ("name", "out", "notes")  # DrumClass's fields


def _is_note(x: object) -> bool:
    # ints, and strings of digits as int() always read them; not bools, not floats like 36.5
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, str) and x.strip().isdecimal())


def _check_keys(d: dict, allowed: tuple[str, ...], label: str, required: tuple[str, ...] | None = None) -> None:
    """One sentence for the first thing wrong with a table's keys: unknown ones, then missing ones."""
    expected = ", ".join(allowed)
    unknown = [k for k in d if k not in allowed]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise UserError(f"{label} has unknown key{s} {', '.join(map(repr, unknown))} (expected {expected})")
    missing = [k for k in (allowed if required is None else required) if k not in d]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise UserError(f"{label} is missing key{s} {', '.join(map(repr, missing))} (expected {expected})")


def _kit(name: str, rows: list[tuple[str, int, list[int]]]) -> Kit:
    return Kit(name, tuple(DrumClass(n, out, tuple(notes)) for n, out, notes in rows))


KITS: dict[str, Kit] = {
    "default": _kit(
        "default",
        [
            # name          out  notes read (GM, plus TD-11 edge/rim notes)
            ("kick", 36, [35, 36]),
            ("snare", 38, [37, 38, 39, 40]),  # side stick and clap count as snare
            ("closed hat", 42, [22, 42, 44]),  # 22 = TD-11 closed-hat edge, 44 = pedal
            ("open hat", 46, [26, 46]),  # 26 = TD-11 open-hat edge
            ("low tom", 43, [41, 43, 58]),  # 58 = TD-11 floor-tom rim
            ("mid tom", 47, [45, 47]),
            ("high tom", 50, [48, 50]),
            ("crash", 49, [49, 52, 55, 57]),
            ("ride", 51, [51, 53, 59]),
        ],
    ),
    "rvae": _kit(
        "rvae",
        [
            ("kick", 36, [35, 36]),
            ("snare", 38, [27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85]),
            ("closed hat", 42, [42, 44, 54, 68, 69, 70, 71, 73, 78, 80]),
            ("open hat", 46, [46, 67, 72, 74, 79, 81]),
            ("low tom", 45, [29, 41, 45, 61, 64, 84]),
            ("mid tom", 47, [47, 48, 60, 63, 77, 86, 87]),
            ("high tom", 50, [30, 43, 50, 62, 76, 83]),
            ("clap", 39, [49, 55, 57, 58]),
            ("rim", 37, [51, 52, 53, 59, 82]),
        ],
    ),
}


# MPC DRUM programs, pads A01-A16 (bank A). Sources: the MPC Studio Mk2 surface definition in
# bcrowe306/FLStudio_MPC_Studio_Mk2_Script (mpc_studio_mk2/surface_def.py, PAD_0-PAD_15), and
# MPC-Tutor, "Re-Mapping MIDI Notes on MPC Drum Kits" (same layout on every MPC since the
# MPC60, the default for new DRUM programs until MPC 2.11, and in the factory libraries).
MPC_PADS = (37, 36, 42, 82, 40, 38, 46, 44, 48, 47, 45, 43, 49, 55, 51, 53)
# Pads from note 36 up: MPC 2.11's new default "Chromatic C1" (same MPC-Tutor page); Akai
# MPK/LPD pads send 36-43 on bank A and 44-51 on bank B (LPD8 factory program 1, in
# longears/pixelslinger midi-notes.txt); Maschine maps sound slot 1 to its group's root note,
# C1 = 36 by default, slot 2 to 37 and so on (Maschine manual, "MIDI to Group - import rules").
CHROMATIC_PADS = tuple(range(36, 52))

KITS["mpc"] = _kit("mpc", [(f"A{i + 1:02d}", n, [n]) for i, n in enumerate(MPC_PADS)])
KITS["mpk"] = _kit("mpk", [(f"pad {i + 1}", n, [n]) for i, n in enumerate(CHROMATIC_PADS)])
KITS["maschine"] = _kit("maschine", [(f"slot {i + 1}", n, [n]) for i, n in enumerate(CHROMATIC_PADS)])
# Battery "mostly matches General MIDI, except for placing the Open Hi-Hat sound on the Pedal
# Hi-Hat note" (README of a drum-capture tool whose gm2 scheme targets Battery); the rest is
# ``default``'s General MIDI.
KITS["battery"] = _kit(
    "battery",
    [
        ("kick", 36, [35, 36]),
        ("snare", 38, [37, 38, 39, 40]),
        ("closed hat", 42, [42]),
        ("open hat", 44, [44, 46]),  # 44: Battery's open hat
        ("low tom", 43, [41, 43]),
        ("mid tom", 47, [45, 47]),
        ("high tom", 50, [48, 50]),
        ("crash", 49, [49, 52, 55, 57]),
        ("ride", 51, [51, 53, 59]),
    ],
)


def load_kit(name_or_path: str | Path) -> Kit:
    """A built-in kit by name, or a user kit from a .toml or .json file."""
    if str(name_or_path) in KITS:
        return KITS[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise UserError(f"kit {str(name_or_path)!r} is neither a built-in ({', '.join(KITS)}) nor a file")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"kit file {path}: cannot be read ({e})") from None
    try:
        return Kit.from_dict(data, source=path.stem)
    except UserError as e:  # name the file: from_dict and Kit's own checks do not know it
        raise UserError(f"kit file {path}: {e}") from None
