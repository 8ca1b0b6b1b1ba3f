"""A contextual-bandit policy: a VW ``--cb_explore_adf`` workspace and its settings.

The API speaks of rewards (higher is better); VW is given cost = -reward.
Probabilities are keyed by action id, so the order in which actions are sent
does not matter (up to exploration ties).

Sampling is reproducible: the uniform draw of a decision is the first 53 bits
of BLAKE2b over (policy seed, event id), a counter-based generator, so the
same event id always gives the same choice from the same PMF.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vowpalwabbit
import pylibvw  # the compiled binding shipped with the vowpalwabbit wheel

from bandit.baseline import choose_baseline
from bandit.errors import CheckpointError, InvalidPmfError
from bandit.events import DecisionRecord, JoinedEvent, LearningMode
from bandit.features import Action, Encoder, Namespaces, validate_actions, validate_namespaces
from bandit.settings import PolicySettings

__all__ = ["Policy", "validate_pmf", "uniform_draw", "sample_index", "PMF_TOLERANCE"]

logger = logging.getLogger(__name__)

PMF_TOLERANCE = 1e-6
"""Largest accepted distance of a PMF's sum from 1."""
_RAW_PMF_TOLERANCE = 1e-4
# VW returns float32 probabilities; their sum may drift from 1 by float32
# rounding. A raw sum within this distance is renormalized in float64; a
# larger deviation is a broken PMF and raises.
_ACTION_CACHE_SIZE = 64
_CHECKPOINT_MAGIC = b"MICROBANDIT-CHECKPOINT\x01"


def validate_pmf(probabilities: Sequence[float], n_actions: int) -> tuple[float, ...]:
    """Check a PMF and return it as float64 values summing to 1.

    Raises
    ------
    InvalidPmfError
        If the length differs from ``n_actions``, an entry is NaN or outside
        [0, 1], or the sum is further than ``1e-4`` from 1 before and
        :data:`PMF_TOLERANCE` after renormalization.
    """
    values = [float(p) for p in probabilities]
    if len(values) != n_actions:
        raise InvalidPmfError(f"PMF has {len(values)} entries for {n_actions} eligible actions")
    for index, p in enumerate(values):
        if not (0.0 <= p <= 1.0):  # also false for NaN
            raise InvalidPmfError(f"PMF entry {index} is {p!r}, outside [0, 1]")
    total = math.fsum(values)
    if abs(total - 1.0) > _RAW_PMF_TOLERANCE:
        raise InvalidPmfError(f"PMF sums to {total!r}, not 1")
    values = [p / total for p in values]
    if abs(math.fsum(values) - 1.0) > PMF_TOLERANCE:
        raise InvalidPmfError(f"PMF sums to {math.fsum(values)!r} after renormalization")
    return tuple(values)


def uniform_draw(seed: int, event_id: str) -> float:
    """Return a uniform number in [0, 1) determined by ``seed`` and ``event_id``."""
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8, key=struct.pack(">Q", seed))
    return (int.from_bytes(digest.digest(), "big") >> 11) / float(1 << 53)


def sample_index(pmf: Sequence[float], u: float) -> int:
    """Return the index whose cumulative-probability interval contains ``u``.

    Entries with probability 0 are never returned.
    """
    cumulative = 0.0
    last_positive = 0
    for index, p in enumerate(pmf):
        if p <= 0.0:
            continue
        cumulative += p
        last_positive = index
        if u < cumulative:
            return index
    return last_positive


