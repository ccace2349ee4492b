"""Ingest: folders of MIDI files -> loops on one grid, and a report of every file left out.

Inputs are MIDI files written inline into tmp_path (positions in quarter notes, 480 ticks per
quarter), plus bad files made from their bytes; one test reads the shared Groove subset.
"""

from __future__ import annotations

import csv
import os

import mido
from conftest import GROOVE, needs

from rvae.cli import main
from rvae.dataset import DataConfig, find_midi_files, load_dataset, load_loops

# A bar of 4/4 rock: 8 hats, kick on 1 and 3, snare on 2 and 4 (12 hits).
ROCK = [(42, 80, i / 2) for i in range(8)] + [(36, 100, 0.0), (36, 100, 2.0), (38, 110, 1.0), (38, 110, 3.0)]
# A bar of 6/8: six 8th-note hats, kick on 1, snare on 4 (8 hits).
SIX_EIGHT = [(42, 80, i / 2) for i in range(6)] + [(36, 100, 0.0), (38, 110, 1.5)]


def bar(notes, n: int, quarters: float = 4.0):
    """``notes`` moved to bar ``n`` (from 0) of bars ``quarters`` long."""
    return [(note, vel, q + n * quarters) for note, vel, q in notes]


def reasons(ds) -> dict[str, str]:
    """{file name: reason} of the skipped files."""
    return {os.path.basename(path): reason for path, reason in ds.skipped}


# ---------------------------------------------------------------------------- finding files

def test_folders_are_searched_recursively_for_mid_and_midi_in_any_case(tmp_path, make_midi):
    made = [make_midi(ROCK, name=n) for n in ("a.mid", "sub/deeper/b.MID", "sub/c.Midi", "sub/d.midi", "e.mId")]
    (tmp_path / "notes.txt").write_text("not MIDI")
    (tmp_path / "sub" / "f.mid.bak").write_bytes(made[0].read_bytes())
    files, problems = find_midi_files([tmp_path])
    assert files == [tmp_path / "a.mid", tmp_path / "e.mId", tmp_path / "sub/c.Midi", tmp_path / "sub/d.midi",
                     tmp_path / "sub/deeper/b.MID"]
    assert problems == []
    ds = load_dataset([tmp_path])
    assert (len(ds.files), len(ds.loops), ds.skipped) == (5, 5, [])


def test_paths_that_give_no_files_are_reported(tmp_path, make_midi):
    (tmp_path / "empty_dir").mkdir()
    named = make_midi(ROCK, name="clip.bin")  # named explicitly: read whatever its suffix
    files, problems = find_midi_files([tmp_path / "empty_dir", tmp_path / "nowhere", named])
    assert files == [named]
    assert problems == [(str(tmp_path / "empty_dir"), "holds no .mid or .midi files"),
                        (str(tmp_path / "nowhere"), "does not exist")]


# ---------------------------------------------------------------------------- bad input

