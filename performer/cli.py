"""The performer's commands, ``rvae perform`` and ``rvae ports``: added to the ``rvae`` command
through the ``rvae.commands`` entry point, so that ``rvae`` never imports the performer."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

from rvae.cli import _may_write, _say, add_config_options
from rvae.errors import UserError

__all__ = ["register"]

NOT_OPTIONS = {"checkpoint", "switch_interval"}  # the checkpoint is the positional argument


def cmd_perform(args) -> int:
    from performer.app import PerformConfig, perform

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(PerformConfig) if f.name not in NOT_OPTIONS}
    if args.checkpoint:
        values["checkpoint"] = args.checkpoint
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
    from performer.ports import list_ports, on_any_api

    if args.midi_api:
        found = list_ports(args.midi_api)
    else:  # as perform does: rtmidi's default API, else JACK
        listed, why = on_any_api(list_ports, "cannot list MIDI ports")
        if listed is None:
            raise UserError(f"{why}; name one with --midi-api")
        found = listed
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
    from performer.app import PerformConfig

    f = add_command("perform", help="play the latent space live, on a MIDI-clock-synced sequencer")
    f.add_argument("checkpoint", nargs="?", help="a checkpoint (default: the bundled 4/4 model)")
    # one option per PerformConfig field, its help in the field's metadata
    add_config_options(f, PerformConfig, skip=NOT_OPTIONS, help={}, title="performance")
    f.add_argument("--force", action="store_true", help="overwrite the --record file if it exists")

    o = add_command("ports", help="list MIDI ports")
    from performer.ports import available_apis

    apis = available_apis()
    o.add_argument(
        "--midi-api",
        default=None,
        choices=apis,
        type=str.lower,
        help=f"rtmidi backend: {', '.join(apis)} (default: rtmidi's, else JACK)",
    )
    return {"perform": cmd_perform, "ports": cmd_ports}
