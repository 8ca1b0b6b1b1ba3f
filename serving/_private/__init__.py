"""Internals of the server: request conversion and Ray process set-up. Not a public API."""

__all__: list[str] = []
