"""Losing a master's host: how long the workers' API calls stall, how long until felix has a
Typha again, how long until a live master holds each leader lease.

Measures, on the running lab (converged), --stops times, each time a different master in
turn (master-1, master-2, master-3, master-1, ...):
  - a client in worker-1's network namespace creates a ConfigMap every 100 ms through
    worker-1's node-local apiserver proxy (lab/kubesalt_lab/api_writer.py, 10 s per attempt);
    from the moment the master's host is powered off (`kubesalt-lab stop`), the time until its
    calls succeed again without stalling: the end of the last failed or slow (> 0.5 s) call that
    started after the stop (0 when none did); and the number of failed and slow calls;
  - until both workers' felix are ready (felix's readiness needs a Typha connection);
  - until each of the scheduler's and the controller-manager's leases has a live holder
    (when the stopped master held it);
  then boots the host again (`kubesalt-lab start`) and waits until all its components
answer their health checks before the next stop. Prints a table and writes
bench/results/failover.json.

    .venv/bin/python bench/failover.py [--stops N]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, percentile, quiet, say

import kubesalt_core.components
from kubesalt_lab import config, lifecycle, master, report
from kubesalt_lab.system import wait_until
from kubesalt_lab.writers import ProxiedApiWriter

MASTERS = ("master-1", "master-2", "master-3")
WORKERS = ("worker-1", "worker-2")
LEASES = ("kube-scheduler", "kube-controller-manager")


def _salt(lab, target, fun, *args, timeout=60):
    return master.run_salt(lab, target, fun, *args, timeout=timeout).get(target)


def _holders(lab, asked):
    answer = _salt(lab, asked, "kubesalt_manifest.leases")
    answer = answer if isinstance(answer, dict) else {}
    return {name: (answer.get(name) or {}).get("holder") or "" for name in LEASES}


def _felix_ready(lab):
    for worker in WORKERS:
        answer = _salt(lab, worker, "kubesalt_unit.health", "calico-felix") or {}
        if not isinstance(answer, dict) or not answer.get("calico-felix.service", {}).get(
            "healthy"
        ):
            return False
    return True


def _healthy(lab, node_id):
    answers = _salt(lab, node_id, "kubesalt_unit.health")
    probed = {
        c.unit_name for c in kubesalt_core.components.for_roles(lab.node(node_id).roles) if c.health
    }
    return (
        isinstance(answers, dict)
        and set(answers) == probed
        and all(a["healthy"] for a in answers.values())
    )


def one_stop(lab, victim, workdir):
    asked = next(m for m in MASTERS if m != victim)
    before = _holders(lab, asked)
    held = [name for name, holder in before.items() if holder.startswith(victim)]
    row = {"master": victim, "held_leases": held}
    with ProxiedApiWriter(lab, "worker-1", workdir) as writer:
        time.sleep(3)
        stopped_at = time.time()
        lifecycle.stop_host(lab, victim, quiet)
        pending = set(held)
        felix_at = None
        lease_at = {}
        deadline = time.monotonic() + 120
        while (pending or felix_at is None) and time.monotonic() < deadline:
            if felix_at is None and _felix_ready(lab):
                felix_at = time.time()
            if pending:
                holders = _holders(lab, asked)
                for name in list(pending):
                    if holders[name] and not holders[name].startswith(victim):
                        lease_at[name] = time.time()
                        pending.discard(name)
            time.sleep(0.5)
        row["felix_ready_seconds"] = round(felix_at - stopped_at, 1) if felix_at else None
        for name in LEASES:
            at = lease_at.get(name)
            row[f"{name}_lease_seconds"] = round(at - stopped_at, 1) if at else None
        # Calls until 30 s after the stop at least, and 5 s after the last of it.
        time.sleep(max(5.0, 30.0 - (time.time() - stopped_at)))
    summary = writer.summary
    after = [s for s in summary["stalls"] if s[0] >= stopped_at - 0.1]
    row["api_back_seconds"] = round(max((s[0] + s[1] for s in after), default=stopped_at)
                                    - stopped_at, 2)  # fmt: skip
    row["failed_calls"] = sum(1 for s in after if not s[2])
    row["slow_calls"] = sum(1 for s in after if s[2])
    row["slowest_call_seconds"] = max((s[1] for s in after), default=0.0)
    row["refused_by_apiserver"] = summary.get("refused_by_apiserver", {})
    row["calls"] = summary["creates"]
    row["missing"] = summary["missing"]
    lifecycle.start_host(lab, victim, quiet)
    wait_until(lambda: _healthy(lab, victim), 240, interval=3, what=f"{victim} healthy again")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=6, help="host stops, masters in turn")
    args = parser.parse_args(argv)
    if args.stops < 1:
        raise SystemExit("--stops: expected 1 or more")
    lab = config.load()
    for name in MASTERS:
        wait_until(lambda n=name: _healthy(lab, n), 240, interval=3, what=f"{name} healthy")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kubesalt-failover-") as tmp:
        for index in range(args.stops):
            victim = MASTERS[index % len(MASTERS)]
            say(f"stop {index + 1}/{args.stops}: {victim}")
            row = one_stop(lab, victim, Path(tmp) / f"stop-{index}")
            say(f"  {row}")
            rows.append(row)
    back = [r["api_back_seconds"] for r in rows]
    felix = [r["felix_ready_seconds"] for r in rows if r["felix_ready_seconds"] is not None]
    leases = [
        r[f"{name}_lease_seconds"]
        for r in rows
        for name in r["held_leases"]
        if r[f"{name}_lease_seconds"] is not None
    ]
    summary = {
        "stops": len(rows),
        "api_back_p50_seconds": statistics.median(back),
        "api_back_p95_seconds": percentile(back, 0.95),
        "failed_calls_total": sum(r["failed_calls"] for r in rows),
        "slow_calls_total": sum(r["slow_calls"] for r in rows),
        "lost_writes_total": sum(r["missing"] for r in rows),
        "felix_ready_max_seconds": max(felix) if felix else None,
        "lease_moved_p50_seconds": statistics.median(leases) if leases else None,
        "lease_moved_max_seconds": max(leases) if leases else None,
    }
    table = [
        [
            r["master"],
            f"{r['api_back_seconds']:.2f}",
            str(r["failed_calls"]),
            str(r["slow_calls"]),
            f"{r['slowest_call_seconds']:.2f}",
            str(r["felix_ready_seconds"]),
            ",".join(f"{n}={r[f'{n}_lease_seconds']}" for n in r["held_leases"]) or "-",
        ]
        for r in rows
    ]
    print(
        report.table(
            ["stopped", "API back (s)", "failed", "slow", "slowest (s)", "felix (s)", "leases (s)"],
            table,
        )
    )
    print(json.dumps(summary, indent=2))
    out = RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / "failover.json").write_text(json.dumps({"summary": summary, "stops": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
