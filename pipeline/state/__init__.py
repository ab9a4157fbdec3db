"""Versioned snapshots of core state and where they are kept (changelog topic, file)."""
