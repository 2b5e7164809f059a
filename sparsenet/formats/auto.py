"""``auto``: whichever of dense / sparse / shrunk / sparse_block is fastest for this network, machine and batch size.

The choice is measured, not predicted: the first call at a batch-size bucket (the next power
of two) times every candidate on that call's input and keeps the fastest. Decisions are cached
in memory and on disk (``<cache>/auto.json``, keyed by CPU, thread counts and the network's
per-layer shape and non-zero counts), so a process that meets the same network again does not
measure again. The first call of a bucket is slow (it runs every candidate a few times); later
calls cost one dictionary lookup more than the chosen format.

The choice is per network, not per layer: mixing formats layer by layer would need the
activations converted between layouts at every switch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numba
import numpy as np

from ..cache import cache_root, entry_lock
from ..files import write_json
from ..host import cpu_name, median_seconds
from ..model import MaskedNetwork
from ..sizes import kept_bytes
from .base import FormatDefaults, Forward
from .dense import DenseForward
from .fused import FusedSparseForward
from .shrunk import ShrunkDenseForward
from .sparse_block import SparseBlockForward, block_fill

# How each candidate is timed (sparsenet.host.median_seconds). Tests that check only what auto
# returns, not what it picks, shrink these (the choice never changes the output).
MEASURE_S = 0.05  # timed seconds per candidate and bucket
MEASURE_ROUNDS = 3  # timed calls per candidate and bucket, at least
# Untimed seconds each candidate runs first. After a BLAS call OpenBLAS' worker threads keep
# spinning for tens of milliseconds and slow a numba-parallel kernel up to 3x (measured here at
# batch 1024), so a candidate timed right after another one would be judged on the other's tail.
SETTLE_S = 0.15
MAX_BATCH_SIZES = 64  # distinct batch sizes whose chosen forward is looked up directly (the rest by bucket)
# sparse_block is a candidate where kept blocks are at least this full (block pruning: 1.0;
# unstructured at 0.9: about 0.3, where it cannot win and would only lengthen the measurement)
BLOCK_FILL = 0.75
_VERSION = 9  # bump when kernels change enough that stored decisions should be measured again
_DISK_LOCK = threading.Lock()


def cache_file() -> str:
    """The decisions file, ``auto.json`` under :func:`sparsenet.cache.cache_root`."""
    return str(cache_root() / "auto.json")


def _machine_key() -> str:
    from threadpoolctl import threadpool_info  # optional: only for the cache key

    blas = [i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"]
    return f"{cpu_name()}|numba{numba.get_num_threads()}|blas{blas}"


@dataclass(frozen=True)
class AutoForward(FormatDefaults):
    name: ClassVar[str] = "auto"
    kind: ClassVar[str] = "adaptive"
    summary: ClassVar[str] = ("times dense, sparse, shrunk (units deleted) and sparse_block (block-pruned) on its "
                              "first call at each batch size and keeps the fastest")
    style: ClassVar[tuple[str, str]] = ("tab:purple", "v")
    operating_points: ClassVar[bool] = True
    candidates: dict
    fingerprint: str
    _choice: dict = field(default_factory=dict, repr=False, compare=False)
    _by_batch: dict = field(default_factory=dict, repr=False, compare=False)  # batch size -> chosen forward

    @classmethod
    def build(cls, masked: MaskedNetwork) -> AutoForward:
        candidates = {"dense": DenseForward.build(masked)}
        if {layer.activation for layer in masked.net.layers} <= FusedSparseForward.activations:
            candidates["sparse"] = FusedSparseForward.build(masked)
        if (candidates.get("sparse") is not None and masked.net.layer_kinds <= SparseBlockForward.layer_kinds
                and block_fill(masked) >= BLOCK_FILL):
            candidates["sparse_block"] = SparseBlockForward.build(masked)
        shrunk = ShrunkDenseForward.build(masked)
        if shrunk.widths != masked.net.widths:  # units really were deleted
            candidates["shrunk"] = shrunk
        # the masks themselves, not only their counts: every per-layer pruning of one architecture
        # has the same counts, but dead units and activation sparsity differ from net to net
        digest = hashlib.sha256(json.dumps([_VERSION, list(masked.net.widths), str(masked.net.dtype)]).encode())
        for keep in masked.masks.weight:
            digest.update(np.packbits(keep).tobytes())
        return cls(candidates, digest.hexdigest()[:16])

    def choice(self, n_batch: int) -> str:
        """The candidate used for batches of ``n_batch`` (measured on first use)."""
        return self._choice.get(_bucket(n_batch), "unmeasured")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # one dictionary lookup on the batch size once it has been seen: at batch 1 the chosen kernel
        # takes ~11 us, and the bucket arithmetic and two lookups took 1 us of auto's own (9%)
        try:
            forward = self._by_batch[x.shape[0]]
        except (KeyError, AttributeError, IndexError, TypeError):
            forward = self._forward_for(x)
        return forward(x)

    def _forward_for(self, x) -> Forward:
        n_batch = x.shape[0] if getattr(x, "ndim", 0) == 2 else 1
        bucket = _bucket(n_batch)
        name = self._choice.get(bucket)
        if name is None:
            name = self._decide(bucket, x)
        if getattr(x, "ndim", 0) == 2 and len(self._by_batch) < MAX_BATCH_SIZES:
            self._by_batch[n_batch] = self.candidates[name]
        return self.candidates[name]

    def _decide(self, bucket: int, x: np.ndarray) -> str:
        self.candidates["dense"](x)  # let the dense format validate x before anything is timed
        key = f"{_machine_key()}|{self.fingerprint}|b{bucket}"
        stored = _read_cache().get(key)
        if stored in self.candidates:
            name = stored
        else:
            times = measure(self.candidates, x)
            name = min(times, key=times.get)
            _store(key, name)
        self._choice[bucket] = name
        return name

    @property
    def nnz(self) -> int:
        return next(iter(self.candidates.values())).nnz  # every candidate stores the kept weights

    @property
    def in_memory_bytes(self) -> int:
        """The candidates it has chosen so far (all of them before its first call). It holds every
        candidate, so that it can switch with the batch size; a deployment that knows its batch
        size keeps only the chosen one, and that is what this counts."""
        chosen = set(self._choice.values()) or set(self.candidates)
        return kept_bytes([self.candidates[name] for name in sorted(chosen)])


def measure(candidates: dict, x: np.ndarray) -> dict[str, float]:
    """Each candidate's time on ``x``: the lower of two medians, one from a pass over the
    candidates in order and one from a pass in reverse order.

    A decision is kept for good (in memory and in ``auto.json``), so one disturbed measurement
    must not make it: a single pass chose ``sparse`` (42 us) over ``shrunk`` (23 us) at batch 1 on
    a unit-pruned network when another process took a core during shrunk's turn. A disturbance
    rarely hits the same candidate in both passes, and the reversed order gives every candidate a
    different predecessor (whose threads may still be spinning, see SETTLE_S)."""
    order = list(candidates)
    times = dict.fromkeys(order, float("inf"))
    for names in (order, order[::-1]):
        for n in names:
            t = median_seconds(candidates[n], x, min_time=MEASURE_S, min_rounds=MEASURE_ROUNDS, settle_s=SETTLE_S)
            times[n] = min(times[n], t)
    return times


def _bucket(n_batch: int) -> int:
    return 1 << max(0, int(n_batch) - 1).bit_length()


MAX_CACHE_BYTES = 16 << 20  # auto.json holds one short line per network, machine and bucket


def _read_cache() -> dict[str, str]:
    """The stored decisions: only ``str -> str`` entries count; a damaged file is reported (one
    line) and measured over, never fatal."""
    path = cache_file()
    try:
        if os.path.getsize(path) > MAX_CACHE_BYTES:
            raise ValueError(f"{os.path.getsize(path)} bytes, more than {MAX_CACHE_BYTES}")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, expected an object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # unreadable: measure again (and rewrite it)
        print(f"auto: ignoring {path} ({exc})", file=sys.stderr, flush=True)
        return {}
    good = {k: v for k, v in data.items() if isinstance(v, str)}
    if len(good) != len(data):
        print(f"auto: ignoring {len(data) - len(good)} entries of {path} that are not format names",
              file=sys.stderr, flush=True)
    return good


def _store(key: str, name: str) -> None:
    # the thread lock for this process, the file lock for other processes writing the same file
    with _DISK_LOCK:
        try:
            with entry_lock(cache_file(), "auto's decisions"):
                data = _read_cache()
                data[key] = name
                write_json(cache_file(), data)
        except OSError:  # a read-only home still gets in-memory caching
            pass
