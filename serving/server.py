"""Start and stop the server on a local, single-node Ray: what ``microbandit serve`` runs.

:func:`start_server` sets Ray Serve's environment for the chosen ingress
mode, starts a local Ray (dashboard off unless configured, Serve's gRPC
servers on 127.0.0.1), creates the learners, deploys the application and
returns where it listens. :func:`stop_server` shuts down in the order that
loses nothing: the application first (each decider pushes its buffered
decisions), then each learner (flush and final checkpoint), then Serve and
Ray. :func:`serve_forever` does both around a wait for SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bandit.errors import ConfigurationError
from serving._private.retention import RetentionSweeper
from serving.config import DEFAULT_APPLICATION_NAME, IngressMode, MicrobanditConfig, ServerConfig, check_environment

__all__ = ["RunningServer", "ray_environment", "start_server", "stop_server", "serve_forever", "ROUTE_PREFIX"]

logger = logging.getLogger(__name__)

ROUTE_PREFIX = "/microbandit"
"""Route prefix of the application; Serve's gRPC ingress needs one."""
_LOOPBACK_HOOK = "serving._private.loopback.bind_loopback"
_TARGETS_TIMEOUT = 60.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ray_environment(server: ServerConfig) -> dict[str, str]:
    """Return the environment variables Ray Serve reads for the configured ingress.

    Ray Serve reads these when its modules are imported in each Ray process,
    so they must be in the environment before Ray starts.
    """
    env = {"RAY_SERVE_GRPC_MAX_MESSAGE_SIZE": str(server.max_message_bytes)}
    if server.ingress in (IngressMode.DIRECT, IngressMode.THROUGHPUT_OPTIMIZED):
        first, last = server.replica_port_range
        env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] = str(first)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"] = str(last)
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = repr(server.drain_seconds)
    if server.ingress is IngressMode.THROUGHPUT_OPTIMIZED:
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    return env


@dataclass
class RunningServer:
    """A server started by :func:`start_server`."""

    config: MicrobanditConfig
    proxy_address: str
    replica_addresses: list[str]
    learners: dict[str, Any] = field(default_factory=dict)
    lock_descriptor: int | None = None
    retention: RetentionSweeper | None = None

    @property
    def addresses(self) -> list[str]:
        """gRPC targets for clients, fastest first: replicas' own ports, then the proxy."""
        return [*self.replica_addresses, self.proxy_address]


def _replica_addresses(config: MicrobanditConfig) -> list[str]:
    """Return the direct-ingress gRPC addresses of the decider replicas, waiting until all run."""
    if config.server.ingress is IngressMode.PROXY:
        return []
    from ray.serve.context import _get_global_client

    # NOTE: Ray Serve 2.60 has no public call that lists replica ports; the
    # controller's target groups are what external load balancers use.
    controller = _get_global_client()._controller
    deadline = time.monotonic() + _TARGETS_TIMEOUT
    while True:
        import ray

        groups = ray.get(controller.get_target_groups.remote(DEFAULT_APPLICATION_NAME))
        ports = sorted(
            target.port
            for group in groups
            if str(getattr(group.protocol, "value", group.protocol)).lower() == "grpc"
            for target in group.targets
            if target.port != config.server.grpc_port
        )
        if len(ports) >= config.server.decider_replicas or time.monotonic() > deadline:
            return [f"127.0.0.1:{port}" for port in ports]
        time.sleep(0.2)


def _check_ports_free(ports: dict[str, int]) -> None:
    """Raise ConfigurationError for a port another process listens on.

    Ray Serve does not report a busy port to its caller: the proxy fails in
    its own process and the start waits. The check can still race with
    another process that binds the port right after it.
    """
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                raise ConfigurationError(
                    f"{name} {port} is not available on 127.0.0.1 ({error.strerror}); stop the other server or "
                    "choose another port"
                ) from None


def _init_ray(server: ServerConfig) -> None:
    import ray

    from serving.app import LEARNER_NAMESPACE

    ray.init(
        address="local",
        num_cpus=server.ray_cpus,
        include_dashboard=server.dashboard,
        dashboard_host="127.0.0.1",
        namespace=LEARNER_NAMESPACE,
        runtime_env={"worker_process_setup_hook": _LOOPBACK_HOOK},
        log_to_driver=True,
        logging_level=logging.WARNING,
    )


