"""Timing helper shared by the bench scripts (imported as ``timing`` from ``bench/``)."""

import statistics
import time


def median_ms(fns, runs, warmup):
    """Median wall time in ms of each callable; calls are interleaved run by run so that a
    load change on a shared machine hits every contender alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [1000.0 * statistics.median(bucket) for bucket in times]
