"""amt: automatic music transcription — recorded music in, notes (piano roll, MIDI) out."""

__version__ = "0.1.0"