def test_each_bad_file_is_skipped_once_with_its_reason_and_the_good_ones_are_read(tmp_path, make_midi):
    data = tmp_path / "data"
    good = make_midi(bar(ROCK, 0) + bar(ROCK, 1) + [(60, 90, 2.5)], name="data/good.mid")  # one unmapped note
    make_midi(ROCK, name="data/more/GOOD2.MID")
    raw = good.read_bytes()
    (data / "truncated.mid").write_bytes(raw[:60])
    (data / "corrupt.mid").write_bytes(raw[:22] + bytes(range(200, 256)) * 3)
    (data / "empty.mid").write_bytes(b"")
    (data / "text.mid").write_text("MIDI files are made of bytes, not text\n")
    make_midi([(60, 100, 0.0), (61, 100, 1.0), (62, 100, 2.0)], name="data/unmapped.mid")
    make_midi([], end=4.0, name="data/no_notes.mid")
    mido.MidiFile(type=1, ticks_per_beat=480).save(data / "zero_bars.mid")  # a header and no track at all
    (data / "broken.mid").symlink_to(data / "gone.mid")
    make_midi([(36, 100, 0.0), (38, 100, 1.0)], name="data/sparse.mid")
    make_midi(bar(ROCK[:10], 0, 3.0), ts=(3, 4), name="data/waltz.mid")
    missing = tmp_path / "missing.mid"

    ds = load_dataset([data, missing], DataConfig(time_signature="4/4"))

    assert [p.name for p in ds.files] == ["good.mid", "GOOD2.MID"]
    # Notes are counted in every file read, the sparse one too (2 notes).
    assert (len(ds.loops), ds.notes, ds.unmapped) == (3, 3 * len(ROCK) + 1 + 2, 1)
    assert sorted(p for p, _ in ds.skipped) == sorted({p for p, _ in ds.skipped})  # one entry per file
    got = reasons(ds)
    assert set(got) == {"missing.mid", "truncated.mid", "corrupt.mid", "empty.mid", "text.mid", "unmapped.mid",
                        "no_notes.mid", "zero_bars.mid", "broken.mid", "sparse.mid", "waltz.mid"}
    expect = {
        "missing.mid": "does not exist",
        "truncated.mid": "is corrupt or truncated (",
        "corrupt.mid": "is corrupt or truncated (",
        "empty.mid": "is empty",
        "text.mid": "is not a MIDI file",
        "unmapped.mid": "has no drum notes that kit 'default' reads (3 notes, none mapped)",
        "no_notes.mid": "has no notes",
        "zero_bars.mid": "has no notes",
        "broken.mid": "cannot be read (No such file or directory)",
        "sparse.mid": "has no loop with at least 5 onsets",
        "waltz.mid": "is in 3/4, not the model's 4/4",
    }
    for name, reason in expect.items():
        assert got[name].startswith(reason), (name, got[name])

    lines = ds.summary().splitlines()
    assert lines[1].startswith("files read: 2, skipped: 11 (")
    for part in ("2 are corrupt or truncated", "2 have no notes", "1 is empty", "1 is not a MIDI file",
                 "1 cannot be read", "1 does not exist", "1 has no drum notes", "1 has no loop with at least 5 onsets",
                 "1 is in 3/4, not the model's 4/4"):
        assert part in lines[1], part
    assert lines[2] == "loops kept: 3, dropped with fewer than the minimum onsets: 1"
    assert lines[3] == "notes: 39, unmapped by the kit: 1 (2.6%)"


def test_a_file_in_another_meter_names_both(make_midi, tmp_path):
    make_midi(bar(SIX_EIGHT, 0, 3.0) + bar(SIX_EIGHT, 1, 3.0), ts=(6, 8), name="six.mid")
    make_midi(ROCK, name="four.mid")
    ds = load_dataset([tmp_path], DataConfig(time_signature="4/4"))
    assert reasons(ds) == {"six.mid": "is in 6/8, not the model's 4/4 (--force-meter reads it as 4/4)"}


def test_the_meter_is_the_one_most_bars_are_in(make_midi, tmp_path):
    make_midi(SIX_EIGHT, ts=(6, 8), name="a.mid")
    make_midi(bar(SIX_EIGHT, 0, 3.0) + bar(SIX_EIGHT, 1, 3.0), ts=(6, 8), name="b.mid")
    make_midi(ROCK, ts=(4, 4), name="c.mid")
    make_midi(SIX_EIGHT, ts=None, name="d.mid")  # states no meter: no vote, read in the majority's
    ds = load_dataset([tmp_path])
    assert (ds.grid.meter, ds.grid.steps, ds.meter_note) == ("6/8", 72, "the meter of most bars, 3 of 4")
    assert [p.name for p in ds.files] == ["a.mid", "b.mid", "d.mid"]
    assert reasons(ds) == {"c.mid": "is in 4/4, not the model's 6/8 (--force-meter reads it as 6/8)"}
    assert [g.source for g in ds.loops] == ["a.mid bar 1", "b.mid bar 1", "b.mid bar 2", "d.mid bar 1"]


