"""sparsenet.host: the CPU's name and the library's one timing loop."""

import itertools

import pytest

from sparsenet import host


def test_cpu_name_reads_cpuinfo_and_falls_back(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B45\nflags\t\t: avx512f\n")
    assert host.cpu_name(info) == "AMD EPYC 9B45"
    monkeypatch.setattr(host.platform, "processor", lambda: "")
    monkeypatch.setattr(host.platform, "machine", lambda: "arm64")
    assert host.cpu_name(tmp_path / "absent") == "arm64"  # not Linux
    info.write_text("processor\t: 0\nHardware\t: BCM2835\n")  # a Linux without "model name"
    assert host.cpu_name(info) == "arm64"


def test_median_seconds_warms_settles_then_times_the_median(monkeypatch):
    clock = itertools.count(0.0, 1.0)  # every perf_counter() call is one second later
    monkeypatch.setattr(host.time, "perf_counter", lambda: next(clock))
    calls = []
    result = host.median_seconds(calls.append, "x", min_time=0.0, min_rounds=5, settle_s=2.5)
    # 1 warm call, settle calls until the 2.5 s deadline passes, then 5 timed rounds of 1 s each
    assert calls[0] == "x" and len(calls) == 1 + 2 + 5
    assert result == 1.0


def test_median_seconds_runs_min_time_and_min_rounds():
    calls = []
    host.median_seconds(lambda: calls.append(1), min_time=0.0, min_rounds=3)
    assert len(calls) == 1 + 3
    calls.clear()
    assert host.median_seconds(lambda: calls.append(1), min_time=0.02, min_rounds=1) < 0.02
    assert len(calls) > 2  # kept going until min_time had passed
    with pytest.raises(ValueError, match="min_rounds must be >= 1, found 0"):
        host.median_seconds(lambda: None, min_time=0.0, min_rounds=0)


def test_cpu_sample_reads_the_busy_ticks_of_proc_stat(tmp_path):
    import os

    from sparsenet.host import cpu_sample

    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: busy = everything but idle and iowait
    stat.write_text(f"cpu  {hz} {hz} {2 * hz} {50 * hz} {9 * hz} 0 {hz} {hz} 0 0\ncpu0 1 2 3\n")
    assert cpu_sample(stat).busy_s == 6.0
    stat.write_text("garbage\n")
    assert cpu_sample(stat).busy_s is None
    assert cpu_sample(tmp_path / "missing").busy_s is None


def test_others_load_is_the_machines_busy_time_minus_our_own_per_second():
    from sparsenet.host import CPUSample, others_load

    before, after = CPUSample(100.0, 5.0, 10.0), CPUSample(103.0, 6.0, 12.0)
    assert others_load(before, after) == 1.0  # 3 s busy, 1 s ours, over 2 s: one other core busy
    assert others_load(before, CPUSample(100.5, 6.0, 12.0)) == 0.0  # never negative
    assert others_load(CPUSample(None, 5.0, 10.0), after) is None


def test_wait_until_quiet_is_bounded():
    import time

    from sparsenet.host import wait_until_quiet

    t0 = time.perf_counter()
    waited, load = wait_until_quiet(limit=-1.0, window_s=0.05, max_wait_s=0.2)  # never quiet enough
    assert 0.15 <= waited <= 0.25 and time.perf_counter() - t0 < 1.0
    assert load is None or load >= 0.0
