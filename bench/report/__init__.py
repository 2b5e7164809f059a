"""The report application: ``python -m bench.report`` runs the whole study and writes a run folder.

Stages, one module each:

- :mod:`~bench.report.cli`: options (the grid's come from :mod:`bench.grid`), the run, the folder;
- :mod:`~bench.report.accuracy`: test accuracy of every pruned and recovered network;
- the benchmark suite (``bench/test_forward.py``) in a child process: latency and size records;
- :mod:`~bench.report.machine` and :mod:`~bench.report.roofline`: the machine's ceilings and each
  cell's floor;
- :mod:`~bench.report.results`: results.json's records; :mod:`~bench.report.formats`: what the
  report knows of each format and method (their registries' self-descriptions);
- :mod:`~bench.report.render` (+ :mod:`~bench.report.render_recovery`, :mod:`~bench.report.markdown`):
  report.md; :mod:`~bench.report.plots`: the figures.
"""
