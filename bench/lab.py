"""Lab timings: how long until a cluster answers, converges, and re-converges.

Measures, on this machine:
  - cold: `up` with an empty rootfs cache (debootstrap included; the components' builds are
    taken from the lab's cache: bench/build.py times those), until every minion answers
  - warm: `up` with every cache warm, until every minion answers
  - first highstate and the idempotent re-run, per node
  - `make lab` with warm caches: from no lab to every master component answering its own
    health check (up, apply, kubesalt_unit.health)
then takes the lab down. Prints a table and writes bench/results/lab.json.

    .venv/bin/python bench/lab.py [--no-cold]
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import RESULTS, quiet

from kubesalt_lab import config, converge, lifecycle, master, report


def timed_up(lab):
    lifecycle.down(lab, quiet)
    start = time.monotonic()
    result = lifecycle.up(lab, quiet)
    return round(time.monotonic() - start, 1), result["built_rootfs"]


def healthy_control_plane(lab, timeout=300):
    """When every master component answers its own health check (monotonic time)."""
    masters = [n.id for n in lab.nodes if "master" in n.roles]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ret = master.run_salt(lab, ",".join(masters), "kubesalt_unit.health", list_target=True)
        answers = [ret.get(m) for m in masters]
        if all(
            isinstance(a, dict) and a and all(x["healthy"] for x in a.values()) for a in answers
        ):
            return time.monotonic()
        time.sleep(1)
    raise SystemExit(f"the control plane was not healthy within {timeout}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cold", action="store_true", help="skip the empty-cache run")
    parser.add_argument("--out", type=Path, default=RESULTS / "lab.json")
    args = parser.parse_args(argv)

    results = {"benchmark": "lab", "nodes": None}
    if not args.no_cold:
        cold_cache = Path(tempfile.mkdtemp(prefix="kubesalt-lab-cold-", dir="/var/tmp"))
        warm = config.load()
        lifecycle.build_components(warm, quiet)
        for shared in ("go", "build", "artifacts"):
            (cold_cache / shared).symlink_to(warm.cache_dir / shared)
        try:
            seconds, built = timed_up(config.load(cache_dir=cold_cache))
            assert built, "the cold run should have built the rootfs"
            results["up_cold_seconds"] = seconds
        finally:
            lifecycle.down(config.load(cache_dir=cold_cache), quiet)
            shutil.rmtree(cold_cache, ignore_errors=True)

    lab = config.load()
    lifecycle.up(lab, quiet)  # make sure the cache is warm before timing
    results["up_warm_seconds"], _ = timed_up(lab)
    started = time.monotonic() - results["up_warm_seconds"]
    first = converge.apply(lab, quiet)
    results["control_plane_healthy_seconds"] = round(healthy_control_plane(lab) - started, 1)
    again = converge.apply(lab, quiet)
    lifecycle.down(lab, quiet)

    results["nodes"] = [
        {
            "node": node.id,
            "roles": list(node.roles),
            "first_seconds": first[node.id]["seconds"],
            "first_changed": first[node.id]["changed"],
            "rerun_seconds": again[node.id]["seconds"],
            "rerun_changed": again[node.id]["changed"],
        }
        for node in lab.ordered_nodes()
    ]
    # A wave's nodes run together: its time counts once.
    waves = converge.apply_waves(lab)
    results["first_highstate_total_seconds"] = round(
        sum(first[wave[0].id]["seconds"] for wave in waves), 1
    )
    results["rerun_total_seconds"] = round(sum(again[wave[0].id]["seconds"] for wave in waves), 1)

    print(
        report.table(
            ["node", "first highstate", "changed", "re-run", "changed"],
            [
                [
                    r["node"],
                    f"{r['first_seconds']}s",
                    r["first_changed"],
                    f"{r['rerun_seconds']}s",
                    r["rerun_changed"],
                ]
                for r in results["nodes"]
            ],
        )
    )
    print()
    rows = [
        ["up, cached rootfs, until every minion answers", f"{results['up_warm_seconds']}s"],
        [
            "make lab (warm): nothing to every master component healthy",
            f"{results['control_plane_healthy_seconds']}s",
        ],
        ["first highstate, wave by wave", f"{results['first_highstate_total_seconds']}s"],
        ["idempotent re-run, wave by wave", f"{results['rerun_total_seconds']}s"],
    ]
    if "up_cold_seconds" in results:
        rows.insert(0, ["up, empty cache (debootstrap included)", f"{results['up_cold_seconds']}s"])
    print(report.table(["step", "time"], rows))
    report.write_json(args.out, results)


if __name__ == "__main__":
    main()
