"""A progress bar over the benchmark grid, for the report's child process (``--progress``).

pytest prints a dot per case; over a thousand cases that says nothing about how long is left.
With ``--progress`` this plugin replaces pytest's terminal output (the report runs the suite with
``-p no:terminal``) by a rich progress bar (rich comes with Keras): cases done of all, elapsed
time and an estimate of what is left, the case running now; skipped cases are counted with their
reasons, and a failure is printed in full above the bar, as pytest would. It writes to stderr.
"""

from __future__ import annotations

import time
from collections import Counter

__all__ = ["GridProgress", "estimate_seconds"]

# measured per case on top of --benchmark-max-time (calibration, warm-up, the correctness check,
# pytest's own work); a first estimate only: the bar's estimate follows the real pace
OVERHEAD_S = 0.35


def estimate_seconds(n_cases: int, max_time_s: float) -> float:
    """About how long ``n_cases`` benchmark cases take at pytest-benchmark's ``max_time_s``."""
    return n_cases * (max_time_s + OVERHEAD_S)


class GridProgress:
    """pytest plugin: ``pytest_collection_finish`` starts the bar, each finished case advances it."""

    def __init__(self, max_time_s: float):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.max_time_s = max_time_s
        self.progress = None
        self.task = None
        self.outcomes: Counter = Counter()
        self.skips: Counter = Counter()
        self.started = time.perf_counter()

    def pytest_collection_finish(self, session):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        n = len(session.items)
        minutes = estimate_seconds(n, self.max_time_s) / 60
        self.console.print(f"{n} benchmark cases, about {minutes:.0f} min at {self.max_time_s:g} s per case")
        self.progress = Progress(TextColumn("latency"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[case]}"),
                                 console=self.console, transient=False)
        self.task = self.progress.add_task("cases", total=n, case="")
        self.progress.start()

    def pytest_runtest_logstart(self, nodeid, location):
        if self.progress is not None:
            self.progress.update(self.task, case=nodeid.rsplit("[", 1)[-1].rstrip("]"))

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.outcomes[report.outcome] += 1
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                self.skips[reason.removeprefix("Skipped: ")] += 1
            elif report.failed and self.progress is not None:
                self.progress.console.print(f"[bold red]FAILED[/] {report.nodeid}\n{report.longreprtext}")
            if self.progress is not None:
                self.progress.advance(self.task)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.progress is not None:
            self.progress.stop()
        done = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        self.console.print(f"{done or 'no cases'} in {time.perf_counter() - self.started:.0f} s")
        for reason, n in self.skips.most_common():
            self.console.print(f"  skipped {n}: {reason}")
