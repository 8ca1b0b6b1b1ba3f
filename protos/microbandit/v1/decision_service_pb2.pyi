from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_UNSPECIFIED: _ClassVar[Consent]
    CONSENT_GRANTED: _ClassVar[Consent]
    CONSENT_DENIED: _ClassVar[Consent]

class LearningMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEARNING_MODE_UNSPECIFIED: _ClassVar[LearningMode]
    LEARNING_MODE_ONLINE: _ClassVar[LearningMode]
    LEARNING_MODE_APPRENTICE: _ClassVar[LearningMode]
    LEARNING_MODE_LOGGING_ONLY: _ClassVar[LearningMode]

class RewardStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REWARD_STATUS_UNSPECIFIED: _ClassVar[RewardStatus]
    REWARD_STATUS_ACCEPTED: _ClassVar[RewardStatus]
    REWARD_STATUS_LATE: _ClassVar[RewardStatus]
    REWARD_STATUS_DUPLICATE: _ClassVar[RewardStatus]
    REWARD_STATUS_PENDING_DECISION: _ClassVar[RewardStatus]
    REWARD_STATUS_ORPHAN: _ClassVar[RewardStatus]
CONSENT_UNSPECIFIED: Consent
CONSENT_GRANTED: Consent
CONSENT_DENIED: Consent
LEARNING_MODE_UNSPECIFIED: LearningMode
LEARNING_MODE_ONLINE: LearningMode
LEARNING_MODE_APPRENTICE: LearningMode
LEARNING_MODE_LOGGING_ONLY: LearningMode
REWARD_STATUS_UNSPECIFIED: RewardStatus
REWARD_STATUS_ACCEPTED: RewardStatus
REWARD_STATUS_LATE: RewardStatus
REWARD_STATUS_DUPLICATE: RewardStatus
REWARD_STATUS_PENDING_DECISION: RewardStatus
REWARD_STATUS_ORPHAN: RewardStatus

class FeatureValue(_message.Message):
    __slots__ = ("string_value", "number_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    number_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., number_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("features",)
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureValue, _Mapping]] = ...) -> None: ...
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.MessageMap[str, FeatureValue]
    def __init__(self, features: _Optional[_Mapping[str, FeatureValue]] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("id", "features")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Namespace
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Namespace, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    id: str
    features: _containers.MessageMap[str, Namespace]
    def __init__(self, id: _Optional[str] = ..., features: _Optional[_Mapping[str, Namespace]] = ...) -> None: ...

class ChooseRequest(_message.Message):
    __slots__ = ("policy", "event_id", "context", "actions", "excluded_action_ids", "defer_activation", "user_id", "consent")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Namespace
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Namespace, _Mapping]] = ...) -> None: ...
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ACTION_IDS_FIELD_NUMBER: _ClassVar[int]
    DEFER_ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    policy: str
    event_id: str
    context: _containers.MessageMap[str, Namespace]
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    excluded_action_ids: _containers.RepeatedScalarFieldContainer[str]
    defer_activation: bool
    user_id: str
    consent: Consent
    def __init__(self, policy: _Optional[str] = ..., event_id: _Optional[str] = ..., context: _Optional[_Mapping[str, Namespace]] = ..., actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ..., excluded_action_ids: _Optional[_Iterable[str]] = ..., defer_activation: _Optional[bool] = ..., user_id: _Optional[str] = ..., consent: _Optional[_Union[Consent, str]] = ...) -> None: ...

class RankedAction(_message.Message):
    __slots__ = ("action_id", "probability")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    probability: float
    def __init__(self, action_id: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class ChooseResponse(_message.Message):
    __slots__ = ("event_id", "action_id", "probability", "ranking", "model_version", "learning_mode", "replayed")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEARNING_MODE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    action_id: str
    probability: float
    ranking: _containers.RepeatedCompositeFieldContainer[RankedAction]
    model_version: int
    learning_mode: LearningMode
    replayed: bool
    def __init__(self, event_id: _Optional[str] = ..., action_id: _Optional[str] = ..., probability: _Optional[float] = ..., ranking: _Optional[_Iterable[_Union[RankedAction, _Mapping]]] = ..., model_version: _Optional[int] = ..., learning_mode: _Optional[_Union[LearningMode, str]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ChooseBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[ChooseRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[ChooseRequest, _Mapping]]] = ...) -> None: ...

class ChooseBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[ChooseResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[ChooseResponse, _Mapping]]] = ...) -> None: ...

class RewardRequest(_message.Message):
    __slots__ = ("policy", "event_id", "value", "reward_id")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    policy: str
    event_id: str
    value: float
    reward_id: str
    def __init__(self, policy: _Optional[str] = ..., event_id: _Optional[str] = ..., value: _Optional[float] = ..., reward_id: _Optional[str] = ...) -> None: ...

class RewardResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: RewardStatus
    def __init__(self, status: _Optional[_Union[RewardStatus, str]] = ...) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("policy", "event_id")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    policy: str
    event_id: str
    def __init__(self, policy: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class ActivateResponse(_message.Message):
    __slots__ = ("activated",)
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    activated: bool
    def __init__(self, activated: _Optional[bool] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: str
    def __init__(self, policy: _Optional[str] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyInfo(_message.Message):
    __slots__ = ("name", "settings_json", "vw_args", "learning_mode", "model_version", "examples_learned", "decisions", "rewards", "last_model_update_unix_seconds", "apprentice_match_rate", "pending_decisions", "model_update_interval_seconds", "model_age_seconds", "learner_available", "decisions_lost")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    VW_ARGS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_LEARNED_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    LAST_MODEL_UPDATE_UNIX_SECONDS_FIELD_NUMBER: _ClassVar[int]
    APPRENTICE_MATCH_RATE_FIELD_NUMBER: _ClassVar[int]
    PENDING_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_UPDATE_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEARNER_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_LOST_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings_json: str
    vw_args: _containers.RepeatedScalarFieldContainer[str]
    learning_mode: LearningMode
    model_version: int
    examples_learned: int
    decisions: int
    rewards: int
    last_model_update_unix_seconds: float
    apprentice_match_rate: float
    pending_decisions: int
    model_update_interval_seconds: float
    model_age_seconds: float
    learner_available: bool
    decisions_lost: int
    def __init__(self, name: _Optional[str] = ..., settings_json: _Optional[str] = ..., vw_args: _Optional[_Iterable[str]] = ..., learning_mode: _Optional[_Union[LearningMode, str]] = ..., model_version: _Optional[int] = ..., examples_learned: _Optional[int] = ..., decisions: _Optional[int] = ..., rewards: _Optional[int] = ..., last_model_update_unix_seconds: _Optional[float] = ..., apprentice_match_rate: _Optional[float] = ..., pending_decisions: _Optional[int] = ..., model_update_interval_seconds: _Optional[float] = ..., model_age_seconds: _Optional[float] = ..., learner_available: _Optional[bool] = ..., decisions_lost: _Optional[int] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies",)
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[PolicyInfo]
    def __init__(self, policies: _Optional[_Iterable[_Union[PolicyInfo, _Mapping]]] = ...) -> None: ...
