"""The contextual-bandit decision loop as a plain Python library.

Feature encoding, Vowpal Wabbit policies and exploration, decision and
reward records, the reward join, the Parquet event log, checkpoints,
baselines, and :class:`~bandit.loop.DecisionLoop`, which ties them together
in-process and deterministically. Nothing here imports Ray or gRPC.
"""
