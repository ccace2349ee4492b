"""The performer's commands, ``rvae perform`` and ``rvae ports``: added to the ``rvae`` command
through the ``rvae.commands`` entry point, so that ``rvae`` never imports the performer."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

from rvae.cli import _may_write, _say
from rvae.errors import UserError

__all__ = ["register"]


def cmd_perform(args) -> int:
    from performer.app import PerformConfig, perform

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PerformConfig) if hasattr(args, f.name)}
    values["checkpoint"] = args.checkpoint or PerformConfig.checkpoint
    values["z"] = tuple(args.z)
    values["mute"] = _mutes(args.mute)
    if args.record:
        _may_write(Path(args.record), args.force)
    return perform(PerformConfig(**values), say=_say, show=print)


def _mutes(text: str) -> list[int]:
    try:
        mutes = [int(m) for m in text.replace(" ", "").split(",") if m]
    except ValueError:
        raise UserError(f"--mute {text!r}: give instrument numbers separated by commas, e.g. 3,4") from None
    if any(not 1 <= m <= 16 for m in mutes):
        raise UserError(f"--mute {text!r}: instruments are numbered from 1")
    return mutes


def cmd_ports(args) -> int:
    from performer.ports import list_ports

    found = list_ports(args.midi_api)
    # Named by what the user does with them: a running performer's own out port is a
    # source here, which under rtmidi's "inputs" looked like a mistake.
    for kind, title in (
        ("inputs", "sources: send to us; pick one with --midi-in NAME"),
        ("outputs", "destinations: we send to them; pick one with --midi-out NAME"),
    ):
        print(f"{title}")
        for name in found[kind] or ["(none)"]:
            print(f"  {name}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the performer's subcommands to ``rvae``'s parser; returns their handlers by name."""
    f = add_command("perform", help="play the latent space live, on a MIDI-clock-synced sequencer")
    f.add_argument("checkpoint", nargs="?", help="a checkpoint (default: the bundled 4/4 model)")
    f.add_argument("--headless", action="store_true", help="no window: OSC, MIDI CC and these options drive it")
    f.add_argument(
        "--clock",
        default="internal",
        choices=["internal", "midi"],
        help="internal, or midi: follow the MIDI clock arriving on --midi-in",
    )
    f.add_argument("--bpm", type=float, default=120.0, help="internal clock tempo (default 120)")
    f.add_argument("--midi-out", default="rvae", help="an output port whose name contains this, else a virtual one")
    f.add_argument("--midi-in", default=None, help="input port for clock and CC (default: a virtual 'rvae-in')")
    f.add_argument("--midi-api", default=None, help="rtmidi backend: alsa, jack, coremidi, winmm")
    f.add_argument("--channel", type=int, default=10, help="MIDI channel 1-16 (default 10)")
    f.add_argument(
        "--no-send-clock",
        dest="send_clock",
        action="store_false",
        help="with the internal clock, do not send MIDI clock, Start and Stop",
    )
    f.add_argument("--z", type=float, nargs=2, default=(0.0, 0.0), metavar=("X", "Y"), help="starting cursor")
    f.add_argument("--threshold", type=float, default=0.5)
    f.add_argument("--noise", type=float, default=0.0, help="random jitter of z each bar (latent units)")
    f.add_argument("--velocity", default="decoded", choices=["decoded", "fixed"])
    f.add_argument(
        "--microtiming", type=float, default=100.0, help="percent of the decoded microtiming (0 = on the grid)"
    )
    f.add_argument("--mute", default="", help="instruments to mute, e.g. 3,4 (numbered from 1, as keys 1-9)")
    f.add_argument("--swap", default="bar", choices=["tick", "beat", "bar"], help="when a new pattern takes over")
    f.add_argument("--gate", type=float, default=0.125, help="note length in beats")
    f.add_argument("--osc-host", default="127.0.0.1", help="address OSC listens on")
    f.add_argument("--osc-port", type=int, default=12000, help="OSC port (Wekinator's outputs; 0 = no OSC)")
    f.add_argument(
        "--osc-out",
        nargs="?",
        const="127.0.0.1:6448",
        default=None,
        metavar="HOST:PORT",
        help="send the cursor as /wek/inputs (default 127.0.0.1:6448, Wekinator's input)",
    )
    f.add_argument("--cc-x", type=int, default=None, help="MIDI CC number moving the cursor's x")
    f.add_argument("--cc-y", type=int, default=None, help="MIDI CC number moving the cursor's y")
    f.add_argument("--record", default=None, metavar="OUT.mid", help="record the performance (+ OUT.cursor.csv)")
    f.add_argument("--audio", action="store_true", help="play a synthesised drum kit through the sound card")
    f.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    f.add_argument("--force", action="store_true", help="overwrite the --record file if it exists")

    o = add_command("ports", help="list MIDI ports")
    o.add_argument("--midi-api", default=None, help="rtmidi backend: alsa, jack, coremidi, winmm")
    return {"perform": cmd_perform, "ports": cmd_ports}