def test_the_meter_vote_reads_the_event_that_reading_uses(make_midi, tmp_path):
    # Some exporters write a default 4/4 and then the real meter, both at tick 0: the last wins.
    for name in ("a.mid", "b.mid"):
        make_midi(SIX_EIGHT, name=name, time_signatures=[(0.0, (4, 4)), (0.0, (6, 8))])
    make_midi(ROCK, name="c.mid")
    ds = load_dataset([tmp_path])
    assert ds.grid.meter == "6/8"
    assert [p.name for p in ds.files] == ["a.mid", "b.mid"]


def test_no_stated_meter_anywhere_is_4_4(make_midi, tmp_path):
    make_midi(ROCK, ts=None)
    ds = load_dataset([tmp_path])
    assert (ds.grid.meter, ds.meter_note, len(ds.loops)) == ("4/4", "no file states a meter: 4/4", 1)


def test_force_meter_reads_any_file_in_the_models_meter(make_midi, tmp_path):
    # Three bars of 7/8 (3.5 quarters) with a kick on each downbeat, read as 4/4: 10.5 quarters,
    # three bars of 4/4 (the last one partly empty).
    notes = [(36, 100, 3.5 * b) for b in range(3)] + [(42, 80, q) for q in (1.0, 2.0, 3.0, 4.5, 5.5, 6.0, 8.0, 9.0)]
    make_midi(notes, ts=(7, 8))
    plain = load_dataset([tmp_path], DataConfig(time_signature="4/4", min_onsets=1))
    assert not plain.loops
    ds = load_dataset([tmp_path], DataConfig(time_signature="4/4", force_meter=True, min_onsets=1))
    assert ds.skipped == []
    assert [[(s, i) for s, i, _, _ in g.hits()] for g in ds.loops] == [
        [(0, 0), (24, 2), (48, 2), (72, 2), (84, 0)],
        [(12, 2), (36, 2), (48, 2), (72, 0)],
        [(0, 2), (24, 2)],
    ]


def test_a_file_without_a_time_signature_is_read_in_the_models_meter(make_midi, tmp_path):
    notes = [(36, 100, 0.0), (38, 90, 1.0), (42, 70, 2.0), (38, 91, 3.0), (36, 100, 3.5), (38, 92, 4.5)]
    make_midi(notes, ts=None)
    ds = load_dataset([tmp_path], DataConfig(time_signature="7/8", min_onsets=1))
    assert [[(s, i, v) for s, i, v, _ in g.hits()] for g in ds.loops] == [
        [(0, 0, 100), (24, 1, 90), (48, 2, 70), (72, 1, 91)],
        [(0, 0, 100), (24, 1, 92)],
    ]


def test_a_loop_of_two_bars_needs_two_bars(make_midi, tmp_path):
    make_midi(ROCK, name="one.mid")
    make_midi(bar(ROCK, 0) + bar(ROCK, 1) + bar(ROCK, 2), name="three.mid")
    ds = load_dataset([tmp_path], DataConfig(bars=2))
    assert [g.source for g in ds.loops] == ["three.mid bar 1"]
    assert ds.loops[0].onsets.shape == (9, 192)
    assert reasons(ds) == {"one.mid": "has no 2 bars of 4/4 in a row to make a loop"}


# ---------------------------------------------------------------------------- small-data handling

