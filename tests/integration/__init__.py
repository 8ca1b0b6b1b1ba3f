"""Integration tests: the real server on loopback."""
