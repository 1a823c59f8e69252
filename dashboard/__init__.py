"""The health page (M2.6)."""