class Policy:
    """One VW contextual-bandit model with its settings.

    Parameters
    ----------
    settings : PolicySettings
        Model, exploration and learning settings.
    model_version : int
        Version of the model held; restored from checkpoints.
    examples_learned : int
        Number of examples the model has learned.

    Notes
    -----
    Not thread-safe: VW holds the GIL for the whole call, so concurrency comes
    from processes, each with its own policy.
    """

    def __init__(
        self,
        settings: PolicySettings,
        *,
        model_version: int = 0,
        examples_learned: int = 0,
        _initial_model: Path | None = None,
    ) -> None:
        self.settings = settings
        self.model_version = model_version
        self.examples_learned = examples_learned
        self._encoder = Encoder(settings.layout)
        args = settings.vw_command()
        if _initial_model is not None:
            # The saved model carries VW's generator state (bag advances it),
            # and VW rejects a --random_seed that disagrees with it.
            seed_at = args.index("--random_seed")
            del args[seed_at : seed_at + 2]
            args += ["--initial_regressor", str(_initial_model)]
        self._vw_arguments = " ".join(args)
        self._workspace = vowpalwabbit.Workspace(self._vw_arguments)
        # Parsed action examples keyed by the actions' canonical keys. Reused
        # for prediction only; learning always parses fresh examples, because
        # finishing part of a learned multi-line example crashes VW 9.
        self._action_cache: OrderedDict[tuple[str, ...], list[Any]] = OrderedDict()
        self._accepted = frozenset(settings.accepted_namespaces) if settings.accepted_namespaces is not None else None
        self._dropped_reported: set[str] = set()

    # -- input ------------------------------------------------------------

    def _minimize(self, namespaces: Namespaces, owner: str) -> Namespaces:
        """Apply the accepted-namespaces setting (data minimization)."""
        if self._accepted is None:
            return namespaces
        undeclared = [name for name in namespaces if name not in self._accepted]
        if not undeclared:
            return namespaces
        if self.settings.undeclared_namespaces == "reject":
            raise ValueError(
                f"{owner} namespace {undeclared[0]!r} is not accepted by policy {self.settings.name!r}; "
                f"accepted namespaces: {sorted(self._accepted)}"
            )
        for name in undeclared:
            if name not in self._dropped_reported:
                # Logged once per namespace name, not per request.
                self._dropped_reported.add(name)
                logger.warning("policy %r drops undeclared %s namespace %r", self.settings.name, owner, name)
        return {name: features for name, features in namespaces.items() if name in self._accepted}

    def prepare(
        self, context: Namespaces, actions: Sequence[Action]
    ) -> tuple[Namespaces, tuple[Action, ...]]:
        """Validate a context and actions and apply data minimization."""
        context = self._minimize(validate_namespaces(context), "context")
        actions = validate_actions(actions, self.settings.max_actions)
        if self._accepted is not None:
            actions = tuple(
                action if all(ns in self._accepted for ns in action.features)
                else Action(action.id, self._minimize(action.features, f"action[{action.id!r}]"))
                for action in actions
            )
        return context, actions

    # -- prediction -------------------------------------------------------

    def _eligible(self, actions: tuple[Action, ...], excluded_ids: Sequence[str]) -> tuple[Action, ...]:
        if excluded_ids:
            excluded = set(excluded_ids)
            actions = tuple(a for a in actions if a.id not in excluded)
        if not actions:
            raise ValueError("no eligible actions: every candidate action id is excluded")
        return actions

    def _cached_action_examples(self, actions: tuple[Action, ...]) -> list[Any]:
        key = tuple(a.key for a in actions)
        examples = self._action_cache.get(key)
        if examples is not None:
            self._action_cache.move_to_end(key)
            return examples
        examples = self._workspace.parse([self._encoder.action_line(a) for a in actions])
        self._action_cache[key] = examples
        if len(self._action_cache) > _ACTION_CACHE_SIZE:
            _, evicted = self._action_cache.popitem(last=False)
            self._workspace.finish_example(evicted)
        return examples

    def _clear_action_cache(self) -> None:
        for examples in self._action_cache.values():
            self._workspace.finish_example(examples)
        self._action_cache.clear()

    def predict_trusted(self, context: Namespaces, actions: tuple[Action, ...]) -> tuple[float, ...]:
        """Return the validated PMF for already validated, eligible actions (in their order)."""
        if len(actions) == 1:
            return (1.0,)
        shared = self._workspace.parse([self._encoder.shared_line(context)])
        try:
            # The binding's predict_multi skips the Python wrapper's type
            # dispatch; for --cb_explore_adf the first example then contains the
            # probabilities in the order of the action examples.
            pylibvw.vw.predict_multi(self._workspace, shared + self._cached_action_examples(actions))
            raw = shared[0].get_action_scores()
        finally:
            self._workspace.finish_example(shared)
        return validate_pmf(raw, len(actions))

    def pmf(self, context: Namespaces, actions: Sequence[Action], excluded_ids: Sequence[str] = ()) -> dict[str, float]:
        """Return the exploration PMF keyed by action id.

        Parameters
        ----------
        context : Namespaces
            Context feature namespaces.
        actions : sequence of Action
            Candidate actions; ids must be unique.
        excluded_ids : sequence of str
            Ids removed before scoring.

        Raises
        ------
        ValueError
            If no action is eligible or an input is invalid.
        InvalidPmfError
            If VW returned an invalid PMF.
        """
        context, actions = self.prepare(context, actions)
        eligible = self._eligible(actions, excluded_ids)
        return dict(zip((a.id for a in eligible), self.predict_trusted(context, eligible)))

    def decide(
        self,
        context: Namespaces,
        actions: Sequence[Action],
        *,
        event_id: str,
        timestamp: float,
        excluded_ids: Sequence[str] = (),
        deferred: bool = False,
        user_id: str | None = None,
    ) -> DecisionRecord:
        """Choose an action and return the decision record.

        In ``online`` mode the action is sampled from the model's PMF with the
        draw :func:`uniform_draw` (seed, event id). In ``apprentice`` and
        ``logging_only`` modes the baseline action is returned with
        probability 1.
        """
        context, actions = self.prepare(context, actions)
        eligible = self._eligible(actions, excluded_ids)
        ids = tuple(a.id for a in eligible)
        baseline_action = choose_baseline(self.settings.baseline, context, ids)
        if self.settings.learning_mode is LearningMode.ONLINE:
            pmf = self.predict_trusted(context, eligible)
            chosen = sample_index(pmf, uniform_draw(self.settings.seed, event_id))
        else:
            chosen = ids.index(baseline_action)
            pmf = tuple(1.0 if i == chosen else 0.0 for i in range(len(ids)))
        return DecisionRecord(
            event_id=event_id,
            policy=self.settings.name,
            timestamp=timestamp,
            context=context,
            actions=tuple(actions),
            excluded_ids=tuple(excluded_ids),
            action_ids=ids,
            pmf=pmf,
            chosen_action=ids[chosen],
            probability=pmf[chosen],
            model_version=self.model_version,
            learning_mode=self.settings.learning_mode,
            deferred=deferred,
            baseline_action=baseline_action,
            user_id=user_id,
        )

    # -- learning -----------------------------------------------------------

    def learn(self, event: JoinedEvent) -> None:
        """Learn from one joined event (cost = -reward on the chosen action).

        Events whose outcome is not learnable are ignored. A non-finite
        reward raises ``ValueError`` before it reaches VW.
        """
        if not event.learnable or event.reward is None:
            return
        reward = float(event.reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward of event {event.decision.event_id!r} is {reward!r}; it must be finite")
        decision = event.decision
        eligible = decision.eligible_actions
        index = decision.action_ids.index(decision.chosen_action)
        lines = self._encoder.example_lines(decision.context, eligible, (index, -reward, decision.probability))
        examples = self._workspace.parse(lines)
        try:
            self._workspace.learn(examples)
        finally:
            self._workspace.finish_example(examples)
        self.examples_learned += 1

    # -- checkpoints ----------------------------------------------------------

    def model_bytes(self) -> bytes:
        """Return VW's saved model, including the state needed to resume learning."""
        with tempfile.TemporaryDirectory(prefix="microbandit-") as directory:
            path = Path(directory) / "model.vw"
            self._workspace.save(str(path))
            return path.read_bytes()

    def to_checkpoint(self) -> bytes:
        """Serialize the policy (model, version, count and settings signature) to bytes."""
        model = self.model_bytes()
        header = json.dumps(
            {
                "policy": self.settings.name,
                "model_version": self.model_version,
                "examples_learned": self.examples_learned,
                "signature": self.settings.model_signature(),
                "sha256": hashlib.sha256(model).hexdigest(),
            },
            sort_keys=True,
        ).encode()
        return _CHECKPOINT_MAGIC + struct.pack(">I", len(header)) + header + model

    @staticmethod
    def read_checkpoint_header(data: bytes) -> tuple[dict[str, Any], bytes]:
        """Parse and verify a checkpoint; return its header and the VW model bytes.

        Raises
        ------
        CheckpointError
            If the bytes are not a checkpoint or the model checksum fails.
        """
        if not data.startswith(_CHECKPOINT_MAGIC) or len(data) < len(_CHECKPOINT_MAGIC) + 4:
            raise CheckpointError("checkpoint is not a microbandit checkpoint (bad magic bytes)")
        offset = len(_CHECKPOINT_MAGIC)
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        offset += 4
        try:
            header = json.loads(data[offset : offset + length])
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"checkpoint header is corrupt: {error}") from error
        model = data[offset + length :]
        if not isinstance(header, dict) or hashlib.sha256(model).hexdigest() != header.get("sha256"):
            raise CheckpointError("checkpoint model is corrupt: its SHA-256 does not match the header")
        return header, model

    @classmethod
    def from_checkpoint(cls, data: bytes, settings: PolicySettings) -> Policy:
        """Restore a policy saved by :meth:`to_checkpoint`.

        Raises
        ------
        CheckpointError
            If the checkpoint is corrupt, or was saved with model settings
            other than ``settings`` (exploration, interactions, VW arguments,
            bit precision, reward range).
        """
        header, model = cls.read_checkpoint_header(data)
        expected = json.loads(json.dumps(settings.model_signature()))
        if header.get("signature") != expected:
            raise CheckpointError(
                f"checkpoint of policy {header.get('policy')!r} was saved with model settings "
                f"{header.get('signature')} but the policy is configured with {expected}; "
                "restore with the original settings or start a new data directory"
            )
        with tempfile.TemporaryDirectory(prefix="microbandit-") as directory:
            path = Path(directory) / "model.vw"
            path.write_bytes(model)
            try:
                policy = cls(
                    settings,
                    model_version=int(header["model_version"]),
                    examples_learned=int(header["examples_learned"]),
                    _initial_model=path,
                )
            except RuntimeError as error:
                raise CheckpointError(f"VW could not load the checkpoint model: {error}") from error
        return policy

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint file atomically (temporary name, fsync, rename)."""
        final = Path(path)
        temporary = final.with_name(f".{final.name}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(self.to_checkpoint())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return final

    @classmethod
    def load(cls, path: str | os.PathLike[str], settings: PolicySettings) -> Policy:
        """Restore a checkpoint file; a missing or corrupt file raises :class:`CheckpointError`."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
        return cls.from_checkpoint(data, settings)

    def has_finite_weights(self) -> bool:
        """Return whether every weight of the model is finite (no NaN or infinity)."""
        try:
            weights = json.loads(self._workspace.json_weights())
        except json.JSONDecodeError:
            # VW 9.11's JSON writer stops at the first NaN or infinite value,
            # leaving a truncated document.
            return False
        return all(math.isfinite(w.get("value", 0.0)) for w in weights.get("weights", []))

    def close(self) -> None:
        """Release the VW workspace."""
        self._clear_action_cache()
        self._workspace.finish()
