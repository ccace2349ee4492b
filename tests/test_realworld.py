"""Reading what producers actually have: note-ons without note-offs, meters that change, layered
hits, a bad message, the last downbeat, pad layouts, files that are not drums.

Each case on MIDI files written here (mido, or raw bytes where mido refuses to write them), then
the shared real-world files (../shared/data/realworld, MIT) where present: counts against mido,
meters, and the lines said.
"""

from __future__ import annotations

import os

import mido
import pytest
from conftest import SHARED

from rvae.cli import main
from rvae.dataset import DataConfig, load_dataset
from rvae.errors import UserError
from rvae.grid import Grid
from rvae.kit import KITS
from rvae.midi_io import file_meter, meter_bars, parse_midi, read_midi

TPQ = 480
REALWORLD = SHARED / "realworld"
DEFAULT = KITS["default"]


def smf(path, events, tpq=TPQ, end=None):
    """events: [(quarter position, mido message)] -> a type-0 file at ``path``; ``end``: the
    end-of-track in quarters (default: at the last event)."""
    track, now = mido.MidiTrack(), 0
    for q, msg in sorted(events, key=lambda e: e[0]):
        t = round(q * tpq)
        track.append(msg.copy(time=t - now))
        now = t
    track.append(mido.MetaMessage("end_of_track", time=max(0, round((end or 0) * tpq) - now)))
    path.parent.mkdir(parents=True, exist_ok=True)
    mido.MidiFile(type=0, ticks_per_beat=tpq, tracks=[track]).save(path)
    return path


def on(note, q, vel=100, channel=9):
    return (q, mido.Message("note_on", channel=channel, note=note, velocity=vel))


def off(note, q, channel=9):
    return (q, mido.Message("note_off", channel=channel, note=note))


def ts(q, num, den):
    return (q, mido.MetaMessage("time_signature", numerator=num, denominator=den))


def mido_note_ons(path, channel=None, clip=False) -> int:
    return sum(
        1
        for msg in mido.merge_tracks(mido.MidiFile(path, clip=clip).tracks)
        if msg.type == "note_on" and msg.velocity > 0 and (channel is None or msg.channel == channel)
    )


def hits(groove):
    return [(s, groove.kit.names[i], v, round(o, 2)) for s, i, v, o in groove.hits()]


# ---------------------------------------------------------------------------- note-ons without note-offs


def test_every_note_on_is_a_hit_with_or_without_a_note_off(tmp_path):
    # Two bars of a drum machine that writes no note-offs at all.
    rock = [on(36, 0.0), on(42, 0.0, 80), on(42, 1.0, 80), on(38, 1.0, 110), on(42, 2.0, 80), on(36, 2.5)]
    path = smf(tmp_path / "no_offs.mid", [*rock, *[(q + 4, m) for q, m in rock]], end=8.0)
    got = read_midi(path, Grid(), DEFAULT)
    assert got.notes == mido_note_ons(path) == 12
    assert [hits(g) for g in got.loops] == [
        [
            (0, "kick", 100, 0.0),
            (0, "closed hat", 80, 0.0),
            (24, "snare", 110, 0.0),
            (24, "closed hat", 80, 0.0),
            (48, "closed hat", 80, 0.0),
            (60, "kick", 100, 0.0),
        ],
    ] * 2


def test_zero_length_and_overlapping_notes_are_each_a_hit(tmp_path):
    # A note-off at its note-on's own tick, and two note-ons of one note before one note-off.
    events = [on(36, 0.0), off(36, 0.0), on(36, 1.0), off(36, 1.0), on(38, 2.0), on(38, 3.0), off(38, 3.5)]
    path = smf(tmp_path / "odd.mid", events, end=4.0)
    got = read_midi(path, Grid(), DEFAULT)
    assert got.notes == mido_note_ons(path) == 4
    assert [(s, n) for s, n, _, _ in hits(got.loops[0])] == [(0, "kick"), (24, "kick"), (48, "snare"), (72, "snare")]


