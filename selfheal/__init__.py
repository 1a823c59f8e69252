"""selfheal core: models, policies, error classification and configuration (no side effects)."""
