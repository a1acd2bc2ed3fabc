"""The Textual control-room app."""
