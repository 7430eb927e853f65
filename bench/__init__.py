"""Benchmarks: our runtime side by side with Ray and Dask.

``ownership bench [--quick] [--rows ...] [--systems ours,ray,dask] [--out DIR]``
runs each system in its own subprocess, one after the other so they never
compete for the two cores, with the same sizes (:mod:`bench.rows`). Each
runner (:mod:`bench.ours`, :mod:`bench.peers.ray_runner`,
:mod:`bench.peers.dask_runner`) writes one JSON document; :mod:`bench.driver`
gathers them with the machine's description and :mod:`bench.report` prints
the table, writes ``<date>.json`` and draws the chart.
"""

from pathlib import Path

#: The repository root: runners are started with it as working directory and
#: on ``PYTHONPATH``, because ``bench`` is a folder of the clone, not part of
#: the installed ``ownership`` distribution.
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
