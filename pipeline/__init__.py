"""driftline pipeline: events, config, monitor core, state, I/O, runtime and CLI."""
