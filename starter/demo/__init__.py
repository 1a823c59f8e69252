"""``selfheal demo``: ``runner`` runs every scenario found in ``scenarios/`` (one module per
capability, each defining ``SCENARIO``) against a real Temporal; ``scenario`` is what a scenario
is. Nothing is imported here, so a scenario importing ``starter.demo.scenario`` never loads the
runner."""
