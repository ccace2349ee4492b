"""The performer: a 2-D latent pad that plays a MIDI-clock-synced drum sequencer.

Threads and what each owns:
- the clock thread (``clock.Player``): the sequencer state and the output ports; the only
  thread that sends MIDI;
- the decode worker (``decoder.DecodeWorker``): the model; turns the latest controls into a
  finished ``Pattern`` and drops it in a one-slot ``Mailbox``;
- the OSC server and the rtmidi input callback (``control``): only write the latest values
  into ``Controls``;
- the main thread: the pygame window (``ui``) or the headless status printer (``app``).
"""
