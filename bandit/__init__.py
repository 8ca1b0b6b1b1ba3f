"""The contextual-bandit decision loop as a plain Python library.

Feature encoding, Vowpal Wabbit policies and exploration, decision and
reward records, the reward join, the Parquet event log, checkpoints,
baselines, and :class:`DecisionLoop`, which ties them together in-process
and deterministically. Nothing here imports Ray or gRPC.
"""

from bandit.baseline import BaselineRules, Condition, Rule, choose_baseline
from bandit.errors import (
    BackpressureError,
    CheckpointError,
    ConfigurationError,
    EventLogError,
    InvalidPmfError,
    MicrobanditError,
    UnknownEventError,
)
from bandit.eventlog import EventLog, read_events, read_records
from bandit.events import (
    ActivationRecord,
    DecisionRecord,
    EVENT_SCHEMA,
    JoinedEvent,
    JoinOutcome,
    LearningMode,
    RewardRecord,
    RewardStatus,
)
from bandit.exploration import (
    Bag,
    Cover,
    EpsilonGreedy,
    Exploration,
    ExploreFirst,
    RegCB,
    Softmax,
    SquareCB,
    exploration_from_dict,
)
from bandit.features import Action, Encoder, NamespaceLayout
from bandit.join import ActivationStatus, RewardJoiner
from bandit.learner import Learner, LearnerStats
from bandit.loop import Decision, DecisionLoop, validate_event_id
from bandit.policy import Policy, validate_pmf
from bandit.settings import Aggregation, JoinSettings, PolicySettings

__all__ = [
    "Action",
    "ActivationRecord",
    "ActivationStatus",
    "Aggregation",
    "BackpressureError",
    "Bag",
    "BaselineRules",
    "CheckpointError",
    "Condition",
    "ConfigurationError",
    "Cover",
    "Decision",
    "DecisionLoop",
    "DecisionRecord",
    "EVENT_SCHEMA",
    "Encoder",
    "EpsilonGreedy",
    "EventLog",
    "EventLogError",
    "Exploration",
    "ExploreFirst",
    "InvalidPmfError",
    "JoinOutcome",
    "JoinSettings",
    "JoinedEvent",
    "Learner",
    "LearnerStats",
    "LearningMode",
    "MicrobanditError",
    "NamespaceLayout",
    "Policy",
    "PolicySettings",
    "RegCB",
    "RewardJoiner",
    "RewardRecord",
    "RewardStatus",
    "Rule",
    "Softmax",
    "SquareCB",
    "UnknownEventError",
    "choose_baseline",
    "exploration_from_dict",
    "read_events",
    "read_records",
    "validate_event_id",
    "validate_pmf",
]