# ---------------------------------------------------------------------------- meters


def test_a_pickup_bar_does_not_make_the_files_meter(tmp_path):
    # One bar of 1/4 with one hit, then four bars of 4/4: the file is 4/4, and the pickup said.
    events = [ts(0.0, 1, 4), on(49, 0.0), ts(1.0, 4, 4)]
    events += [on(n, 1.0 + 4 * b + q) for b in range(4) for n, q in ((36, 0.0), (38, 1.0), (36, 2.0), (38, 3.0))]
    path = smf(tmp_path / "pickup.mid", events, end=17.0)
    assert meter_bars(parse_midi(path)) == {"4/4": [4, 16], "1/4": [1, 1]}
    assert file_meter(path) == "4/4"
    ds = load_dataset([tmp_path], DataConfig(min_onsets=1))
    assert (ds.grid.meter, ds.meter_note, len(ds.loops)) == ("4/4", "the meter of most bars, 4 of 5", 4)
    assert [g.source for g in ds.loops] == [f"pickup.mid bar {b}" for b in (2, 3, 4, 5)]
    assert ds.lines() == [f"{path}: left out 1 bar of 1/4 (1 hit): not the model's 4/4"]


def test_a_files_meter_is_weighted_by_hits_and_a_folders_by_bars(tmp_path):
    # waltz.mid: 2 busy bars of 3/4, then 3 bars of 4/4 with a hit each; two one-bar 4/4 clips.
    waltz = [ts(0.0, 3, 4), ts(6.0, 4, 4)] + [on(42, q / 2) for q in range(12)]
    waltz += [on(36, 6.0 + 4 * b) for b in range(3)]
    smf(tmp_path / "waltz.mid", waltz, end=18.0)
    for name in ("a.mid", "b.mid"):
        smf(tmp_path / name, [ts(0.0, 4, 4)] + [on(42, q / 2) for q in range(8)], end=4.0)
    assert file_meter(tmp_path / "waltz.mid") == "3/4"  # 12 hits in 3/4, 3 in 4/4
    ds = load_dataset([tmp_path], DataConfig(min_onsets=1))
    assert (ds.grid.meter, ds.meter_note) == ("4/4", "the meter of most bars, 5 of 7")  # by files it would be too
    assert ds.lines() == [f"{tmp_path / 'waltz.mid'}: left out 2 bars of 3/4 (12 hits): not the model's 4/4"]


def test_bars_in_other_meters_are_said_and_counted(tmp_path):
    # 2 bars of 4/4, 2 of 7/8, 1 of 4/4: a 4/4 model keeps bars 1, 2 and 5.
    events = [ts(0.0, 4, 4), ts(8.0, 7, 8), ts(15.0, 4, 4)]
    events += [on(36, 4.0 * b) for b in range(2)] + [on(42, 4.0 * b + 2) for b in range(2)]
    events += [on(36, 8.0), on(38, 9.0), on(42, 10.0), on(36, 11.5), on(38, 12.5), on(36, 15.0), on(38, 17.0)]
    path = smf(tmp_path / "odd.mid", events, end=19.0)
    ds = load_dataset([path], DataConfig(time_signature="4/4", min_onsets=1))
    assert [g.source for g in ds.loops] == ["odd.mid bar 1", "odd.mid bar 2", "odd.mid bar 5"]
    assert ds.lines() == [f"{path}: left out 2 bars of 7/8 (5 hits): not the model's 4/4"]
    assert "bars in other meters left out: 2 of 7/8 (5 hits) in 1 file" in ds.summary().splitlines()
    assert (ds.to_dict()["bars_other_meter"], ds.to_dict()["hits_other_meter"]) == (2, 5)


# ---------------------------------------------------------------------------- layered hits


