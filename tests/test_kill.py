"""Runs of ``python -m bench.report`` that are killed or run side by side (issue 15).

A small real run (a tiny user network via --weights, the one-shot stage, two cases) takes about
15 s on 2 cores; each test kills one at a stage, then checks that its benchmark child is gone,
that the next run removes the dead run's ``.incomplete-*`` folder and that it succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.report.cli import clean_stale_runs, new_run_dir
from sparsenet import Layer, Network, save_network

from conftest import random_net

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    net = random_net(np.random.default_rng(0), (784, 32, 10))
    net = Network((net.layers[0], Layer(net.layers[1].weight, None, "linear")))
    return save_network(tmp_path_factory.mktemp("weights") / "small.npz", net)


def report_cmd(weights: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "bench.report", f"--weights=mnist={weights}", "--datasets=mnist",
            "--stages=oneshot", "--methods=weight", "--sparsities=0,0.5", "--batch-sizes=1", "--formats=dense",
            "--scopes=layer", "--max-time=0.01", "--quiet-wait=0", "--threads=1", f"--out={out}"]


# The report as `python -m bench.report`, with Ctrl-C's default handler installed first: a suite started in
# the background by a script (`make test &`, nohup) runs with SIGINT ignored, its children inherit that,
# and Python then leaves SIGINT ignored, so a report would rightly not stop on it.
_WITH_SIGINT = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('bench.report', run_name='__main__', alter_sys=True)")


def start(weights: Path, out: Path) -> subprocess.Popen:
    cmd = report_cmd(weights, out)
    assert cmd[1:3] == ["-m", "bench.report"]
    return subprocess.Popen([cmd[0], "-c", _WITH_SIGINT, *cmd[3:]], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"never saw {marker!r}:\n{''.join(lines)}")


def run_ok(weights: Path, out: Path) -> str:
    result = subprocess.run(report_cmd(weights, out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.mark.parametrize("sig, stage", [  # ~22 s a case; a kill in the one-shot stage: the same path, no child
    (signal.SIGKILL, "[4/5] latency"),  # the benchmark child is running: it must not outlive a parent killed -9
    (signal.SIGINT, "[4/5] latency"),
])
def test_a_killed_run_leaves_no_child_and_no_folder_after_the_next_run(small_weights, tmp_path, sig, stage):
    out = tmp_path / "reports"
    proc = start(small_weights, out)
    wait_for(proc, stage)
    if stage.startswith("[4/5]"):
        wait_for(proc, "$ ")  # the pytest command line: the child is being started
        deadline = time.monotonic() + 30
        while not (kids := children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kids, "the benchmark child never started"
        time.sleep(1.0)  # let it get into its session
    else:
        kids = []
    proc.send_signal(sig)
    tail = proc.communicate(timeout=60)[0]
    if sig == signal.SIGINT:  # Ctrl-C: one line and the shell's status for SIGINT, no traceback
        assert proc.returncode == 130 and "interrupted: nothing written" in tail, tail[-2000:]
        assert "Traceback" not in tail, tail[-2000:]
    deadline = time.monotonic() + 15
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(k) for k in kids), f"benchmark child {kids} outlived the report killed by {sig!r}"
    leftovers = list(out.glob(".incomplete-*"))
    if sig == signal.SIGINT:
        assert leftovers == [], "an interrupted run cleans up its own folder"
    stdout = run_ok(small_weights, out)
    assert not list(out.glob(".incomplete-*")), "the next run removed the dead run's folder"
    assert [p.name for p in out.iterdir() if (p / "report.md").is_file()], stdout
    if leftovers:
        assert "unfinished run folder" in stdout


def test_two_runs_started_together_both_succeed_in_distinct_folders(small_weights, tmp_path):
    out = tmp_path / "reports"
    procs = [start(small_weights, out) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    runs = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert len(runs) == 2 and all((out / r / "report.md").is_file() for r in runs), runs
    assert not list(out.glob(".incomplete-*"))


def test_run_folder_names_are_unique_within_one_second(tmp_path):
    names = {new_run_dir(tmp_path, "t").name for _ in range(5)}
    assert len(names) == 5
    assert len(list(tmp_path.glob(".incomplete-*"))) == 5  # each name reserved by its work folder


def test_stale_folders_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = new_run_dir(tmp_path, "live")  # owned by this (live) process
    gone = tmp_path / ".incomplete-dead"
    gone.mkdir()
    (gone / ".owner").write_text(f"{dead.stdout.strip()} 1")
    reused = tmp_path / ".incomplete-reused"  # a live PID, but another process's start time: stale
    reused.mkdir()
    (reused / ".owner").write_text(f"{os.getpid()} 0")
    fresh = tmp_path / ".incomplete-unowned"  # no owner file yet (between mkdir and write): kept for a minute
    fresh.mkdir()
    old = tmp_path / ".incomplete-old"
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    removed = {p.name for p in clean_stale_runs(tmp_path)}
    assert removed == {".incomplete-dead", ".incomplete-reused", ".incomplete-old"}
    assert (tmp_path / f".incomplete-{mine.name}").is_dir() and fresh.is_dir()
