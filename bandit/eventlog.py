"""Append-only event log: Parquet (zstd) segments in a directory.

Each call to :meth:`EventLog.flush` writes the buffered records as one new
segment. A segment is written under a temporary name, flushed, fsynced and
renamed, and the directory is fsynced after the rename, so a reader never sees
a half-written segment: files whose name ends in ``.parquet`` are complete.
Segments are never modified in place. Tools that rewrite the log (retention,
erasure) write a replacement segment the same way and then delete the old one.

Segment names are ``events-<sequence>-<nonce>.parquet`` with a zero-padded
sequence number, so the lexical order of names is the order of writing.

A writer that makes every acknowledged record durable writes many small
segments. :meth:`EventLog.take_merge` and :func:`write_merge` merge the
segments a log wrote into one, named
``events-<last>-<nonce>-merged-<first>.parquet``: it contains segments
``first`` to ``last`` in order, and replaces them. The merged segment is
complete before the small ones are deleted, so a crash in between leaves
both; :func:`list_segments` then hides the covered ones, and opening the log
deletes them.

A writer that must not block while a segment is written (the server's
learner, which acknowledges a reward only once it is durable) splits a flush
in three: :meth:`EventLog.take_batch` detaches the buffered records,
:func:`write_batch` writes them from any thread, and
:meth:`EventLog.commit_batch` or :meth:`EventLog.restore_batch` records the
outcome. :attr:`EventLog.appended` and :attr:`EventLog.durable` count records,
so a caller can wait until a record it appended is on disk.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit.errors import EventLogError
from bandit.events import EVENT_SCHEMA, Record, records_to_table, table_to_records

__all__ = [
    "EventLog",
    "MergeJob",
    "SegmentBatch",
    "WrittenSegment",
    "read_events",
    "read_records",
    "list_segments",
    "write_batch",
    "write_merge",
    "write_segment",
]

logger = logging.getLogger(__name__)

_SEGMENT = re.compile(r"events-(\d{12})-[0-9a-f]{8}(?:-merged-(\d{12}))?\.parquet")


def _segment_range(path: Path) -> tuple[int, int]:
    """Return (first, last) sequence numbers of the segments a file contains."""
    match = _SEGMENT.fullmatch(path.name)
    assert match is not None
    last = int(match.group(1))
    return (int(match.group(2)) if match.group(2) else last), last


def _covered_segments(segments: list[Path]) -> set[Path]:
    """Return the segments whose records a merged segment in the list also contains."""
    merged = [(path, *_segment_range(path)) for path in segments if _SEGMENT.fullmatch(path.name).group(2)]  # type: ignore[union-attr]
    covered = set()
    for path in segments:
        first, last = _segment_range(path)
        for other, other_first, other_last in merged:
            wider = (other_first, other_last) != (first, last)
            if other is not path and wider and other_first <= first and last <= other_last:
                covered.add(path)
                break
    return covered


def _all_segments(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _SEGMENT.fullmatch(p.name))


def list_segments(directory: str | os.PathLike[str]) -> list[Path]:
    """Return the complete segments of a log directory, oldest first.

    Segments whose records a merged segment also contains (left by a crash
    during a merge) are not listed.
    """
    segments = _all_segments(Path(directory))
    covered = _covered_segments(segments)
    return [path for path in segments if path not in covered]


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(directory: Path, table: pa.Table, sequence: int, merged_from: int | None = None) -> Path:
    """Write ``table`` as segment number ``sequence`` atomically and return its path.

    With ``merged_from``, the segment replaces segments ``merged_from`` to
    ``sequence``, and its name says so.
    """
    suffix = f"-merged-{merged_from:012d}" if merged_from is not None else ""
    final = directory / f"events-{sequence:012d}-{secrets.token_hex(4)}{suffix}.parquet"
    temporary = directory / f".{final.name}.tmp"
    try:
        with open(temporary, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_directory(directory)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise EventLogError(f"failed to write event-log segment {final}: {error}") from error
    return final


SMALL_SEGMENT_BYTES = 256 * 1024
"""Segments smaller than this are merged by :meth:`EventLog.merge_trailing`."""


@dataclass(frozen=True)
class SegmentBatch:
    """Records detached from an :class:`EventLog` buffer, to be written as one segment."""

    directory: Path
    sequence: int
    records: tuple[Record, ...]
    end: int
    """Value of :attr:`EventLog.durable` once this batch is written."""


@dataclass(frozen=True)
class WrittenSegment:
    """A segment written by :func:`write_batch`, kept for a later merge."""

    path: Path
    sequence: int
    table: pa.Table


@dataclass(frozen=True)
class MergeJob:
    """Segments detached by :meth:`EventLog.take_merge`, to be merged into one."""

    directory: Path
    segments: tuple[WrittenSegment, ...]


def write_batch(batch: SegmentBatch) -> WrittenSegment:
    """Write a detached batch as its segment.

    It touches no :class:`EventLog` state, so it may run in another thread
    while the log's owner keeps appending.
    """
    table = records_to_table(batch.records)
    return WrittenSegment(write_segment(batch.directory, table, batch.sequence), batch.sequence, table)


def write_merge(job: MergeJob) -> Path:
    """Write the merged segment of a job, then delete the segments it replaces; return its path.

    Like :func:`write_batch` it may run in another thread.
    """
    first, last = job.segments[0].sequence, job.segments[-1].sequence
    table = pa.concat_tables([segment.table for segment in job.segments])
    path = write_segment(job.directory, table, last, merged_from=first)
    # From here on the merge has taken effect: list_segments hides what is
    # left of the replaced segments, and the next open of the log deletes it.
    try:
        for segment in job.segments:
            segment.path.unlink(missing_ok=True)
        _fsync_directory(job.directory)
    except OSError as error:
        logger.warning("merged segment %s written, but deleting the segments it replaces failed: %s", path.name, error)
    return path


class EventLog:
    """Writer of one policy's event log.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory of the segments; created when missing.

    Notes
    -----
    Not thread-safe: one writer (the policy's learner) owns a log. Stale
    temporary files from a crash are removed when the log is opened.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise EventLogError(f"cannot create event-log directory {self.directory}: {error}") from error
        if not os.access(self.directory, os.W_OK):
            raise EventLogError(f"event-log directory {self.directory} is not writable")
        for stale in self.directory.glob(".events-*.tmp"):
            logger.warning("removing incomplete segment %s left by an earlier crash", stale)
            stale.unlink(missing_ok=True)
        segments = _all_segments(self.directory)
        for covered in sorted(_covered_segments(segments)):
            logger.warning("removing segment %s, which a merged segment replaced before a crash", covered.name)
            covered.unlink(missing_ok=True)
        self._next_sequence = max((_segment_range(p)[1] for p in segments), default=-1) + 1
        self._buffer: list[Record] = []
        self._in_flight: SegmentBatch | None = None
        self._unmerged: list[WrittenSegment] = []
        self._merging: MergeJob | None = None
        self.appended = 0
        """Records appended since the log was opened."""
        self.durable = 0
        """Records, counted in append order, written to complete segments since the log was opened."""
        self.segments_written = 0
        """Segments written since the log was opened."""
        self.merges = 0
        """Merges of written segments since the log was opened."""

    @property
    def buffered(self) -> int:
        """Number of records appended but not yet flushed."""
        return len(self._buffer)

    def append(self, record: Record) -> None:
        """Buffer one record; it becomes durable at the next :meth:`flush`."""
        self._buffer.append(record)
        self.appended += 1

    def extend(self, records: Iterable[Record]) -> None:
        """Buffer several records."""
        before = len(self._buffer)
        self._buffer.extend(records)
        self.appended += len(self._buffer) - before

    def take_batch(self) -> SegmentBatch | None:
        """Detach the buffered records as the next segment's batch; None if nothing is buffered.

        Raises
        ------
        EventLogError
            If an earlier batch is neither committed nor restored: segments
            are written one at a time, in sequence order.
        """
        if self._in_flight is not None:
            raise EventLogError(f"segment {self._in_flight.sequence} of {self.directory} is still being written")
        if not self._buffer:
            return None
        batch = SegmentBatch(self.directory, self._next_sequence, tuple(self._buffer), self.appended)
        self._buffer = []
        self._in_flight = batch
        return batch

    def commit_batch(self, batch: SegmentBatch, written: WrittenSegment) -> None:
        """Record that ``batch`` was written as ``written``."""
        self._check_in_flight(batch)
        self._in_flight = None
        self._next_sequence += 1
        self.durable = batch.end
        self.segments_written += 1
        self._unmerged.append(written)

    @property
    def unmerged(self) -> int:
        """Segments this log wrote and has not merged yet."""
        return len(self._unmerged)

    def take_merge(self) -> MergeJob | None:
        """Detach the segments written since the last merge; None unless there are at least two.

        Raises
        ------
        EventLogError
            If an earlier merge is neither committed nor restored.
        """
        if self._merging is not None:
            raise EventLogError(f"a merge of segments in {self.directory} is still running")
        if len(self._unmerged) < 2:
            return None
        job = MergeJob(self.directory, tuple(self._unmerged))
        self._unmerged = []
        self._merging = job
        return job

    def end_merge(self, job: MergeJob, merged: Path | None) -> None:
        """Record the outcome of a merge: its segment, or None when it failed and may be retried."""
        if self._merging is not job:
            raise EventLogError("this merge is not the one running")
        self._merging = None
        if merged is None:
            self._unmerged[:0] = job.segments
            return
        self.merges += 1

    def restore_batch(self, batch: SegmentBatch) -> None:
        """Put the records of a batch that failed to write back in front of the buffer."""
        self._check_in_flight(batch)
        self._in_flight = None
        self._buffer[:0] = batch.records

    def _check_in_flight(self, batch: SegmentBatch) -> None:
        if self._in_flight is not batch:
            raise EventLogError(f"segment batch {batch.sequence} is not the one being written")

    def flush(self) -> Path | None:
        """Write the buffered records as one segment; return its path, or None if empty.

        On failure the records stay buffered, so a later flush can retry.
        """
        batch = self.take_batch()
        if batch is None:
            return None
        try:
            written = write_batch(batch)
        except BaseException:
            self.restore_batch(batch)
            raise
        self.commit_batch(batch, written)
        return written.path

    def merge_trailing(self, max_segment_bytes: int = SMALL_SEGMENT_BYTES) -> Path | None:
        """Merge the newest run of small segments on disk into one; return its path, or None.

        A crash leaves the segments written since the writer's last merge
        unmerged, and :meth:`merge` only merges segments this log wrote, so a
        writer calls this once after opening the log. It reads the run of
        segments smaller than ``max_segment_bytes`` at the end of the log.
        """
        if self._unmerged or self._merging is not None or self._in_flight is not None:
            raise EventLogError("merge_trailing must run before this log writes anything")
        trailing: list[Path] = []
        for path in reversed(list_segments(self.directory)):
            first, last = _segment_range(path)
            if first != last or path.stat().st_size >= max_segment_bytes:
                break
            trailing.append(path)
        if len(trailing) < 2:
            return None
        segments = []
        for path in reversed(trailing):
            try:
                table = pq.read_table(path, schema=EVENT_SCHEMA)
            except (OSError, pa.ArrowInvalid) as error:
                raise EventLogError(f"event-log segment {path} is unreadable: {error}") from error
            segments.append(WrittenSegment(path, _segment_range(path)[1], table))
        merged = write_merge(MergeJob(self.directory, tuple(segments)))
        self.merges += 1
        logger.info("merged %d small segments left by an earlier run into %s", len(segments), merged.name)
        return merged

    def merge(self) -> Path | None:
        """Merge the segments written since the last merge into one; return its path, or None."""
        job = self.take_merge()
        if job is None:
            return None
        try:
            path = write_merge(job)
        except BaseException:
            self.end_merge(job, None)
            raise
        self.end_merge(job, path)
        return path


_READ_ATTEMPTS = 5


def _read_segments(directory: str | os.PathLike[str]) -> pa.Table:
    # A live writer may merge segments between our listing and our reads: the
    # merged segment is written before the small ones are deleted, so a
    # vanished segment means its records are in a newer merged one. Listing
    # again gives a consistent set.
    for attempt in range(_READ_ATTEMPTS):
        tables = []
        try:
            for segment in list_segments(directory):
                tables.append(pq.read_table(segment, schema=EVENT_SCHEMA))
        except FileNotFoundError as error:
            if attempt + 1 == _READ_ATTEMPTS:
                raise EventLogError(
                    f"event-log segments in {directory} kept changing during {_READ_ATTEMPTS} reads: {error}"
                ) from error
            logger.debug("segment vanished during read of %s (merged meanwhile); listing again", directory)
            continue
        except (OSError, pa.ArrowInvalid) as error:
            raise EventLogError(f"event-log segment {segment} is unreadable: {error}") from error
        return pa.concat_tables(tables) if tables else EVENT_SCHEMA.empty_table()
    raise AssertionError("unreachable")


def read_events(directory: str | os.PathLike[str], kinds: Iterable[str] | None = None) -> pa.Table:
    """Read every complete segment of a log directory into one table.

    Parameters
    ----------
    directory : str or os.PathLike
        The log directory.
    kinds : iterable of str, optional
        Keep only these record kinds (``decision``, ``reward``,
        ``activation``, ``joined``).

    Returns
    -------
    pyarrow.Table
        Rows of :data:`~bandit.events.EVENT_SCHEMA`, in writing order.
    """
    table = _read_segments(directory)
    if kinds is not None:
        wanted = pa.array(sorted(set(kinds)), type=pa.string())
        table = table.filter(pc.is_in(table["kind"], value_set=wanted))
    return table


def read_records(directory: str | os.PathLike[str], kinds: Iterable[str] | None = None) -> list[Record]:
    """Read a log directory back as typed records."""
    return table_to_records(read_events(directory, kinds))
