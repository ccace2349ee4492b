"""The performer: a 2-D latent pad that plays a MIDI-clock-synced drum sequencer.

Threads and what each owns:
- the clock thread (``sequencer.Player``): the sequencer state and the outputs; the only
  thread that sends MIDI; it plays on any ``clock.Clock`` (internal, following MIDI clock,
  Ableton Link) to any ``ports.Output`` (MIDI port, audio preview, recording);
- the decode worker (``decoder.DecodeWorker``): the model; turns the latest controls into a
  finished ``Pattern`` and drops it in a one-slot ``Mailbox``;
- the OSC server and the rtmidi input callback (``control``): only write the latest values
  into ``Controls``;
- the main thread: the pygame window (``ui.run_window``) or the headless status printer
  (``ui.run_console``); ``app.Performance`` starts all of them and stops each once.
"""
