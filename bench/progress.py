"""A progress bar over the benchmark grid, for the report's child process (``--progress``).

pytest prints a dot per case; over a thousand cases that says nothing about how long is left.
With ``--progress`` this plugin replaces pytest's terminal output (the report runs the suite with
``-p no:terminal``) by a rich progress bar (rich comes with Keras): cases done of all, elapsed
time and an estimate of what is left, the case running now; skipped cases are counted with their
reasons, and a failure is printed in full above the bar, as pytest would. It writes to stderr.
Where stderr is not a terminal (a log file, CI), rich draws no bar, so a plain line with the
same numbers is printed every LOG_EVERY_S seconds instead.
"""

from __future__ import annotations

import time
from collections import Counter

__all__ = ["GridProgress", "estimate_seconds"]

# measured per case on top of --benchmark-max-time (calibration, warm-up, the correctness check,
# pytest's own work); a first estimate only: the bar's estimate follows the real pace
OVERHEAD_S = 0.35
# seconds between two plain progress lines when stderr is not a terminal
LOG_EVERY_S = 30.0


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
        self.total = 0
        self.done = 0
        self.case = ""
        self.last_line = self.started

    def pytest_collection_finish(self, session):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        n = self.total = len(session.items)
        minutes = estimate_seconds(n, self.max_time_s) / 60
        self.console.print(f"{n} benchmark cases, about {minutes:.0f} min at {self.max_time_s:g} s per case")
        if not self.console.is_terminal:
            return  # plain lines instead (progress_line)
        self.progress = Progress(TextColumn("latency"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[case]}"),
                                 console=self.console, transient=False)
        self.task = self.progress.add_task("cases", total=n, case="")
        self.progress.start()

    def pytest_runtest_logstart(self, nodeid, location):
        self.case = nodeid.rsplit("[", 1)[-1].rstrip("]")
        if self.progress is not None:
            self.progress.update(self.task, case=self.case)

    def progress_line(self, now: float | None = None) -> str:
        """``latency 420/1680 cases, 9 min so far, about 27 min left (now: <case>)``: the bar in words,
        the time left extrapolated from the pace so far."""
        elapsed = (time.perf_counter() if now is None else now) - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else estimate_seconds(
            self.total, self.max_time_s)
        return (f"latency {self.done}/{self.total} cases, {elapsed / 60:.0f} min so far, about {left / 60:.0f} min "
                f"left (now: {self.case})")

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.outcomes[report.outcome] += 1
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                self.skips[reason.removeprefix("Skipped: ")] += 1
            elif report.failed and self.progress is not None:
                self.progress.console.print(f"[bold red]FAILED[/] {report.nodeid}\n{report.longreprtext}")
            self.done += 1
            if self.progress is not None:
                self.progress.advance(self.task)
            elif self.total:
                now = time.perf_counter()
                if now - self.last_line >= LOG_EVERY_S:
                    self.last_line = now
                    self.console.print(self.progress_line(now), highlight=False)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.progress is not None:
            self.progress.stop()
        done = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.outcomes.items()))
        self.console.print(f"{done or 'no cases'} in {time.perf_counter() - self.started:.0f} s")
        for reason, n in self.skips.most_common():
            self.console.print(f"  skipped {n}: {reason}")
