"""``python -m bench.compare RUN_A RUN_B``: did run B get faster than run A, cell by cell?

Modules, one concept each:

- :mod:`~bench.compare.runs`: read a run's ``results.json`` (bounded, checked);
- :mod:`~bench.compare.cells`: pair the latency cells of two runs, the noise rule and the verdicts,
  the summaries per format and per batch (pure functions of two results dicts);
- :mod:`~bench.compare.setup`: what differs between the runs' machines and setups;
- :mod:`~bench.compare.render`: ``comparison.md``; :mod:`~bench.compare.plot`: the figures;
- :mod:`~bench.compare.cli`: options and the comparison folder.
"""

from bench.compare.cells import DEFAULT_FLOOR, compare_runs, noise_band, verdict
from bench.compare.cli import main
from bench.compare.runs import MAX_RESULTS_BYTES, read_run

__all__ = ["DEFAULT_FLOOR", "MAX_RESULTS_BYTES", "compare_runs", "main", "noise_band", "read_run", "verdict"]
