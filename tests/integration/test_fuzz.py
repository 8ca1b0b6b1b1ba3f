"""Fuzzing of the real gRPC path: random and hostile Choose, ChooseBatch, Reward and Activate requests.

Hypothesis builds requests from huge and empty strings, VW syntax
characters, control characters, NaN and infinities, negative and huge
numbers, thousands of actions and repeated ids, and raw messages with
invalid UTF-8 or no valid protobuf at all. Every call must end with OK or a
specific status (never INTERNAL, never a stack trace), the server must stay
up, and afterwards the fuzzed policy's model must have finite weights and
its event log must read back.

The number of examples per method is ``MICROBANDIT_FUZZ_EXAMPLES``. The
default of 100 gives 400 generated requests plus the fixed hostile ones.
Examples are derandomized, so a run generates the same requests. ``scripts/fuzz_server.sh`` runs the
long version.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit.eventlog import read_events
from bandit.learner import CHECKPOINT_NAME
from bandit.policy import Policy
from protos.microbandit.v1 import decision_service_pb2 as pb
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc
from serving.config import load_config
from serving.learner import policy_data_dir

from .conftest import FUZZ_MAX_ACTIONS, FUZZ_POLICY, MAX_MESSAGE_BYTES, ServerProcess

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MICROBANDIT_FUZZ_EXAMPLES", "100"))
REPORT_PATH = os.environ.get("MICROBANDIT_FUZZ_REPORT")
CALL_TIMEOUT = 30.0
MAX_BATCH_SIZE = 1000  # the server's default max_batch_size
CHECKPOINT_WAIT = 40.0
ACCEPTED_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
# Codes seen per method, reported at the end; module state because
# Hypothesis calls the test function once per example.
OUTCOMES: Counter[tuple[str, str]] = Counter()

HOSTILE_TEXT = [
    "",
    " ",
    "|",
    ":",
    "a|b:c d",
    "|user a:1 b:2",
    "shared |ns x",
    "\n",
    "a\nb",
    "\r\n|",
    "\t",
    "\x00",
    "\x00|\x00",
    "\x7f\x1b[31m",
    "'",
    '"',
    "\\",
    "../../etc/passwd",
    "é",
    "\u202e",
    "\ufeff",
    "🙂" * 10,
    "x" * 257,
    "y" * 5000,
    "nan",
    "inf",
    "-0",
    "1e309",
]
HOSTILE_NUMBERS = [
    math.nan,
    -math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    2.0**63,
    -(2.0**63),
    1.0,
    -1.0,
]

texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40), st.text(st.characters(max_codepoint=0x1F), max_size=8))
numbers = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.floats(allow_nan=True, allow_infinity=True))


def mostly(valid: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """Draw from ``valid`` nine times in ten, so that many requests get past validation.

    The valid branch is the one Hypothesis shrinks towards.
    """
    return st.integers(0, 9).flatmap(lambda roll: hostile if roll == 9 else valid)


# Names and values the server accepts, yet full of VW syntax and control
# characters: they must reach VW escaped and never break a decision.
accepted_texts = st.one_of(
    st.sampled_from([t for t in HOSTILE_TEXT if 0 < len(t) <= 256]), st.text(min_size=1, max_size=30)
)
namespace_names = mostly(st.from_regex(r"[A-Za-z0-9_]{1,8}", fullmatch=True), texts)
feature_values = mostly(
    st.one_of(
        accepted_texts.map(lambda text: pb.FeatureValue(string_value=text)),
        st.floats(-1e300, 1e300).map(lambda number: pb.FeatureValue(number_value=number)),
        st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308]).map(lambda number: pb.FeatureValue(number_value=number)),
        st.booleans().map(lambda flag: pb.FeatureValue(bool_value=flag)),
    ),
    st.one_of(
        numbers.map(lambda number: pb.FeatureValue(number_value=number)),
        texts.map(lambda text: pb.FeatureValue(string_value=text)),
        st.just(pb.FeatureValue()),
    ),
)
feature_maps = st.dictionaries(mostly(accepted_texts, texts), feature_values, min_size=1, max_size=4)
namespaces = mostly(
    st.dictionaries(namespace_names, feature_maps, min_size=1, max_size=4),
    st.dictionaries(texts, st.dictionaries(texts, feature_values, max_size=3), max_size=3),
)
policies = mostly(st.just(FUZZ_POLICY), texts)
event_ids = mostly(st.one_of(st.just(""), st.text(alphabet="abc:-_.", min_size=1, max_size=12)), texts)
user_ids = mostly(st.one_of(st.just(""), accepted_texts), texts)
consents = mostly(st.sampled_from([0, 1, 2]), st.sampled_from([3, -1, 2**31 - 1]))
reward_values = mostly(st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-1.0, 1.0, 0.0])), numbers)
# Event ids of decisions that returned OK, so that rewards and activations
# also reach the learner with real ids.
DECIDED: list[str] = []


def _namespace_messages(value: dict[str, dict[str, pb.FeatureValue]]) -> dict[str, pb.Namespace]:
    return {name: pb.Namespace(features=features) for name, features in value.items()}


@st.composite
def action_lists(draw: st.DrawFn) -> list[pb.Action]:
    """Few hand-built actions, or many generated ones (thousands, past the limit, with duplicates)."""
    shape = draw(st.sampled_from(["few", "few", "few", "few", "many", "duplicates", "hostile"]))
    if shape in ("few", "hostile"):
        ids = st.lists(accepted_texts, min_size=1, max_size=5, unique=True) if shape == "few" else st.lists(texts, max_size=5)
        return [pb.Action(id=action_id, features=_namespace_messages(draw(namespaces))) for action_id in draw(ids)]
    count = draw(st.sampled_from([2, 300, 2000, FUZZ_MAX_ACTIONS, FUZZ_MAX_ACTIONS + 1]))
    ids = [f"a{i}" for i in range(count)]
    if shape == "duplicates":
        ids[-1] = ids[0]
    # Without features, so that even FUZZ_MAX_ACTIONS actions fit in the message limit and reach VW.
    return [pb.Action(id=action_id) for action_id in ids]


@st.composite
def choose_requests(draw: st.DrawFn) -> pb.ChooseRequest:
    actions = draw(action_lists())
    action_ids = [a.id for a in actions] or [""]
    excluded = draw(mostly(st.just([]), st.lists(st.one_of(texts, st.sampled_from(action_ids)), max_size=2)))
    return pb.ChooseRequest(
        policy=draw(policies),
        event_id=draw(event_ids),
        context=_namespace_messages(draw(namespaces)),
        actions=actions,
        excluded_action_ids=excluded,
        defer_activation=draw(st.booleans()),
        user_id=draw(user_ids),
        consent=draw(consents),
    )


@st.composite
def choose_batches(draw: st.DrawFn) -> pb.ChooseBatchRequest:
    """A few random requests, or one small request repeated up to past max_batch_size."""
    if draw(st.booleans()):
        return pb.ChooseBatchRequest(requests=draw(st.lists(choose_requests(), max_size=4)))
    context = {"user": pb.Namespace(features={"k": pb.FeatureValue(string_value=draw(accepted_texts))})}
    request = pb.ChooseRequest(policy=FUZZ_POLICY, context=context, actions=[pb.Action(id="a"), pb.Action(id="b")])
    return pb.ChooseBatchRequest(requests=[request] * draw(st.sampled_from([1, 2, 300, 1000, 1001])))


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> pb_grpc.DecisionServiceStub:
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        yield pb_grpc.DecisionServiceStub(channel)


def _check_call(method: str, call: object, request: object) -> grpc.StatusCode:
    """Send one request; assert the status is OK or specific and the details carry no stack trace."""
    try:
        call(request, timeout=CALL_TIMEOUT)  # type: ignore[operator]
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
        details = error.details() or ""
        assert code in ACCEPTED_CODES, f"{method} got {code.name}: {details[:500]}\nrequest: {str(request)[:2000]}"
        assert "Traceback" not in details, f"{method} leaked a stack trace: {details[:500]}"
        assert len(details) < 2000, f"{method} details are {len(details)} characters"
    OUTCOMES[(method, code.name)] += 1
    return code


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(request=choose_requests())
def test_fuzz_choose(stub: pb_grpc.DecisionServiceStub, request: pb.ChooseRequest) -> None:
    try:
        response = stub.Choose(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError:
        code = _check_call("Choose", stub.Choose, request)
        assert code != grpc.StatusCode.OK, "a repeated request succeeded after failing"
        return
    OUTCOMES[("Choose", "OK")] += 1
    DECIDED.append(response.event_id)
    assert request.ByteSize() <= MAX_MESSAGE_BYTES
    assert math.isfinite(response.probability)
    assert 0.0 < response.probability <= 1.0
    total = sum(ranked.probability for ranked in response.ranking)
    assert abs(total - 1.0) <= 1e-6
    if not response.replayed:
        # A repeated event id returns the first decision, whose actions may differ from this request's.
        assert response.action_id in {action.id for action in request.actions}


@FUZZ_SETTINGS
@given(batch=choose_batches())
def test_fuzz_choose_batch(stub: pb_grpc.DecisionServiceStub, batch: pb.ChooseBatchRequest) -> None:
    code = _check_call("ChooseBatch", stub.ChooseBatch, batch)
    if len(batch.requests) > MAX_BATCH_SIZE:
        assert code != grpc.StatusCode.OK


def _event_id(draw: st.DrawFn) -> str:
    if DECIDED and draw(st.booleans()):
        return DECIDED[draw(st.integers(0, len(DECIDED) - 1))]
    return draw(event_ids)


@FUZZ_SETTINGS
@given(data=st.data(), policy=policies, value=reward_values, reward_id=st.one_of(st.just(""), event_ids))
def test_fuzz_reward(
    stub: pb_grpc.DecisionServiceStub, data: st.DataObject, policy: str, value: float, reward_id: str
) -> None:
    event_id = _event_id(data.draw)
    request = pb.RewardRequest(policy=policy, event_id=event_id, value=value, reward_id=reward_id)
    code = _check_call("Reward", stub.Reward, request)
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        assert code != grpc.StatusCode.OK


@FUZZ_SETTINGS
@given(data=st.data(), policy=policies)
def test_fuzz_activate(stub: pb_grpc.DecisionServiceStub, data: st.DataObject, policy: str) -> None:
    request = pb.ActivateRequest(policy=policy, event_id=_event_id(data.draw))
    _check_call("Activate", stub.Activate, request)


def _raw_call(address: str, method: str, payload: bytes) -> grpc.StatusCode:
    """Send bytes that the client does not serialize: invalid UTF-8, broken protobuf."""
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/microbandit.v1.DecisionService/{method}")
        return _check_call(f"{method} (raw bytes)", call, payload)


RAW_PAYLOADS = {
    "invalid UTF-8 policy": b"\x0a\x02\xff\xfe",
    "invalid UTF-8 event id": b"\x0a\x04fuzz\x12\x03\xc3\x28\xa0",
    "truncated field": b"\x0a\x10fu",
    "unknown wire type": b"\x0f\x01\x02\x03",
    "huge length prefix": b"\x0a\xff\xff\xff\xff\x0f",
    "random bytes": bytes(range(256)),
}


@pytest.mark.parametrize("method", ["Choose", "ChooseBatch", "Reward", "Activate", "GetPolicy"])
@pytest.mark.parametrize("payload_name", sorted(RAW_PAYLOADS))
def test_raw_payload_gets_specific_status(server: ServerProcess, method: str, payload_name: str) -> None:
    _raw_call(server.address, method, RAW_PAYLOADS[payload_name])


# Regression: the long fuzz run found that a reward of -1.5e-209 made VW
# read a NaN cost; tests/unit/test_fuzz_regressions.py covers it without Ray.
def test_tiny_reward_is_learned_finite(stub: pb_grpc.DecisionServiceStub) -> None:
    context = {"user": pb.Namespace(features={"kind": pb.FeatureValue(string_value="tiny-reward")})}
    actions = [pb.Action(id="a0"), pb.Action(id="a1")]
    for value in (-9.858653647200317e-209, -1.5e-209, 1.5e-130):
        response = stub.Choose(pb.ChooseRequest(policy=FUZZ_POLICY, context=context, actions=actions), timeout=10)
        reward = stub.Reward(pb.RewardRequest(policy=FUZZ_POLICY, event_id=response.event_id, value=value), timeout=10)
        assert reward.status == pb.REWARD_STATUS_ACCEPTED


# Regression: before the service was registered with a tolerant request
# deserializer, these payloads ended with UNKNOWN and protobuf's DecodeError.
@pytest.mark.parametrize("via", ["replica", "proxy"])
@pytest.mark.parametrize("payload_name", ["invalid UTF-8 policy", "huge length prefix"])
def test_undecodable_request_is_invalid_argument(server: ServerProcess, via: str, payload_name: str) -> None:
    address = server.address if via == "replica" else server.proxy_address
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/microbandit.v1.DecisionService/Choose")
        with pytest.raises(grpc.RpcError) as raised:
            call(RAW_PAYLOADS[payload_name], timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid microbandit.v1.ChooseRequest message" in raised.value.details()


def test_valid_requests_after_fuzz_learn(stub: pb_grpc.DecisionServiceStub) -> None:
    context = {"user": pb.Namespace(features={"kind": pb.FeatureValue(string_value="after-fuzz")})}
    actions = [pb.Action(id="a0"), pb.Action(id="a1")]
    for index in range(20):
        response = stub.Choose(pb.ChooseRequest(policy=FUZZ_POLICY, context=context, actions=actions), timeout=10)
        assert math.isfinite(response.probability)
        assert 0.0 < response.probability <= 1.0
        extreme = 1.0 if index % 2 else -1.0
        stub.Reward(pb.RewardRequest(policy=FUZZ_POLICY, event_id=response.event_id, value=extreme), timeout=10)


def test_server_survives_and_model_stays_finite(server: ServerProcess, stub: pb_grpc.DecisionServiceStub) -> None:
    _write_report(Path(REPORT_PATH) if REPORT_PATH else None)
    assert server.running
    info = stub.GetPolicy(pb.GetPolicyRequest(policy=FUZZ_POLICY), timeout=10)
    assert info.examples_learned >= 20
    assert info.decisions > 0

    # The learner checkpoints every checkpoint_interval_seconds (20 s in the
    # test configuration); wait for one written after the fuzzing.
    fuzz_dir = policy_data_dir(server.data_dir, FUZZ_POLICY)
    checkpoint = fuzz_dir / CHECKPOINT_NAME
    finished = time.time()
    deadline = time.monotonic() + CHECKPOINT_WAIT
    while time.monotonic() < deadline:
        if checkpoint.exists() and checkpoint.stat().st_mtime > finished:
            break
        time.sleep(0.5)
    assert checkpoint.exists(), "no checkpoint"
    assert checkpoint.stat().st_mtime > finished, "no checkpoint after the fuzzing"
    settings_ = load_config(server.config_path).policy(FUZZ_POLICY).build()
    restored = Policy.load(checkpoint, settings_)
    try:
        assert restored.has_finite_weights()
        assert restored.examples_learned >= 20
    finally:
        restored.close()

    # Read while the server runs: read_events lists the segments again when
    # the learner's background merge deletes one during the read.
    table = read_events(fuzz_dir / "events")
    assert table.num_rows > 0
    kinds = Counter(table["kind"].to_pylist())
    assert kinds["decision"] > 0
    assert kinds["joined"] >= 20
    for probability in table["probability"].to_pylist():
        assert probability is None or 0.0 < probability <= 1.0


def _write_report(path: Path | None) -> None:
    by_method: dict[str, dict[str, int]] = {}
    for (method, code), count in sorted(OUTCOMES.items()):
        by_method.setdefault(method, {})[code] = count
    summary = {"examples_per_method": EXAMPLES, "calls": sum(OUTCOMES.values()), "outcomes": by_method}
    print(json.dumps(summary, indent=2))
    if path is not None:
        path.write_text(json.dumps(summary, indent=2) + "\n")
