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
