"""``python -m bench.channel``: the transfer floor that bench/README.md quotes."""

from __future__ import annotations

import subprocess
import sys

from bench import ROOT
from bench.channel import MODES


def test_channel_times_every_way_of_sending_a_transfer() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.channel", "--mib", "1", "--repeat", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == list(MODES)
    assert all(float(row[1]) > 0 and row[2] == "ms" for row in rows), proc.stdout


def test_channel_refuses_a_transfer_it_cannot_time() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.channel", "--repeat", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--repeat at least 2" in proc.stderr
    assert "Traceback" not in proc.stderr
