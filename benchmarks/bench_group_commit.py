"""Cost of the learner's group commit: one fsynced Parquet segment per batch of records.

A learner acknowledges a Reward only once a segment containing it is
written (Parquet with zstd, fsync of the file, rename, fsync of the
directory). This script times that write for batches of 1, 10 and 100
reward records, in-process on the local disk, against the reference of
converting the same batch to an Arrow table without writing it. It also
times merging 100 such segments into one, from the tables in memory.

Usage::

    .venv/bin/python benchmarks/bench_group_commit.py --repeats 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bandit.eventlog import EventLog  # noqa: E402
from bandit.events import RewardRecord, records_to_table  # noqa: E402

START = 1_800_000_000.0


def _rewards(count: int, offset: int) -> list[RewardRecord]:
    return [RewardRecord(f"e{offset + i}", "bench", START + i, 1.0, f"r{offset + i}") for i in range(count)]


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def _p90_ms(values: list[float]) -> float:
    return round(sorted(values)[int(0.9 * (len(values) - 1))] * 1000, 3)


def run(repeats: int) -> dict[str, object]:
    """Time segment writes, table conversion and a merge; return the figures."""
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="microbandit-commit-") as directory:
        log = EventLog(Path(directory))
        offset = 0
        for size in (1, 10, 100):
            writes, conversions = [], []
            for _ in range(repeats):
                records = _rewards(size, offset)
                offset += size
                started = time.perf_counter()
                records_to_table(records)
                conversions.append(time.perf_counter() - started)
                log.extend(records)
                started = time.perf_counter()
                log.flush()
                writes.append(time.perf_counter() - started)
            results[f"batch_{size}"] = {
                "write_median_ms": _median_ms(writes),
                "write_p90_ms": _p90_ms(writes),
                "convert_only_median_ms": _median_ms(conversions),
                "ratio_write_to_convert": round(statistics.median(writes) / statistics.median(conversions), 1),
                "records_per_second_one_writer": round(size / statistics.median(writes)),
            }
        log.merge()
        for _ in range(100):
            log.extend(_rewards(1, offset))
            offset += 1
            log.flush()
        started = time.perf_counter()
        log.merge()
        results["merge_100_segments_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50, help="segment writes per batch size (default 50)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
