"""One demo scenario per capability; each returns its table, checks and seed metric."""
