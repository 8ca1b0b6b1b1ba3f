"""The Ray Serve application: a Decider deployment and one learner actor per policy.

The ``Decider`` deployment is the gRPC ingress: Ray Serve routes every
``microbandit.v1.DecisionService`` call to one of its replicas, which decides
Choose and ChooseBatch from its own model snapshots and forwards Reward,
Activate and GetPolicy to the policy's learner. The decision path stays in
one deployment because each extra deployment hop costs a handle call.

Each policy has one learner, a named Ray actor (``LearnerActor``) that is
the only writer of the policy's model and event log. Deciders push decision
records to it in batches every ``decision_flush_interval_seconds`` (without
blocking replies), and poll it for a newer model every policy's
``model_update_interval_seconds``.

``build_app`` is a Ray Serve application builder, so the same application
runs under ``microbandit serve``, ``serve run serving.app:build_app
config=FILE`` and ``serve deploy``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from pathlib import Path
from typing import Any

import ray
from ray import serve

from bandit.errors import UnknownEventError
from bandit.eventlog import MergeJob, write_batch, write_merge
from bandit.events import DecisionRecord, RewardStatus
from bandit.join import ActivationStatus
from protos.microbandit.v1 import decision_service_pb2 as pb
from serving._private.convert import decision_response, learning_mode_to_proto, reward_status_to_proto
from serving._private.grpc_service import SERVICER_FUNCTION as GRPC_SERVICER_FUNCTION
from serving._private.keys import load_auth_token, load_user_id_key
from serving._private.transport import ActionDecoder, PackedDecision, pack_decisions
from serving.config import MicrobanditConfig, load_config
from serving.decider import DeciderCore
from serving.errors import LearnerUnavailableError, status_for
from serving.learner import UNKNOWN_EVENT, LearnerService

__all__ = [
    "LearnerActor",
    "Decider",
    "build_app",
    "build_application",
    "get_or_create_learner",
    "learner_actor_name",
    "SERVICER_FUNCTION",
    "LEARNER_NAMESPACE",
]

logger = logging.getLogger(__name__)

SERVICER_FUNCTION = GRPC_SERVICER_FUNCTION
"""Import path Ray Serve's gRPC options need to register the service."""
LEARNER_NAMESPACE = "microbandit"
"""Ray namespace of the learner actors."""
_TICK_INTERVAL = 0.1
# Seconds between learner timer ticks. A reward window closes at most this late.
_MAX_IN_FLIGHT_PUSHES = 8
# Decision pushes a decider keeps unacknowledged before it waits for one.
_UNKNOWN_EVENT_WAIT_FLUSHES = 3
# A Reward or Activate for an unknown event waits this many decision-flush
# intervals, so that a decision still buffered in another replica arrives first.


_LOOP_PROBE_INTERVAL = 0.02
# Seconds between measurements of a decider replica's event-loop delay.
_LEARNER_INFO_TIMEOUT = 2.0
# Seconds GetPolicy waits for the learner before it answers from the replica.


def _consume_exception(task: asyncio.Task[None]) -> None:
    # The exception of a background push is logged where it is raised.
    if not task.cancelled():
        task.exception()


def learner_actor_name(policy: str) -> str:
    """Return the Ray actor name of a policy's learner."""
    return f"learner-{policy}"


