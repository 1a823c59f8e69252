"""The ways in: CLI, client helpers, dev server, API."""
