"""Sweeps: variants of one spec, their tasks and their orchestration."""