def test_layered_hits_keep_the_louder_and_are_counted(tmp_path):
    # Crash 49 + 57 struck together; snare 38, clap 39 and rim 40 on one step: 3 merged.
    events = [on(49, 0.0, 90), on(57, 0.0, 110), on(38, 1.0, 100), on(39, 1.0, 70), on(40, 1.0 + 3 / TPQ, 120)]
    events += [on(36, 0.0), on(42, 2.0)]
    path = smf(tmp_path / "layers.mid", events, end=4.0)
    got = read_midi(path, Grid(), DEFAULT)
    assert got.merged == 3
    assert hits(got.loops[0]) == [
        (0, "kick", 100, 0.0),
        (0, "crash", 110, 0.0),
        (24, "snare", 120, 0.3),
        (48, "closed hat", 100, 0.0),
    ]
    ds = load_dataset([path])
    assert (
        ds.summary().splitlines()[3]
        == "notes: 7, unmapped by the kit: 0 (0.0%), layered: 3 merged into a louder hit of their class"
    )
    # A kit that gives the clap a class of its own merges one fewer.
    kit = tmp_path / "clap.toml"
    kit.write_text(
        "\n".join(
            f'[[classes]]\nname = "{n}"\nout = {o}\nnotes = {ns}'
            for n, o, ns in [
                ("kick", 36, [36]),
                ("snare", 38, [38, 40]),
                ("clap", 39, [39]),
                ("hat", 42, [42]),
                ("crash", 49, [49, 57]),
            ]
        )
    )
    assert load_dataset([path], DataConfig(kit=str(kit))).merged == 2


# ---------------------------------------------------------------------------- a bad message


def raw_smf(path, *events: bytes, tpq=TPQ):
    """A type-0 file from raw event bytes (delta time included), which may break the rules."""
    body = b"".join(events) + b"\x00\xff\x2f\x00"
    path.write_bytes(
        b"MThd"
        + (6).to_bytes(4, "big")
        + (0).to_bytes(2, "big")
        + (1).to_bytes(2, "big")
        + tpq.to_bytes(2, "big")
        + b"MTrk"
        + len(body).to_bytes(4, "big")
        + body
    )
    return path


def test_a_bad_message_is_skipped_and_said_not_the_whole_file(tmp_path):
    quarter = bytes([0x83, 0x60])  # 480 ticks as a variable-length quantity
    events = [b"\x00\xff\x58\x04\x04\x02\x18\x08", b"\x00\x99\x24\x64", b"\x00\xb9\x07\xa8"]  # CC 7 = 168
    events += [quarter + b"\x99\x26\x64", b"\x00\xf4", quarter + b"\x99\x24\x64", quarter + b"\x99\x26\x64"]
    path = raw_smf(tmp_path / "bad.mid", *events)
    with pytest.raises(OSError, match="undefined status byte 0xf4"):  # mido refuses the whole file
        mido.MidiFile(path, clip=True)
    notes = parse_midi(path)
    assert dict(notes.bad) == {"a data byte above 127": 1, "an undefined status byte 0xF4": 1}
    assert len(notes.tick) == 4
    ds = load_dataset([path], DataConfig(min_onsets=1))
    assert [hits(g) for g in ds.loops] == [
        [(0, "kick", 100, 0.0), (24, "snare", 100, 0.0), (48, "kick", 100, 0.0), (72, "snare", 100, 0.0)]
    ]
    assert ds.lines() == [
        f"{path}: skipped 2 malformed messages (a data byte above 127, an undefined status byte 0xF4) and read the rest"
    ]
    assert "malformed messages skipped: 2 in 1 file" in ds.summary().splitlines()


def test_a_file_cut_short_is_still_skipped_whole(tmp_path):
    path = raw_smf(tmp_path / "cut.mid", b"\x00\x99\x24\x64", b"\x00\x99\x26\x64")
    path.write_bytes(path.read_bytes()[:-6])
    ds = load_dataset([path])
    assert ds.skipped == [(str(path), "is corrupt or truncated (track 1 is cut short)")]


