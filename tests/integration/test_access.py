"""Access control of the real server: TLS on the gRPC ports, bearer tokens, loopback, no dashboard.

One server with ``server.tls`` (a self-signed certificate for 127.0.0.1
made by the test) and ``server.auth_token_env``. Each test calls it as a
client would: with and without TLS, with the right, a wrong and no token.
``test_listening_ports_are_documented`` lists every TCP port the server's
processes listen on; with ``MICROBANDIT_PORTS_REPORT`` set it writes them
to that file.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protos.microbandit.v1 import decision_service_pb2 as pb
from protos.microbandit.v1 import decision_service_pb2_grpc as pb_grpc
from serving.client import AuthenticationError, DecisionClient, UnavailableError

from .conftest import SYNTHETIC_POLICY, ServerProcess, listening_addresses

pytestmark = pytest.mark.integration

TOKEN = "access-test-token-4e1f0c"
CONTEXT = {"user": {"segment": "s0"}}
ACTIONS = ["a0", "a1", "a2"]
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}
DASHBOARD_PORT = 8265  # Ray's default dashboard port


def _write_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and localhost; return (certificate, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with TLS and a bearer token, started for this module."""
    workdir = tmp_path_factory.mktemp("microbandit-secure")
    cert_path, key_path = _write_certificate(workdir, "server")
    process = ServerProcess(workdir, auth_token=TOKEN)
    document = yaml.safe_load(process.config_path.read_text())
    document["server"]["tls"] = {"cert_file": str(cert_path), "key_file": str(key_path)}
    process.config_path.write_text(yaml.safe_dump(document))
    process.cert_path = cert_path  # type: ignore[attr-defined]
    process.start()
    try:
        yield process
    finally:
        if process.running:
            process.stop()


def _addresses(server: ServerProcess) -> list[str]:
    return [*server.replica_addresses, server.proxy_address]


def test_start_output_marks_tls(secure_server: ServerProcess) -> None:
    text = secure_server.log_path.read_text(errors="replace")
    assert "(Ray Serve proxy, TLS)" in text
    assert "(decider replica, direct ingress, TLS)" in text
    assert TOKEN not in text


@pytest.mark.parametrize("via", ["replica", "proxy"])
def test_tls_client_with_token_decides(secure_server: ServerProcess, via: str) -> None:
    address = secure_server.address if via == "replica" else secure_server.proxy_address
    ca_file = secure_server.cert_path  # type: ignore[attr-defined]
    with DecisionClient(address, timeout=10.0, token=TOKEN, tls_ca_file=ca_file) as client:
        decision = client.choose(SYNTHETIC_POLICY, CONTEXT, ACTIONS)
    assert decision.action_id in ACTIONS
    assert abs(sum(decision.pmf.values()) - 1.0) <= 1e-6


@pytest.mark.parametrize("via", ["replica", "proxy"])
def test_plaintext_client_is_refused(secure_server: ServerProcess, via: str) -> None:
    address = secure_server.address if via == "replica" else secure_server.proxy_address
    with DecisionClient(address, timeout=5.0, token=TOKEN) as client:
        with pytest.raises(UnavailableError, match="UNAVAILABLE"):
            client.choose(SYNTHETIC_POLICY, CONTEXT, ACTIONS)


def test_untrusted_certificate_is_refused(secure_server: ServerProcess, tmp_path: Path) -> None:
    other_ca, _ = _write_certificate(tmp_path, "other")
    with DecisionClient(secure_server.address, timeout=5.0, token=TOKEN, tls_ca_file=other_ca) as client:
        with pytest.raises(UnavailableError, match="UNAVAILABLE"):
            client.choose(SYNTHETIC_POLICY, CONTEXT, ACTIONS)


@pytest.mark.parametrize("via", ["replica", "proxy"])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_missing_or_wrong_token_is_unauthenticated(secure_server: ServerProcess, via: str, token: str | None) -> None:
    address = secure_server.address if via == "replica" else secure_server.proxy_address
    ca_file = secure_server.cert_path  # type: ignore[attr-defined]
    with DecisionClient(address, timeout=10.0, token=token, tls_ca_file=ca_file) as client:
        with pytest.raises(AuthenticationError, match="UNAUTHENTICATED") as raised:
            client.choose(SYNTHETIC_POLICY, CONTEXT, ACTIONS)
    assert TOKEN not in str(raised.value)


def test_every_method_needs_token(secure_server: ServerProcess) -> None:
    credentials = grpc.ssl_channel_credentials(secure_server.cert_path.read_bytes())  # type: ignore[attr-defined]
    with grpc.secure_channel(secure_server.address, credentials) as channel:
        stub = pb_grpc.DecisionServiceStub(channel)
        calls = {
            "Choose": lambda: stub.Choose(pb.ChooseRequest(policy=SYNTHETIC_POLICY), timeout=10),
            "ChooseBatch": lambda: stub.ChooseBatch(pb.ChooseBatchRequest(), timeout=10),
            "Reward": lambda: stub.Reward(pb.RewardRequest(policy=SYNTHETIC_POLICY, event_id="e", value=1), timeout=10),
            "Activate": lambda: stub.Activate(pb.ActivateRequest(policy=SYNTHETIC_POLICY, event_id="e"), timeout=10),
            "GetPolicy": lambda: stub.GetPolicy(pb.GetPolicyRequest(policy=SYNTHETIC_POLICY), timeout=10),
            "ListPolicies": lambda: stub.ListPolicies(pb.ListPoliciesRequest(), timeout=10),
        }
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as raised:
                call()
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, f"{name}: {raised.value.details()}"


def test_health_check_over_tls_needs_no_token(secure_server: ServerProcess) -> None:
    credentials = grpc.ssl_channel_credentials(secure_server.cert_path.read_bytes())  # type: ignore[attr-defined]
    with grpc.secure_channel(secure_server.proxy_address, credentials) as channel:
        healthz = channel.unary_unary("/ray.serve.RayServeAPIService/Healthz")
        response = healthz(b"", timeout=10)
    assert isinstance(response, bytes)


def _process_name(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [part.decode(errors="replace") for part in command if part]
    if not words:
        return "?"
    scripts = [Path(word).name for word in words if word.endswith(".py") or "raylet" in word or "gcs_server" in word]
    if scripts:
        return scripts[0]
    return Path(words[0]).name


def _listening_by_process(pids: list[int]) -> dict[int, tuple[set[str], set[str]]]:
    """Return port -> (addresses, process names) of the listening TCP sockets."""
    result: dict[int, tuple[set[str], set[str]]] = {}
    for pid in pids:
        for port, addresses in listening_addresses({pid}).items():
            entry = result.setdefault(port, (set(), set()))
            entry[0].update(addresses)
            entry[1].add(_process_name(pid))
    return result


def test_listening_ports_are_documented(secure_server: ServerProcess) -> None:
    ports = _listening_by_process(secure_server.pids())
    report = {
        str(port): {"addresses": sorted(addresses), "processes": sorted(processes)}
        for port, (addresses, processes) in sorted(ports.items())
    }
    print(json.dumps(report, indent=2))
    path = os.environ.get("MICROBANDIT_PORTS_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")

    service_ports = [int(address.rsplit(":", 1)[1]) for address in _addresses(secure_server)]
    service_ports.append(secure_server.http_port)
    for port in service_ports:
        assert port in ports, f"port {port} is not listening"
        assert ports[port][0] <= LOOPBACK, f"port {port} listens on {ports[port][0]}"
    assert DASHBOARD_PORT not in ports, "Ray's dashboard is listening although server.dashboard is false"
