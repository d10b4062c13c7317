"""A Kubernetes upgrade of the lab, measured: from the previous minor version to the pinned
one with ``salt-run state.orchestrate kubesalt.orch.upgrade``, while a Deployment of two
pods behind a PodDisruptionBudget (minAvailable 1) and a Service is asked five times a
second from every worker (``kubesalt_lab.steady_traffic``).

Reports each step's time (the etcd snapshot, each apiserver, each master's control plane,
each worker's drain, upgrade and readiness), the total, the requests that failed, and the
snapshot's size and time.

Brings the lab up from nothing (it is taken down first, and at the end unless --keep).
Prints a table and writes bench/results/upgrade.json.

    .venv/bin/python bench/upgrade.py [--keep]
"""

import time

from common import arguments, fresh_lab, quiet, say

from kubesalt_lab import converge, lifecycle, master, report, steady_traffic
from kubesalt_lab.pillar import KUBERNETES_PREVIOUS_MINOR

ORCH = "kubesalt.orch.upgrade"


def _node_of(step):
    """``kubesalt-orch-upgrade-worker-1-drained`` -> (``worker-1``, ``drained``)."""
    rest = step.removeprefix("kubesalt-orch-upgrade-")
    for suffix in ("apiserver-ready", "apiserver", "control-plane", "drained", "ready",
                   "uncordoned"):  # fmt: skip
        if rest.endswith(f"-{suffix}"):
            return rest[: -len(suffix) - 1], suffix
    return rest, ""


def main(argv=None):
    args = arguments(__doc__, "upgrade", keep="leave the lab up afterwards").parse_args(argv)
    with fresh_lab(keep=args.keep, progress=quiet) as lab:
        target = lab.versions()["kubernetes"]
        say(f"the lab on Kubernetes {KUBERNETES_PREVIOUS_MINOR}")
        lifecycle.set_pillar(lab, {"versions:kubernetes": KUBERNETES_PREVIOUS_MINOR}, quiet)
        applied = converge.apply(lab, quiet)
        if any(s["failed"] for s in applied.values()):
            raise SystemExit(f"the lab did not converge: {applied}")
        steady_traffic.start(lab, "steady")
        lifecycle.set_pillar(lab, {}, quiet)
        planned = master.run_runner(lab, "kubesalt_upgrade.plan", "master=master-1")
        say(f"{ORCH} to {target}")
        started = time.monotonic()
        ok, steps = master.orchestrate(lab, ORCH, timeout=3600)
        total = time.monotonic() - started
        if not ok:
            raise SystemExit(f"the upgrade failed: {master.failed_steps(steps)}")
        counted = steady_traffic.answers(lab, "steady")
        steady_traffic.stop(lab, "steady")

    per_node = {}
    for step, found in steps.items():
        node, _what = _node_of(step)
        if node.startswith("batch-") or node in ("plan", "etcd-snapshot"):
            continue
        per_node[node] = round(per_node.get(node, 0) + found["seconds"], 1)
    for number, batch in enumerate(planned["batches"], 1):
        seconds = steps[f"kubesalt-orch-upgrade-batch-{number}"]["seconds"]
        for node in batch:  # the batch's highstate counts for each worker in it
            per_node[node] = round(per_node.get(node, 0) + seconds, 1)
    snapshot = steps["kubesalt-orch-upgrade-etcd-snapshot"]["changes"].get("ret", {})
    record = next(iter(snapshot.values()), {}) if isinstance(snapshot, dict) else {}
    asked = sum(c["ok"] + c["fail"] for c in counted.values())
    failed = sum(c["fail"] for c in counted.values())
    result = {
        "from": KUBERNETES_PREVIOUS_MINOR,
        "to": target,
        "total_seconds": round(total, 1),
        "seconds_per_node": per_node,
        "steps": {s: f["seconds"] for s, f in steps.items()},
        "requests": asked,
        "failed_requests": failed,
        "answers": counted,
        "snapshot": {k: record.get(k) for k in ("size", "keys", "revision", "seconds")},
    }
    rows = [[node, f"{seconds:.1f}s"] for node, seconds in sorted(per_node.items())]
    rows.append(["total", f"{total:.1f}s"])
    print(report.table(["node", "upgrade"], rows))
    print(report.table(
        ["requests", "failed", "snapshot size", "snapshot time"],
        [[asked, failed, f"{(record.get('size') or 0) / 1e6:.1f} MB",
          f"{record.get('seconds', 0)}s"]],
    ))  # fmt: skip
    report.write_json(args.out, result)
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
