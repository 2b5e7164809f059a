"""What differs between two runs' machines and setups, as rows a reader can scan.

Facts come from each run's ``environment`` (CPU, cores, threads, BLAS, versions, commit),
``machine`` (the GEMM peak and bandwidths measured in the run) and ``grid``. Two runs are on
**different machines** when their CPU name, vector instruction set, core count or BLAS kernel
architecture differ; then every ratio compares machines, not code. A fact one run did not record
(older runs lack some) is shown, but not counted as a difference.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["MACHINE_FIELDS", "MEASURED_DRIFT", "blas_summary", "setup_rows", "setup_verdict"]

# a difference in any of these: another machine
MACHINE_FIELDS = ("cpu", "CPU vector ISA", "cores", "blas architecture")
MEASURED_DRIFT = 0.25  # a measured peak this much apart (relative) on "the same" machine is worth a warning

# (label, how to read the value from a results dict)
_ROWS = (
    ("cpu", lambda r: _env(r, "cpu")),
    ("CPU vector ISA", lambda r: _env(r, "cpu_vector_isa")),
    ("cores", lambda r: _env(r, "cores")),
    ("platform", lambda r: _env(r, "platform")),
    ("numba threads", lambda r: _env(r, "numba_threads")),
    ("numba threading layer", lambda r: _env(r, "numba_threading_layer")),
    ("BLAS threads", lambda r: _env(r, "blas_threads")),
    ("BLAS", lambda r: blas_summary(r, ("internal_api", "version"))),
    ("blas architecture", lambda r: blas_summary(r, ("architecture",))),
    ("BLAS kernel ISA", lambda r: blas_summary(r, ("kernel_isa",))),
    ("BLAS environment", lambda r: _blas_env(r)),
    ("Python", lambda r: _env(r, "python")),
    ("NumPy", lambda r: _env(r, "numpy")),
    ("SciPy", lambda r: _env(r, "scipy")),
    ("numba", lambda r: _env(r, "numba")),
    ("TensorFlow", lambda r: _env(r, "tensorflow")),
    ("git commit", lambda r: _env(r, "git_commit")),
    ("grid", lambda r: _grid_name(r)),
    ("created", lambda r: r.get("created")),
)
_MEASURED = (("GEMM peak (GFLOP/s)", "gemm_gflops"), ("L3 read (GB/s)", "cache_gbps"),
             ("DRAM read (GB/s)", "dram_gbps"))


def _env(results: Mapping, key: str):
    env = results.get("environment")
    return env.get(key) if isinstance(env, Mapping) else None


def blas_summary(results: Mapping, fields: tuple[str, ...]) -> str | None:
    """``"openblas 0.3.30, openblas 0.3.31"``: the BLAS libraries loaded in the run (distinct, sorted:
    the order threadpoolctl finds them in is not a difference)."""
    blas = _env(results, "blas")
    if not isinstance(blas, list):
        return None
    seen = []
    for lib in blas:
        if isinstance(lib, Mapping) and any(lib.get(f) is not None for f in fields):
            text = " ".join(str(lib.get(f)) for f in fields)
            if text not in seen:
                seen.append(text)
    return ", ".join(sorted(seen)) or None


def _blas_env(results: Mapping) -> str | None:
    env = _env(results, "blas_env")
    if not isinstance(env, Mapping):
        return None
    return " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "none set"


def _grid_name(results: Mapping) -> str | None:
    """The grid's name from the run's command (``--grid ci``, ``--quick``), else "full" when a command is known."""
    command = results.get("command")
    if not isinstance(command, str):
        return None
    words = command.split()
    for i, w in enumerate(words):
        if w.startswith("--grid="):
            return w.split("=", 1)[1]
        if w == "--grid" and i + 1 < len(words):
            return words[i + 1]
    return "quick" if "--quick" in words else "full"


def setup_rows(a: Mapping, b: Mapping) -> list[dict]:
    """``{what, a, b, differs}`` per fact, then the measured peaks (``differs`` past MEASURED_DRIFT),
    then every grid setting that differs (``grid: <field>``)."""
    rows = []
    for label, read in _ROWS:
        va, vb = read(a), read(b)
        known = va is not None and vb is not None
        rows.append({"what": label, "a": va, "b": vb, "differs": known and va != vb and label != "created"})
    for label, key in _MEASURED:
        va, vb = (r.get("machine", {}).get(key) if isinstance(r.get("machine"), Mapping) else None for r in (a, b))
        drift = abs(vb / va - 1) if isinstance(va, int | float) and isinstance(vb, int | float) and va > 0 else None
        rows.append({"what": label, "a": va, "b": vb, "differs": drift is not None and drift > MEASURED_DRIFT})
    ga, gb = (r.get("grid") if isinstance(r.get("grid"), Mapping) else {} for r in (a, b))
    for key in sorted(set(ga) | set(gb)):
        if ga.get(key) != gb.get(key):
            rows.append({"what": f"grid: {key}", "a": ga.get(key), "b": gb.get(key), "differs": True})
    return rows


def setup_verdict(rows: list[dict]) -> dict:
    """``{"same_machine", "machine_differences", "setup_differences", "drifted"}`` from :func:`setup_rows`.

    ``same_machine`` is None when no machine fact was recorded by both runs (nothing to go by)."""
    by = {r["what"]: r for r in rows}
    known = [f for f in MACHINE_FIELDS if by[f]["a"] is not None and by[f]["b"] is not None]
    machine = [f for f in known if by[f]["differs"]]
    return {
        "same_machine": None if not known else not machine,
        "machine_differences": machine,
        "setup_differences": [r["what"] for r in rows if r["differs"] and r["what"] not in MACHINE_FIELDS
                              and r["what"] not in dict(_MEASURED)],
        "drifted": [r["what"] for r in rows if r["differs"] and r["what"] in dict(_MEASURED)],
    }
