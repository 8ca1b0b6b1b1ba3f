"""The decision server: Ray Serve gRPC application, configuration, CLI and client.

``serving.app`` contains the Ray Serve deployment and the learner actors,
``serving.server`` starts and stops them on a local Ray (``microbandit
serve``), ``serving.config`` validates the YAML configuration and
``serving.client`` is a small synchronous gRPC client. The decision path
itself (``serving.decider``, ``serving.learner``) runs without Ray, for
tests and for the benchmark's plain gRPC reference server.

Modules are imported on demand, so that importing the client does not load
Ray.
"""

__all__ = ["app", "client", "commands", "config", "decider", "errors", "learner", "server"]