def test_sparse_loops_are_dropped_and_counted(make_midi, tmp_path):
    kicks = [(36, 100, q) for q in (0.0, 1.0)]
    make_midi(bar(ROCK, 0) + bar(kicks, 1) + bar(ROCK[:5], 2))  # 12 hits, 2 hits, 5 hits
    ds = load_dataset([tmp_path], DataConfig(min_onsets=5))
    assert [g.source for g in ds.loops] == ["clip0.mid bar 1", "clip0.mid bar 3"]
    assert ds.sparse_loops == 1
    assert "loops kept: 2, dropped with fewer than the minimum onsets: 1" in ds.summary().splitlines()
    assert len(load_dataset([tmp_path], DataConfig(min_onsets=6)).loops) == 1
    assert len(load_dataset([tmp_path], DataConfig(min_onsets=1)).loops) == 3


def test_loops_on_a_models_grid_are_dropped_as_training_drops_them(make_midi, tmp_path):
    # What `rvae eval` and experiments score: the training filter, never duplicated.
    kicks = [(36, 100, q) for q in (0.0, 1.0)]
    make_midi(bar(ROCK, 0) + bar(kicks, 1) + bar(ROCK[:5], 2))  # 12 hits, 2 hits, 5 hits
    make_midi(bar(kicks, 0), name="sparse.mid")
    training = load_dataset([tmp_path], DataConfig(min_onsets=5))
    ds = load_loops([tmp_path], training.grid, training.kit, min_onsets=5)
    assert [g.source for g in ds.loops] == [g.source for g in training.loops] == ["clip0.mid bar 1", "clip0.mid bar 3"]
    assert ds.sparse_loops == training.sparse_loops == 2 and ds.copies == 1
    assert reasons(ds) == reasons(training) == {"sparse.mid": "has no loop with at least 5 onsets"}
    assert len(load_loops([tmp_path], training.grid, training.kit, min_onsets=2).loops) == 4


def test_a_small_set_is_duplicated_and_says_so(make_midi, tmp_path):
    make_midi(bar(ROCK, 0) + bar(ROCK, 1) + bar(ROCK, 2))
    ds = load_dataset([tmp_path], DataConfig(min_loops=64))
    assert (len(ds.loops), ds.copies) == (3, 22)  # 66 >= 64
    assert ds.summary().splitlines()[-1] == "small set: duplicated 3 loops x22 = 66"
    assert ds.to_dict()["copies"] == 22
    enough = load_dataset([tmp_path], DataConfig(min_loops=3))
    assert enough.copies == 1
    assert "duplicated" not in enough.summary()


# ---------------------------------------------------------------------------- the CLI when nothing is left

def test_train_with_nothing_usable_exits_2_with_one_sentence(tmp_path, make_midi, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "text.mid").write_text("hello")
    make_midi([(36, 100, 0.0)], name="data/sparse.mid")
    out = tmp_path / "model.pt"
    assert main(["train", str(tmp_path / "data"), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"rvae train: no usable loops in {tmp_path / 'data'}: every file was skipped or too sparse"
    assert not out.exists()


def test_train_on_a_path_that_does_not_exist_exits_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err == f"rvae train: no MIDI files to train on: {tmp_path / 'nowhere'} does not exist\n"


# ---------------------------------------------------------------------------- real data

@needs(GROOVE)
def test_the_groove_subset_ingests_whole():
    ds = load_dataset([GROOVE])
    with open(GROOVE / "info.csv", newline="") as f:
        other_meter = {str(GROOVE / r["midi_filename"]) for r in csv.DictReader(f) if r["time_signature"] != "4-4"}
    assert ds.grid.meter == "4/4"
    assert len(ds.files) > 900
    assert ds.unmapped == 0 and ds.notes > 300_000
    skipped_by_meter = {path for path, reason in ds.skipped if ", not the model's 4/4" in reason}
    assert skipped_by_meter == other_meter
    assert {os.path.basename(p).rsplit("_", 1)[-1] for p in other_meter} == {"3-4.mid", "5-4.mid", "5-8.mid"}
    # Whatever else is left out is left out for being too sparse, never unreadable.
    assert {reason for path, reason in ds.skipped if path not in other_meter} <= {"has no loop with at least 5 onsets"}