# Ray records task events in the GCS for every actor call unless told not
# to. With a call per decision push and per reward, the GCS process grew
# about 30 MiB a minute under the load of benchmarks/soak.py.
@ray.remote(max_restarts=3, max_task_retries=0, enable_task_events=False)
class LearnerActor:
    """Ray actor around :class:`~serving.learner.LearnerService`.

    Methods run on one event loop, one at a time between awaits, so the
    service needs no locks. A timer task ticks the service every 0.1 s and
    writes buffered records to the event log every
    ``log_sync_interval_seconds``.

    Reward and Activate answer only after their record, and every record
    appended before it, is in a complete, fsynced segment (group commit:
    one segment write serves every call that arrived while the previous
    write ran). Segments are written in a worker thread so that decisions
    and model requests keep flowing meanwhile. Every
    ``checkpoint_interval_seconds`` the segments written since the last
    merge are merged into one, so the count of files stays small.
    """

    def __init__(self, config_json: str, policy: str) -> None:
        config = MicrobanditConfig.model_validate_json(config_json)
        self.service = LearnerService(config.policy(policy), config.server, time.time)
        self._flush_interval = config.server.decision_flush_interval_seconds
        self._decoder = ActionDecoder()
        self._closed = False
        self._timer: asyncio.Task[None] | None = None
        self._writing: asyncio.Task[None] | None = None
        self._merging: asyncio.Task[None] | None = None
        self._merge_interval = config.server.checkpoint_interval_seconds
        self._last_merge = time.monotonic()
        self.group_commits = 0
        self.committed_calls = 0

    def _ensure_timer(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        while not self._closed:
            try:
                if self.service.flush_due():
                    await self._make_durable()
                await self._wait_for_writer()
                self.service.tick()
                self._start_merge()
            except Exception:  # the next tick retries, and the traceback is logged
                logger.exception("learner tick of policy %r failed", self.service.settings.name)
            await asyncio.sleep(_TICK_INTERVAL)

    def _start_merge(self) -> None:
        """Merge the small segments of the last checkpoint interval in the background."""
        log = self.service.learner.log
        now = time.monotonic()
        if log is None or self._merging is not None or now - self._last_merge < self._merge_interval:
            return
        self._last_merge = now
        job = log.take_merge()
        if job is not None:
            self._merging = asyncio.get_running_loop().create_task(self._merge(job))

    async def _merge(self, job: MergeJob) -> None:
        log = self.service.learner.log
        assert log is not None
        try:
            path = await asyncio.to_thread(write_merge, job)
        except Exception:  # the segments stay as they are, and the next interval retries
            log.end_merge(job, None)
            logger.exception("merging %d segments of policy %r failed", len(job.segments), self.service.settings.name)
        else:
            log.end_merge(job, path)
        finally:
            self._merging = None

    # -- durability -----------------------------------------------------------

    async def _wait_for_writer(self) -> None:
        """Wait until no segment write is in flight, so a synchronous flush may run."""
        while self._writing is not None:
            try:
                await asyncio.shield(self._writing)
            except Exception:  # the caller that started the write reports it
                pass

    async def _make_durable(self) -> None:
        """Return once every record appended so far is in a complete segment.

        Raises
        ------
        EventLogError
            If the segment cannot be written; the records stay buffered and
            the next write retries them.
        """
        log = self.service.learner.log
        if log is None:
            return
        target = log.appended
        while log.durable < target:
            if self._writing is None:
                self._writing = asyncio.get_running_loop().create_task(self._write_segment())
            await asyncio.shield(self._writing)

    async def _write_segment(self) -> None:
        log = self.service.learner.log
        assert log is not None
        try:
            batch = log.take_batch()
            if batch is None:
                return
            try:
                written = await asyncio.to_thread(write_batch, batch)
            except BaseException:
                log.restore_batch(batch)
                raise
            log.commit_batch(batch, written)
            self.service.mark_flushed()
            self.group_commits += 1
        finally:
            self._writing = None

    async def _commit(self) -> None:
        self.committed_calls += 1
        await self._make_durable()

    async def ready(self) -> int:
        """Start the timer and return the published model version."""
        self._ensure_timer()
        return self.service.published.version

    async def submit_decisions(self, rows: list[PackedDecision]) -> int:
        """Record a batch of decision records (packed by the decider); return how many were new."""
        self._ensure_timer()
        return self.service.submit_decisions(self._decoder.unpack(rows))

    async def reward(self, event_id: str, value: float, reward_id: str | None, timestamp: float) -> str:
        """Record a reward, waiting briefly for a decision still in flight; return its status value."""
        self._ensure_timer()
        await self._wait_for_decision(event_id)
        status = self.service.reward(event_id, value, reward_id, timestamp)
        await self._commit()
        return status.value

    async def _wait_for_decision(self, event_id: str) -> None:
        # Another replica may still buffer the decision, for at most one flush interval.
        for _ in range(_UNKNOWN_EVENT_WAIT_FLUSHES):
            if self.service.knows(event_id):
                return
            await asyncio.sleep(self._flush_interval)

    async def activate(self, event_id: str, timestamp: float) -> str:
        """Activate a deferred decision, waiting briefly for a decision still in flight."""
        self._ensure_timer()
        await self._wait_for_decision(event_id)
        status = self.service.activate(event_id, timestamp)
        if status != UNKNOWN_EVENT:
            await self._commit()
        return status

    async def latest_model(self, known_version: int) -> tuple[int, bytes, int, float] | None:
        """Return (version, checkpoint bytes, pending decisions, publication time) when newer than ``known_version``."""
        self._ensure_timer()
        published = self.service.latest_model(known_version)
        if published is None:
            return None
        pending = self.service.learner.joiner.pending_count
        return published.version, published.checkpoint, pending, published.published_at

    async def recent_decisions(self, limit: int) -> list[PackedDecision]:
        """Return the newest ``limit`` decisions still waiting for their reward window, packed."""
        return pack_decisions(self.service.learner.joiner.newest_pending(limit))

    async def pending(self) -> int:
        """Return the number of decisions waiting for their reward window."""
        return self.service.learner.joiner.pending_count

    async def info(self) -> dict[str, Any]:
        """Return the GetPolicy counters."""
        return self.service.info()

    async def checkpoint(self) -> int:
        """Flush the log and checkpoint now; return the model version."""
        await self._wait_for_writer()
        self.service.checkpoint()
        return self.service.published.version

    async def durability(self) -> dict[str, int]:
        """Return the counters of the event-log writes: segments, group commits and calls that waited for one."""
        log = self.service.learner.log
        return {
            "segments_written": log.segments_written if log is not None else 0,
            "merges": log.merges if log is not None else 0,
            "group_commits": self.group_commits,
            "committed_calls": self.committed_calls,
        }

    async def close(self) -> int:
        """Write the final checkpoint and stop the timer; return the model version."""
        if not self._closed:
            self._closed = True
            await self._wait_for_writer()
            if self._merging is not None:
                await asyncio.shield(self._merging)
            self.service.close()
            log = self.service.learner.log
            if log is not None:
                log.merge()
        return self.service.published.version


def get_or_create_learner(config: MicrobanditConfig, policy: str) -> ray.actor.ActorHandle:
    """Return the learner actor of a policy, creating it when it does not exist.

    The actor is detached, so it outlives the deployment that created it.
    ``microbandit serve`` closes and kills it at shutdown.

    NOTE: an existing learner keeps the settings it started with; after
    ``serve deploy`` of a changed policy configuration, kill the policy's
    learner actor so the new settings take effect.
    """
    return LearnerActor.options(  # type: ignore[attr-defined]
        name=learner_actor_name(policy),
        namespace=LEARNER_NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=config.server.learner_cpus,
    ).remote(config.model_dump_json(), policy)


class Decider:
    """Ray Serve deployment class of the gRPC DecisionService.

    Parameters
    ----------
    config_json : str
        The validated configuration as JSON.
    """

    async def __init__(self, config_json: str) -> None:
        # Set first: Serve calls __del__ even when this constructor fails.
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self.config = MicrobanditConfig.model_validate_json(config_json)
        self.core = DeciderCore(
            self.config, load_user_id_key(self.config), time.time, auth_token=load_auth_token(self.config)
        )
        self.learners = {p.name: get_or_create_learner(self.config, p.name) for p in self.config.policies}
        self._pushes: dict[asyncio.Task[None], str] = {}
        # Per policy: when the model in use was published (learner clock,
        # seconds since the epoch), and decision records dropped here.
        self._model_published_at = {name: time.time() for name in self.learners}
        self._decisions_dropped = {name: 0 for name in self.learners}
        # Records the learner accepted but may not have written yet: a
        # learner that dies loses up to log_sync_interval_seconds of them,
        # so they are sent again after a failed push (the learner drops
        # event ids it already logged).
        self._retain_seconds = 2 * self.config.server.log_sync_interval_seconds + 1.0
        self._unwritten: dict[str, collections.deque[tuple[float, list[DecisionRecord]]]] = {
            name: collections.deque() for name in self.learners
        }
        for name, learner in self.learners.items():
            await learner.ready.remote()
            await self._update_model(name, learner)
            await self._remember_logged_decisions(name, learner)
        self._closing = False
        loop = asyncio.get_running_loop()
        self._loop_delay = 0.0
        self._max_loop_delay = self.config.server.max_queue_delay_seconds
        self.shed_requests = 0
        self._tasks = [loop.create_task(self._flush_loop()), loop.create_task(self._measure_loop_delay())]
        self._tasks += [loop.create_task(self._model_loop(name)) for name in self.learners]
        logger.info("decider started with policies %s", sorted(self.learners))

    async def _remember_logged_decisions(self, name: str, learner: ray.actor.ActorHandle) -> None:
        """Fill the replay memory with the decisions the learner holds, so a repeated id gets the logged one.

        A replica that starts after a crash (or next to others) has no
        memory of earlier decisions; without this, a client that repeats an
        event id would get a new decision while rewards join the logged one.
        """
        memory = self.config.server.event_id_memory
        if memory == 0:
            return
        rows = await learner.recent_decisions.remote(memory)
        slot = self.core.slots[name]
        for record in ActionDecoder().unpack(rows):
            slot.recent[record.event_id] = decision_response(record).SerializeToString()
        if rows:
            logger.info("policy %r: replay memory holds %d decisions logged before this replica started", name, len(rows))

    # -- background work ------------------------------------------------------

    async def _update_model(self, name: str, learner: ray.actor.ActorHandle) -> None:
        slot = self.core.slots[name]
        published = await learner.latest_model.remote(slot.model_version)
        if published is None:
            slot.learner_pending = await learner.pending.remote()
            return
        version, checkpoint, pending, published_at = published
        slot.learner_pending = pending
        self.core.install_model(name, checkpoint)
        self._model_published_at[name] = published_at or time.time()
        logger.info("policy %r now decides with model version %d", name, version)

    async def _model_loop(self, name: str) -> None:
        interval = self.config.policy(name).model_update_interval_seconds
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self._update_model(name, self.learners[name])
            except Exception:  # retried at the next interval
                logger.exception("model update of policy %r failed", name)

    async def _push(self, name: str, wait: bool) -> None:
        """Send a policy's buffered decisions to its learner.

        With ``wait`` it also waits for earlier pushes of the policy, so that
        a Reward or Activate forwarded next reaches the learner after every
        decision this replica made before it (an async actor does not keep
        the order of calls).
        """
        if wait:
            earlier = [task for task, policy in self._pushes.items() if policy == name]
            if earlier:
                await asyncio.gather(*earlier, return_exceptions=True)
        records = self.core.take_buffer(name)
        if not records:
            return
        reference = self.learners[name].submit_decisions.remote(pack_decisions(records))
        if wait:
            await self._confirm_push(name, records, reference, reraise=True)
            return
        task = asyncio.get_running_loop().create_task(self._confirm_push(name, records, reference, reraise=False))
        self._pushes[task] = name
        task.add_done_callback(lambda done: self._pushes.pop(done, None))

    async def _confirm_push(self, name: str, records: list[DecisionRecord], reference: Any, reraise: bool) -> None:
        try:
            await reference
        except Exception:
            # The learner deduplicates event ids, so sending these again is safe.
            retained = self._unwritten[name]
            if retained:
                logger.warning(
                    "resending %d decisions of policy %r accepted by the learner in the last %.1f s",
                    sum(len(batch) for _, batch in retained),
                    name,
                    self._retain_seconds,
                )
                records = [record for _, batch in retained for record in batch] + records
                retained.clear()
            dropped = self.core.return_to_buffer(name, records)
            self._decisions_dropped[name] += dropped
            logger.exception(
                "pushing %d decisions of policy %r failed; %d dropped (%d since start), the rest are resent",
                len(records),
                name,
                dropped,
                self._decisions_dropped[name],
            )
            if reraise:
                raise
            return
        now = time.monotonic()
        retained = self._unwritten[name]
        retained.append((now, records))
        while retained and now - retained[0][0] > self._retain_seconds:
            retained.popleft()

    async def _measure_loop_delay(self) -> None:
        """Track how late the replica's event loop runs, which is how long admitted requests wait.

        Choose runs VW without awaiting, so the requests Ray Serve admits
        (up to ``max_ongoing_requests``) run one after another on this loop;
        with heavy requests (large ChooseBatch calls) they would wait until
        their deadline passes.
        """
        loop = asyncio.get_running_loop()
        reported = 0
        while not self._closing:
            started = loop.time()
            await asyncio.sleep(_LOOP_PROBE_INTERVAL)
            self._loop_delay = loop.time() - started - _LOOP_PROBE_INTERVAL
            if self.shed_requests != reported and self._loop_delay <= self._max_loop_delay:
                logger.warning(
                    "overloaded: rejected %d Choose and ChooseBatch calls with UNAVAILABLE (%d since start)",
                    self.shed_requests - reported,
                    self.shed_requests,
                )
                reported = self.shed_requests

    def _check_overload(self) -> None:
        if self._loop_delay > self._max_loop_delay:
            self.shed_requests += 1
            raise LearnerUnavailableError(
                f"the decider replica is overloaded: requests wait {self._loop_delay:.2f} s, more than "
                f"max_queue_delay_seconds {self._max_loop_delay}; retry later"
            )

    async def _flush_loop(self) -> None:
        interval = self.config.server.decision_flush_interval_seconds
        while not self._closing:
            await asyncio.sleep(interval)
            if len(self._pushes) >= _MAX_IN_FLIGHT_PUSHES:
                await asyncio.wait(list(self._pushes), return_when=asyncio.FIRST_COMPLETED)
            for name in self.learners:
                await self._push(name, wait=False)

    async def __del__(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if not hasattr(self, "_pushes"):  # the constructor failed before the replica could decide
            return
        for name in self.learners:
            try:
                await self._push(name, wait=True)
            except Exception:
                logger.exception("final push of policy %r decisions failed", name)
        if self._pushes:
            await asyncio.gather(*list(self._pushes), return_exceptions=True)
        self.core.close()
        logger.info("decider stopped")

    # -- RPC handlers ---------------------------------------------------------

    @staticmethod
    def _fail(grpc_context: Any, error: BaseException, empty: Any) -> Any:
        code, message = status_for(error)
        grpc_context.set_code(code)
        grpc_context.set_details(message)
        return empty

    async def Choose(self, request: pb.ChooseRequest, grpc_context: Any) -> pb.ChooseResponse:  # noqa: N802 - gRPC method name
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            self._check_overload()
            return self.core.choose(request)
        except Exception as error:
            return self._fail(grpc_context, error, pb.ChooseResponse())

    async def ChooseBatch(self, request: pb.ChooseBatchRequest, grpc_context: Any) -> pb.ChooseBatchResponse:  # noqa: N802
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            self._check_overload()
            return self.core.choose_batch(request)
        except Exception as error:
            return self._fail(grpc_context, error, pb.ChooseBatchResponse())

    async def Reward(self, request: pb.RewardRequest, grpc_context: Any) -> pb.RewardResponse:  # noqa: N802
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            reward = self.core.reward_input(request)
            await self._push(reward.policy, wait=True)
            status = await self.learners[reward.policy].reward.remote(
                reward.event_id, reward.value, reward.reward_id, time.time()
            )
            return pb.RewardResponse(status=reward_status_to_proto(RewardStatus(status)))
        except Exception as error:
            return self._fail(grpc_context, error, pb.RewardResponse())

    async def Activate(self, request: pb.ActivateRequest, grpc_context: Any) -> pb.ActivateResponse:  # noqa: N802
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            policy, event_id = self.core.activate_input(request)
            await self._push(policy, wait=True)
            status = await self.learners[policy].activate.remote(event_id, time.time())
            if status == UNKNOWN_EVENT:
                raise UnknownEventError(f"event_id {event_id!r} is not a known decision of policy {policy!r}")
            return pb.ActivateResponse(activated=status == ActivationStatus.ACTIVATED)
        except Exception as error:
            return self._fail(grpc_context, error, pb.ActivateResponse())

    def _local_policy_info(self, name: str) -> pb.PolicyInfo:
        """Return what this replica knows of a policy while its learner is unreachable."""
        slot = self.core.slots[name]
        published = slot.model_version > 0
        return pb.PolicyInfo(
            name=name,
            settings_json=slot.config.settings_json(),
            vw_args=slot.settings.vw_command(),
            learning_mode=learning_mode_to_proto(slot.settings.learning_mode),
            model_version=slot.model_version,
            last_model_update_unix_seconds=self._model_published_at[name] if published else 0.0,
            apprentice_match_rate=math.nan,
            model_update_interval_seconds=slot.config.model_update_interval_seconds,
            model_age_seconds=max(0.0, time.time() - self._model_published_at[name]) if published else 0.0,
            learner_available=False,
            decisions_lost=self._decisions_dropped[name],
        )

    async def _policy_info(self, name: str) -> pb.PolicyInfo:
        try:
            info = await self.learners[name].info.remote()
        except ray.exceptions.RayActorError as error:
            logger.warning("learner of policy %r is unreachable, GetPolicy answers from the replica: %s", name, error)
            return self._local_policy_info(name)
        mode = self.core.slots[name].settings.learning_mode
        slot = self.core.slots[name]
        model_age = max(0.0, time.time() - self._model_published_at[name]) if slot.model_version > 0 else 0.0
        return pb.PolicyInfo(
            name=info["name"],
            settings_json=info["settings_json"],
            vw_args=info["vw_args"],
            learning_mode=learning_mode_to_proto(mode),
            model_version=info["model_version"],
            examples_learned=info["examples_learned"],
            decisions=info["decisions"],
            rewards=info["rewards"],
            last_model_update_unix_seconds=info["last_model_update"],
            apprentice_match_rate=info["apprentice_match_rate"],
            pending_decisions=info["pending"],
            model_update_interval_seconds=info["model_update_interval"],
            model_age_seconds=model_age,
            learner_available=True,
            decisions_lost=self._decisions_dropped[name] + int(info["dropped_decisions"]),
        )

    async def GetPolicy(self, request: pb.GetPolicyRequest, grpc_context: Any) -> pb.PolicyInfo:  # noqa: N802
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            self.core.check_size(request)
            slot = self.core.slot(request.policy)
            name = slot.settings.name
            # A restarting learner may hold calls until it is back; GetPolicy
            # must still answer, so it waits a bounded time. The push goes on
            # in the background, and failed records return to the buffer.
            push = asyncio.get_running_loop().create_task(self._push(name, wait=True))
            push.add_done_callback(_consume_exception)
            try:
                await asyncio.wait_for(asyncio.shield(push), _LEARNER_INFO_TIMEOUT)
                return await asyncio.wait_for(self._policy_info(name), _LEARNER_INFO_TIMEOUT)
            except (ray.exceptions.RayActorError, asyncio.TimeoutError) as error:
                logger.warning("learner of policy %r did not answer, GetPolicy answers from the replica: %r", name, error)
                return self._local_policy_info(name)
        except Exception as error:
            return self._fail(grpc_context, error, pb.PolicyInfo())

    async def ListPolicies(self, request: pb.ListPoliciesRequest, grpc_context: Any) -> pb.ListPoliciesResponse:  # noqa: N802
        try:
            self.core.authenticate(grpc_context.invocation_metadata())
            infos = [await self._policy_info(name) for name in sorted(self.learners)]
            return pb.ListPoliciesResponse(policies=infos)
        except Exception as error:
            return self._fail(grpc_context, error, pb.ListPoliciesResponse())


def build_application(config: MicrobanditConfig) -> serve.Application:
    """Return the bound Serve application of a configuration."""
    server = config.server
    deployment = serve.deployment(
        Decider,
        name="Decider",
        num_replicas=server.decider_replicas,
        max_ongoing_requests=server.max_ongoing_requests,
        max_queued_requests=server.max_queued_requests,
        ray_actor_options={"num_cpus": server.decider_cpus},
        logging_config={"enable_access_log": server.access_log},
        graceful_shutdown_timeout_s=10,
    )
    return deployment.bind(config.model_dump_json())


def build_app(args: dict[str, str]) -> serve.Application:
    """Ray Serve application builder: ``serve run serving.app:build_app config=FILE``.

    Without ``config`` the embedded example configuration is used.
    """
    unknown = set(args) - {"config"}
    if unknown:
        raise ValueError(f"unknown application arguments {sorted(unknown)}; only 'config' is accepted")
    path = args.get("config")
    config = load_config(Path(path) if path else None)
    return build_application(config)
