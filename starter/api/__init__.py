"""The HTTP API that ``selfheal api`` serves: ``app`` (the Starlette app and its uvicorn server),
``webhook`` (the signed GitHub receiver) and ``outbox`` (reviews Temporal did not accept in time,
started from the ledger). Nothing is imported here: the CLI's ``pr`` command needs the
webhook's signature, not the app and its dashboard."""
