"""Example configurations shipped with the server (package data)."""