# ---------------------------------------------------------------------------- the last downbeat


@pytest.mark.parametrize(
    ("q", "end", "bars"),
    [
        (4.0, 8.0, 2),  # a 2-bar clip with a kick on bar 2's downbeat: the file's end says 2 bars
        (4.0 - 3 / TPQ, 8.0, 2),  # the same kick a hair early
        (4.0, 9.0, 2),  # an end past bar 2 opens bar 2, no more
        (4.0, 8.0 - 1 / TPQ, 1),  # an end short of bar 2's end: the downbeat ends the take
        (4.0, 4.25, 1),
    ],
)
def test_the_last_downbeat_opens_a_bar_when_the_end_of_track_says_so(tmp_path, q, end, bars):
    events = [on(36, 0.0), on(38, 1.0), on(36, 2.0), on(38, 3.0), on(36, q), off(36, q + 0.1)]
    got = read_midi(smf(tmp_path / "clip.mid", events, end=end), Grid(), DEFAULT)
    assert len(got.loops) == bars
    if bars == 2:
        assert hits(got.loops[1]) == [(0, "kick", 100, round(2 * 24 * (q - 4.0), 2))]


# ---------------------------------------------------------------------------- drum maps users meet


def test_pad_kits_read_pads_and_play_them_back(tmp_path):
    # An MPC DRUM program with the kick on A01 (note 37) and the snare on A02 (36), on channel 1.
    path = smf(tmp_path / "mpc.mid", [on(37, 0.0, channel=0), on(36, 1.0, channel=0), on(82, 1.5, channel=0)], end=4.0)
    got = read_midi(path, Grid(), KITS["mpc"])
    assert hits(got.loops[0]) == [(0, "A01", 100, 0.0), (24, "A02", 100, 0.0), (36, "A04", 100, 0.0)]
    assert [KITS["mpc"].out_notes[i] for _, i, _, _ in got.loops[0].hits()] == [37, 36, 82]
    chromatic = smf(tmp_path / "mpk.mid", [on(36, 0.0, channel=0), on(51, 1.0, channel=0)], end=4.0)
    assert hits(read_midi(chromatic, Grid(), KITS["maschine"]).loops[0]) == [
        (0, "slot 1", 100, 0.0),
        (24, "slot 16", 100, 0.0),
    ]


def test_a_folder_mostly_off_channel_10_and_off_the_kit_warns_that_the_map_may_be_wrong(tmp_path):
    # Clips from a sampler laid out from C3 (60 up), on channel 1: the default kit maps none.
    for i in range(3):
        smf(
            tmp_path / f"c{i}.mid",
            [on(60 + (k % 4), k / 2, channel=0) for k in range(8)] + [on(36, 0.0, channel=0)],
            end=4.0,
        )
    ds = load_dataset([tmp_path])
    assert ds.summary().splitlines()[-1] == (
        "warning: most notes are off channel 10 and kit 'default' maps only 11% of them: the drum map may be wrong "
        "(--kit default, rvae, mpc, mpk, maschine, battery, or a kit file)"
    )
    assert "warning" in load_dataset([tmp_path], DataConfig(kit="mpk", all_channels=True)).summary()  # 36-51
    # With a kit that fits, or on channel 10, no warning.
    kit = tmp_path / "sampler.json"
    kit.write_text('{"classes": [{"name": "pad", "out": 60, "notes": [36, 60, 61, 62, 63]}]}')
    assert "warning" not in load_dataset([tmp_path], DataConfig(kit=str(kit))).summary()
    chan10 = tmp_path / "ch10"
    smf(chan10 / "a.mid", [on(60 + (k % 4), k / 2) for k in range(8)] + [on(36, 0.0)], end=4.0)
    assert "warning" not in load_dataset([chan10]).summary()


# ---------------------------------------------------------------------------- not drums


