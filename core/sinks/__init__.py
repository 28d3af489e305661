"""Sinks: where predictions and health go (files, LSL, the console)."""
