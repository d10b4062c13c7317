"""Highstate durations per role on the lab's real hosts.

Fresh hosts (the lab is taken down and brought up first), then wave by wave as `make lab`
applies them (the masters together, then the workers together, then the router):
  - test=True on the fresh hosts, and the first real highstate (both timed per wave);
  - the idempotent re-run of each node on its own, --runs times (median and worst),
with the number of states and how many the first run changed. The masters' first run is
one wave of three hosts that wait for each other (etcd quorum, service-account keys), so
its time is the wave's. Prints a table per role and writes bench/results/lab_highstate.json.

    .venv/bin/python bench/lab_highstate.py [--runs N] [--keep]
"""

import statistics
import time

from common import arguments, fresh_lab, quiet

from kubesalt_lab import converge, master, report


def rerun(lab, node_id):
    start = time.monotonic()
    ret = master.run_salt(lab, node_id, "state.apply", timeout=600)
    seconds = time.monotonic() - start
    summary = report.summarize_highstate(ret.get(node_id, "no return"))
    if summary["changed"] or summary["failed"]:
        raise SystemExit(f"re-run of {node_id} was not idempotent: {summary}")
    return seconds, summary["ok"]


def main(argv=None):
    parser = arguments(__doc__, "lab_highstate", keep="leave the lab up afterwards")
    parser.add_argument("--runs", type=int, default=3, help="idempotent re-runs per node")
    args = parser.parse_args(argv)

    with fresh_lab(args.keep) as lab:
        first = converge.predict_then_apply(lab, quiet)
        rows = []
        for node in lab.ordered_nodes():
            result = first[node.id]
            if result["summary"]["failed"]:
                raise SystemExit(f"first highstate of {node.id} failed: {result['summary']}")
            times, states = [], 0
            for _ in range(args.runs):
                seconds, states = rerun(lab, node.id)
                times.append(seconds)
            rows.append(
                {
                    "node": node.id,
                    "role": ",".join(node.roles),
                    "states": states,
                    "first_changed": len(result["changed"]),
                    "prediction_exact": result["predicted"] == result["changed"],
                    "test_mode_seconds": result["dry_seconds"],
                    "first_seconds": result["seconds"],
                    "rerun_median_seconds": round(statistics.median(times), 2),
                    "rerun_max_seconds": round(max(times), 2),
                }
            )

    by_role = {}
    for row in rows:
        by_role.setdefault(row["role"], []).append(row)
    summary = [
        {
            "role": role,
            "nodes": len(group),
            "states": group[0]["states"],
            "first_changed": group[0]["first_changed"],
            "first_seconds_max": max(r["first_seconds"] for r in group),
            "rerun_median_seconds": round(
                statistics.median(r["rerun_median_seconds"] for r in group), 2
            ),
            "prediction_exact": all(r["prediction_exact"] for r in group),
        }
        for role, group in by_role.items()
    ]
    print(
        report.table(
            [
                "role",
                "nodes",
                "states",
                "first run changed",
                "first run",
                "re-run (median)",
                "test=True exact",
            ],
            [
                [
                    s["role"],
                    s["nodes"],
                    s["states"],
                    s["first_changed"],
                    f"{s['first_seconds_max']}s",
                    f"{s['rerun_median_seconds']}s",
                    "yes" if s["prediction_exact"] else "NO",
                ]
                for s in summary
            ],
        )
    )
    report.write_json(
        args.out,
        {"benchmark": "lab_highstate", "runs": args.runs, "roles": summary, "nodes": rows},
    )


if __name__ == "__main__":
    main()
