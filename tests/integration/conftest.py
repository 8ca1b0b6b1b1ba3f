"""Fixtures that run the real server: ``microbandit serve`` in a subprocess on loopback.

The server starts once per test session (Ray start-up takes about 15 s) on
free loopback ports with a temporary data directory, and is stopped with
SIGTERM to its whole process group at the end. Tests that restart it use
:meth:`ServerProcess.stop` and :meth:`ServerProcess.start` on the same data
directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

READY_LINE = "microbandit: ready"
START_TIMEOUT = 240.0
STOP_TIMEOUT = 120.0
MAX_MESSAGE_BYTES = 64 * 1024
MAX_ACTIONS = 20
SYNTHETIC_POLICY = "synthetic"
CONSENT_POLICY = "strict_consent"
FUZZ_POLICY = "fuzz"
FUZZ_MAX_ACTIONS = 5000
MINIMAL_POLICY = "minimal"
MINIMAL_NAMESPACES = ["user", "look"]
AUTH_TOKEN_ENV = "MICROBANDIT_TEST_TOKEN"
_ADDRESS_LINE = re.compile(r"microbandit: gRPC DecisionService on (\S+) \((.+)\)")
_REPO = Path(__file__).resolve().parents[2]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int) -> int:
    """Return the first of ``count`` consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count < 65535 and all(_port_is_free(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"found no block of {count} free loopback ports")


def server_config(
    data_dir: Path, grpc_port: int, decider_replicas: int = 1, auth_token_env: str | None = None
) -> dict[str, object]:
    """Return the integration-test configuration."""
    return {
        "server": {
            "auth_token_env": auth_token_env,
            "grpc_port": grpc_port,
            "direct_ingress_port_range": [grpc_port + 2, grpc_port + 12],
            "data_dir": str(data_dir),
            "decider_replicas": decider_replicas,
            "max_message_bytes": MAX_MESSAGE_BYTES,
            "checkpoint_interval_seconds": 20,
            # Far longer than a test session: the sweep runs and must delete nothing.
            "retention_days": 30,
        },
        "policies": [
            {
                "name": SYNTHETIC_POLICY,
                "exploration": {"type": "squarecb", "gamma_scale": 10.0, "gamma_exponent": 0.5},
                "interactions": [["context.*", "action.*"]],
                "seed": 3,
                "max_actions": MAX_ACTIONS,
                "reward_range": [0.0, 1.0],
                "model_update_interval_seconds": 0.5,
                "join": {"reward_wait_time_seconds": 600, "aggregation": "earliest", "default_reward": 0.0},
            },
            {
                "name": CONSENT_POLICY,
                "require_consent": True,
                "model_update_interval_seconds": 0.5,
            },
            {
                # Receives the random and hostile requests of test_fuzz.py, away from the other policies' models.
                "name": FUZZ_POLICY,
                "max_actions": FUZZ_MAX_ACTIONS,
                "reward_range": [-1.0, 1.0],
                "model_update_interval_seconds": 0.5,
                "join": {"reward_wait_time_seconds": 600, "aggregation": "earliest"},
            },
            {
                # Data minimization and erasure of test_privacy.py: undeclared namespaces are dropped.
                "name": MINIMAL_POLICY,
                "accepted_namespaces": MINIMAL_NAMESPACES,
                "undeclared_namespaces": "drop",
                # squarecb's PMF varies with every score, so a test can tell two models apart by it.
                "exploration": {"type": "squarecb", "gamma_scale": 10.0, "gamma_exponent": 0.5},
                "seed": 11,
                "model_update_interval_seconds": 0.5,
                "join": {"reward_wait_time_seconds": 600, "aggregation": "earliest"},
            },
        ],
    }


def _decode_address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp{,6} print each 32-bit word of the address in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def listening_addresses(pids: set[int]) -> dict[int, set[str]]:
    """Return port -> listening IP addresses of the TCP sockets the given processes hold."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    result: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            listening = fields[3] == "0A"
            if listening and fields[9] in inodes:
                ip, port = _decode_address(fields[1])
                result.setdefault(port, set()).add(ip)
    return result


class ServerProcess:
    """One ``microbandit serve`` subprocess in its own session."""

    def __init__(self, workdir: Path, decider_replicas: int = 1, auth_token: str | None = None) -> None:
        self.workdir = workdir
        self.auth_token = auth_token
        self.data_dir = workdir / "data"
        base = free_port_block(14)
        self.grpc_port = base + 1
        self.http_port = base
        self.config_path = workdir / "server.yaml"
        token_env = AUTH_TOKEN_ENV if auth_token else None
        self.config_path.write_text(
            yaml.safe_dump(server_config(self.data_dir, self.grpc_port, decider_replicas, token_env))
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server-0.log"
        self.starts = 0
        self.proxy_address = ""
        self.replica_addresses: list[str] = []

    @property
    def address(self) -> str:
        """The fastest gRPC address: the first decider replica's own port."""
        return self.replica_addresses[0] if self.replica_addresses else self.proxy_address

    def start(self) -> None:
        """Start the server and wait until it prints that it is ready."""
        self.log_path = self.workdir / f"server-{self.starts}.log"
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "serving.cli",
            "serve",
            "--config",
            str(self.config_path),
            "--http-port",
            str(self.http_port),
        ]
        env = dict(os.environ)
        if self.auth_token:
            env[AUTH_TOKEN_ENV] = self.auth_token
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=_REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if READY_LINE in text:
                self._read_addresses(text)
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode} during start-up:\n{text[-4000:]}")
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"server not ready within {START_TIMEOUT} s:\n{self.log_path.read_text()[-4000:]}")

    def _read_addresses(self, text: str) -> None:
        self.replica_addresses = []
        for address, kind in _ADDRESS_LINE.findall(text):
            if kind.startswith("Ray Serve proxy"):
                self.proxy_address = address
            else:
                self.replica_addresses.append(address)

    def pids(self) -> list[int]:
        """Return the process ids of the server's session (the server, Ray daemons and workers)."""
        assert self.process is not None
        session = self.process.pid
        result = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) == session:
                    result.append(int(entry.name))
            except OSError:
                continue
        return result

    def learner_pids(self) -> list[int]:
        """Return the process ids of the server's learner actors (one per policy)."""
        result = []
        for pid in self.pids():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name.startswith("ray::LearnerAct"):
                result.append(pid)
        return result

    def stop(self) -> int:
        """Send SIGTERM to the whole process group and return the server's exit status."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Kill every process of the server's session."""
        if self.process is None:
            return
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running server, started once per session and stopped at its end."""
    process = ServerProcess(tmp_path_factory.mktemp("microbandit-server"))
    process.start()
    try:
        yield process
    finally:
        if process.running:
            try:
                process.stop()
            except subprocess.TimeoutExpired:
                pass
