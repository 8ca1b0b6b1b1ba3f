"""Version 1 of the ``microbandit`` gRPC API (generated modules)."""
