"""Side effects: one module per outside system."""
