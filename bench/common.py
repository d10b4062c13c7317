"""What every benchmark here shares: where results go, progress output, percentiles.

The benchmarks run as scripts (``.venv/bin/python bench/<name>.py``), so Python puts this
folder on ``sys.path`` and they import this module by its name; kubesalt and the lab come
from the venv (``make setup`` installs both).
"""

import time
from pathlib import Path

from kubesalt_lab.config import REPO

RESULTS = Path(__file__).resolve().parent / "results"


def quiet(_message):
    """A progress callback for the lab's steps that prints nothing."""


def say(message):
    """Print a progress line with the time, at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values, fraction):
    """The nearest-rank percentile of ``values``: ``fraction`` 0.5 is the median."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


__all__ = ["REPO", "RESULTS", "percentile", "quiet", "say"]
