"""Deterministic orchestration: one module per capability."""