def test_a_file_with_no_channel_10_that_is_not_drums_is_said_and_skipped(tmp_path):
    piano = [
        on(60, 0.0, channel=0),
        on(64, 1.0, channel=0),
        on(67, 2.0, channel=0),
        on(36, 0.0, channel=0),
        on(38, 1.0, channel=0),
        on(42, 3.0, channel=0),
    ]
    piano += [on(72, 3.0, channel=1), on(76, 3.5, channel=1), on(79, 3.75, channel=1)]  # 6 of 9 unmapped
    path = smf(tmp_path / "piano.mid", piano, end=4.0)
    ds = load_dataset([path], DataConfig(min_onsets=1))
    assert ds.skipped == [
        (str(path), "has no channel 10, and most notes are unmapped (67%: not drums? --all-channels reads it)")
    ]
    ds = load_dataset([path], DataConfig(min_onsets=1, all_channels=True))
    assert ds.lines() == [f"{path}: no channel 10; read all channels: 67% of notes unmapped, not drums?"]
    assert hits(ds.loops[0]) == [(0, "kick", 100, 0.0), (24, "snare", 100, 0.0), (72, "closed hat", 100, 0.0)]
    # A clip exported on channel 1 whose notes the kit maps is read without a word.
    clip = smf(tmp_path / "clip" / "clip.mid", [on(36, 0.0, channel=0), on(38, 1.0, channel=0)], end=4.0)
    ds = load_dataset([clip], DataConfig(min_onsets=1))
    assert (len(ds.loops), ds.lines()) == (1, [])


def test_all_channels_also_reads_the_other_channels_of_a_file_with_channel_10(tmp_path):
    events = [on(36, 0.0), on(38, 1.0), on(42, 2.0, channel=3), on(60, 3.0, channel=0)]
    path = smf(tmp_path / "split.mid", events, end=4.0)
    assert read_midi(path, Grid(), DEFAULT).notes == 2
    both = read_midi(path, Grid(), DEFAULT, all_channels=True)
    assert (both.notes, both.unmapped, both.off_channel_10) == (4, 1, 2)


# ---------------------------------------------------------------------------- settings and words


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bars", "0"], "--bars 0: must be at least 1"),
        (["--steps-per-quarter", "0"], "--steps-per-quarter 0: must be at least 1"),
        (["--min-onsets", "-1"], "--min-onsets -1: must not be negative"),
        (["--min-loops", "-2"], "--min-loops -2: must not be negative"),
        (["--time-signature", "7-8"], "--time-signature 7-8: must be N/D"),
        (
            ["--time-signature", "7/8", "--steps-per-quarter", "1"],
            "--steps-per-quarter 1: does not divide a bar of 7/8: choose a multiple of 2",
        ),
        (
            ["--kit", "tr808"],
            "--kit tr808: is neither a built-in kit (default, rvae, mpc, mpk, maschine, battery) nor a file",
        ),
    ],
)
def test_data_options_are_checked_and_named_as_the_user_wrote_them(tmp_path, capsys, args, says):
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "m.pt"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"rvae train: {says}")


def test_data_config_refuses_what_it_cannot_read():
    with pytest.raises(UserError, match="bars 0: must be at least 1"):
        DataConfig(bars=0)
    assert DataConfig(time_signature="7/8", steps_per_quarter=2).bars == 1


def test_the_summary_counts_in_words(tmp_path):
    one = tmp_path / "one.toml"
    one.write_text('[[classes]]\nname = "kick"\nout = 36\nnotes = [36]\n')
    for name in ("a.mid", "b.mid"):
        smf(tmp_path / name, [ts(0.0, 4, 4), on(36, 0.0), on(36, 1.0)], end=4.0)
    lines = load_dataset([tmp_path], DataConfig(kit=str(one), bars=2, min_onsets=1)).summary().splitlines()
    assert lines[0].endswith("2 bars per loop = 192 steps; kit 'one' (1 instrument)")
    assert lines[1] == "files read: 0, skipped: 2 (2 have no 2 bars of 4/4 in a row to make a loop)"
    lines = load_dataset([tmp_path], DataConfig(min_onsets=1)).summary().splitlines()
    assert "1 bar per loop = 96 steps; kit 'default' (9 instruments)" in lines[0]


