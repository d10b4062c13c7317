"""What every benchmark here shares: where results go, progress output, percentiles.

The benchmarks run as scripts (``.venv/bin/python bench/<name>.py``), so Python puts this
folder on ``sys.path`` and they import this module by its name; kubesalt and the lab come
from the venv (``make setup`` installs both).
"""

import argparse
import contextlib
import time
from pathlib import Path

from kubesalt_lab import config, containers, converge, lifecycle
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


def arguments(doc, name, keep=None):
    """The benchmark's argument parser: the first paragraph of ``doc`` as its description,
    ``--out`` (default ``bench/results/<name>.json``) and, when ``keep`` (its help) is
    given, ``--keep``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json")
    if keep:
        parser.add_argument("--keep", action="store_true", help=keep)
    return parser


@contextlib.contextmanager
def fresh_lab(keep=False, progress=quiet):
    """The lab brought up from nothing (down first), and down again at the end unless
    ``keep``, whatever happened in between."""
    lab = config.load()
    lifecycle.down(lab, progress)
    lifecycle.up(lab, progress)
    try:
        yield lab
    finally:
        if not keep:
            lifecycle.down(lab, progress)


def converged_lab():
    """The lab as it is, brought up and converged first when a host is not running."""
    lab = config.load()
    if not all(containers.nspawn_pid(lab, node) for node in lab.nodes):
        say("lab: up and converge")
        lifecycle.up(lab, quiet)
        applied = converge.apply(lab, quiet)
        if any(summary["failed"] for summary in applied.values()):
            raise SystemExit(f"the lab did not converge: {applied}")
    return lab


__all__ = [
    "REPO",
    "RESULTS",
    "arguments",
    "converged_lab",
    "fresh_lab",
    "percentile",
    "quiet",
    "say",
]
