"""Building every component from its Go module: cold, and again with warm caches.

Measures, on this machine, at the versions the lab's pillar pins:
  - cold: an empty cache folder (the pinned toolchain and every module fetched through the
    Go module proxy, everything compiled), per component and in total;
  - cached: the same build again (every component found finished: what `make lab` pays);
  - rebuilt: every component built again with warm Go module and build caches (what a
    change of flags or layout costs);
then removes the cold cache folder (the lab's own cache is not touched). Prints a table and
writes bench/results/build.json.

    .venv/bin/python bench/build.py [--components kubernetes,etcd] [--keep]
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS

from kubesalt_lab import build, config, recipes, report, toolchain


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed_builds(cache_dir, versions, names, say):
    """{component: seconds} of building each (in recipe order), and the toolchain's."""
    started = time.monotonic()
    go = toolchain.ensure(cache_dir, say)
    seconds = {"go toolchain": round(time.monotonic() - started, 1)}
    for recipe in recipes.RECIPES:
        if recipe.name not in names:
            continue
        started = time.monotonic()
        build.build_component(go, cache_dir, recipe, versions[recipe.name], say)
        seconds[recipe.name] = round(time.monotonic() - started, 1)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", help="comma-separated (default: every recipe)")
    parser.add_argument("--keep", action="store_true", help="keep the cold cache folder")
    parser.add_argument("--out", type=Path, default=RESULTS / "build.json")
    args = parser.parse_args(argv)

    versions = config.load().versions()
    names = args.components.split(",") if args.components else [r.name for r in recipes.RECIPES]
    cold_cache = Path(tempfile.mkdtemp(prefix="kubesalt-build-cold-", dir="/var/tmp"))
    try:
        cold = timed_builds(cold_cache, versions, names, progress)
        cached = timed_builds(cold_cache, versions, names, lambda _m: None)
        # Forget the finished builds, keep Go's caches: every program is built again.
        for name in names:
            (build.output_dir(cold_cache, name, str(versions[name])) / "build.json").unlink()
        rebuilt = timed_builds(cold_cache, versions, names, lambda _m: None)
    finally:
        if not args.keep:
            shutil.rmtree(cold_cache, ignore_errors=True)

    rows = [
        [
            name,
            str(versions.get(name, "")),
            f"{cold[name]}s",
            f"{cached[name]}s",
            f"{rebuilt[name]}s",
        ]
        for name in cold
    ]
    totals = [sum(d.values()) for d in (cold, cached, rebuilt)]
    rows.append(["total", "", *(f"{t:.1f}s" for t in totals)])
    print(report.table(["component", "version", "cold", "cached", "rebuilt"], rows))
    report.write_json(
        args.out,
        {
            "benchmark": "build",
            "go": toolchain.GO_VERSION,
            "versions": {name: str(versions[name]) for name in names},
            "cold_seconds": cold,
            "cached_seconds": cached,
            "rebuilt_seconds": rebuilt,
            "cold_total_seconds": round(totals[0], 1),
            "cached_total_seconds": round(totals[1], 1),
            "rebuilt_total_seconds": round(totals[2], 1),
        },
    )


if __name__ == "__main__":
    main()