# ---------------------------------------------------------------------------- the shared real-world files

needs_realworld = pytest.mark.skipif(
    not REALWORLD.exists(), reason=f"{REALWORLD} is absent (real-world MIDI files from public repositories)"
)


def realworld_files():
    return sorted(REALWORLD.rglob("*.mid")) if REALWORLD.exists() else []


@needs_realworld
@pytest.mark.parametrize("path", realworld_files(), ids=lambda p: str(p.relative_to(REALWORLD)))
def test_every_note_on_mido_reads_is_read(path):
    try:
        want = mido_note_ons(path, clip=True)  # clip: mido then reads a control value of 168 too
    except (OSError, ValueError, EOFError, KeyError) as e:
        pytest.skip(f"mido cannot read it either: {e!r}")
    try:
        got = parse_midi(path)
    except UserError as e:
        pytest.fail(f"mido reads {want} notes, we skip it: {e}")
    assert len(got.tick) == want


@needs_realworld
def test_realworld_meters_and_lines():
    bsi = REALWORLD / "beat-studio-importer" / "samples"
    # 9/8, 7/8 and 5/4 bars among 4/4 ones: README figure, 110 of 150 notes in other meters.
    example2 = bsi / "example-2.mid"
    ds = load_dataset([example2], DataConfig(time_signature="4/4"))
    assert ds.lines() == [
        f"{example2}: left out 6 bars of 9/8, 5 bars of 7/8 and 1 bar of 5/4 (110 hits): not the model's 4/4"
    ]
    assert ds.notes == mido_note_ons(example2, channel=9) == 153
    assert file_meter(bsi / "seven-eight.mid") == "7/8"
    # The file MidiTok's tests call corrupted for one control value of 168: read, said.
    cc168 = REALWORLD / "MidiTok" / "tests" / "MIDIs_corrupted" / "ValueError_Control168.mid"
    got = read_midi(cc168, Grid(), DEFAULT)
    assert got.notes == mido_note_ons(cc168, channel=9, clip=True) == 1386
    assert got.said[0] == "skipped 1 malformed message (a data byte above 127) and read the rest"
    # A song read whole in 4/4 bars: every mapped drum note is a hit or a merged layer, but for
    # the hits on its final downbeat (its end-of-track lies 48 ticks after them: no bar there).
    path = REALWORLD / "MidiTok" / "tests" / "MIDIs_multitrack" / "Aicha.mid"
    aicha, notes = read_midi(path, Grid(), DEFAULT), parse_midi(path)
    drums = (notes.channel == 9) & (DEFAULT.lookup()[notes.pitch] >= 0)
    end = len(aicha.loops) * 4 * notes.ticks_per_quarter
    final = int((notes.tick[drums] >= end - notes.ticks_per_quarter / 48).sum())
    assert aicha.merged > 0 and not aicha.other_meters and final == 2
    assert aicha.notes - aicha.unmapped == sum(g.n_onsets for g in aicha.loops) + aicha.merged + final
    # Format edge cases: running status across a sysex (mido refuses it) gives the C major scale.
    tmf = REALWORLD / "test-midi-files" / "midi"
    scale = parse_midi(tmf / "test-running-status-sysex.mid")
    assert scale.pitch.tolist() == [60, 62, 64, 65, 67, 69, 71, 72]
    assert parse_midi(tmf / "test-illegal-message-f4.mid").bad == {"an undefined status byte 0xF4": 1}
    ds = load_dataset([tmf / "test-c-major-scale.mid"])
    assert [r.split(" (")[0] for _, r in ds.skipped] == ["has no channel 10, and most notes are unmapped"]
    assert os.path.basename(ds.skipped[0][0]) == "test-c-major-scale.mid"
