"""A reference Caravan participant in Python, written from docs/protocol.md: it submits,
receives, verifies and acknowledges documents through a Caravan hub over mutual TLS."""