def start_server(config: MicrobanditConfig, http_port: int | None = None) -> RunningServer:
    """Start a local Ray, the learners and the Serve application; return where it listens.

    Parameters
    ----------
    config : MicrobanditConfig
        The validated configuration.
    http_port : int, optional
        Port of Serve's HTTP proxy (health routes only), on 127.0.0.1;
        default ``grpc_port - 1``.

    The server holds the data directory's lock (``server.lock``) until
    :func:`stop_server`, and with ``server.retention_days`` runs the
    retention sweep on a thread of this process.

    Raises
    ------
    ConfigurationError
        If the data directory is not writable, a key, token or TLS file is
        missing, or a port is taken; the message names the field.
    DataDirectoryInUseError
        If another server holds the data directory.
    """
    server = config.server
    from bandit.maintenance import acquire_data_dir_lock
    from serving._private.keys import load_auth_token, load_user_id_key

    # Fail before Ray starts, with the field named, not later in every replica.
    check_environment(config)
    load_auth_token(config)
    _check_ports_free({"server.grpc_port": server.grpc_port, "--http-port": http_port or server.grpc_port - 1})
    lock_descriptor = acquire_data_dir_lock(config.data_path())
    try:
        load_user_id_key(config)
        running = _start_ray_and_app(config, http_port, lock_descriptor)
    except BaseException:
        os.close(lock_descriptor)
        raise
    if server.retention_days is not None:
        running.retention = RetentionSweeper(
            config.data_path(), server.retention_days, server.retention_check_interval_seconds, time.time
        )
        running.retention.start()
    return running


def _start_ray_and_app(config: MicrobanditConfig, http_port: int | None, lock_descriptor: int) -> RunningServer:
    server = config.server
    from serving._private.tls import tls_environment

    os.environ.update(ray_environment(server))
    tls = server.tls
    os.environ.update(tls_environment(tls.cert_file if tls else None, tls.key_file if tls else None))
    import ray
    from ray import serve
    from ray.serve.config import gRPCOptions, HTTPOptions

    from serving._private.grpc_service import SERVICER_FUNCTION
    from serving.app import build_application, get_or_create_learner

    config.data_path().mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Ray's daemons inherit the signal mask, so with SIGTERM blocked while
    # they start, a SIGTERM sent to the whole process group (a container
    # stop, `kill -- -PGID`) reaches only this process, which then stops them
    # in order. Ray itself blocks SIGINT in its daemons.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        _init_ray(server)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    serve.start(
        http_options=HTTPOptions(host="127.0.0.1", port=http_port if http_port is not None else server.grpc_port - 1),
        grpc_options=gRPCOptions(
            port=server.grpc_port,
            grpc_servicer_functions=[SERVICER_FUNCTION],
            request_timeout_s=server.request_timeout_seconds,
        ),
    )
    learners = {p.name: get_or_create_learner(config, p.name) for p in config.policies}
    versions = ray.get([learner.ready.remote() for learner in learners.values()])
    for name, version in zip(learners, versions):
        logger.info("learner of policy %r is ready at model version %d", name, version)
    serve.run(build_application(config), name=DEFAULT_APPLICATION_NAME, route_prefix=ROUTE_PREFIX)
    running = RunningServer(
        config=config,
        proxy_address=f"127.0.0.1:{server.grpc_port}",
        replica_addresses=_replica_addresses(config),
        learners=learners,
        lock_descriptor=lock_descriptor,
    )
    logger.info("server started in %.1f s", time.monotonic() - started)
    return running


def stop_server(running: RunningServer) -> None:
    """Stop the application, checkpoint every learner, then stop Serve and Ray."""
    import ray
    from ray import serve

    try:
        serve.delete(DEFAULT_APPLICATION_NAME)
    except Exception:  # the learners must still checkpoint
        logger.exception("deleting the Serve application failed")
    for name, learner in running.learners.items():
        try:
            version = ray.get(learner.close.remote(), timeout=120)
            logger.info("learner of policy %r wrote its final checkpoint at model version %d", name, version)
        except Exception:
            logger.exception("final checkpoint of policy %r failed", name)
        ray.kill(learner, no_restart=True)
    serve.shutdown()
    ray.shutdown()
    if running.retention is not None:
        running.retention.stop()
    if running.lock_descriptor is not None:
        os.close(running.lock_descriptor)
        running.lock_descriptor = None
    logger.info("server stopped")


def serve_forever(config: MicrobanditConfig, http_port: int | None = None) -> int:
    """Run the server until SIGINT or SIGTERM, then stop it cleanly; return the exit status."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in _STOP_SIGNALS}
    running = start_server(config, http_port)
    # ray.init may install its own handlers; the server's shutdown order must win.
    for sig in previous:
        signal.signal(sig, request_stop)
    try:
        security = ", TLS" if config.server.tls is not None else ""
        print(f"microbandit: gRPC DecisionService on {running.proxy_address} (Ray Serve proxy{security})", flush=True)
        for address in running.replica_addresses:
            print(
                f"microbandit: gRPC DecisionService on {address} (decider replica, direct ingress{security})",
                flush=True,
            )
        print(f"microbandit: data directory {config.data_path()}", flush=True)
        print("microbandit: ready", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        stop_server(running)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
