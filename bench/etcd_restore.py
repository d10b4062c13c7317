"""etcd restored from a snapshot after its quorum is lost, measured: ConfigMaps written before a
snapshot and after it, two masters' etcd data destroyed, then ``salt-run state.orchestrate
kubesalt.orch.etcd_restore``, while a Deployment behind a Service is asked five times a
second from every worker (``kubesalt_lab.steady_traffic``).

Reports the recovery time (RTO: the orchestration, and from the loss until the API serves
again), what was lost (RPO: the objects written between the snapshot and the loss, and
that time), what came back, each step's time, the snapshot's size, and the requests to
the Service that failed meanwhile.

Brings the lab up from nothing (it is taken down first, and at the end unless --keep).
Prints a table and writes bench/results/etcd_restore.json.

    .venv/bin/python bench/etcd_restore.py [--before 1000] [--after 100] [--keep]
"""

import time

from common import arguments, fresh_lab, quiet, say

from kubesalt_lab import converge, etcd_loss, master, report, steady_traffic, workloads

ORCH = "kubesalt.orch.etcd_restore"
NAMESPACE = "restore-bench"
LOST = ("master-2", "master-3")


def main(argv=None):
    parser = arguments(__doc__, "etcd_restore", keep="leave the lab up afterwards")
    parser.add_argument("--before", type=int, default=1000, help="objects before the snapshot")
    parser.add_argument("--after", type=int, default=100, help="objects after the snapshot")
    args = parser.parse_args(argv)
    with fresh_lab(keep=args.keep, progress=quiet) as lab:
        say("converge the lab")
        applied = converge.apply(lab, quiet)
        if any(s["failed"] for s in applied.values()):
            raise SystemExit(f"the lab did not converge: {applied}")
        steady_traffic.start(lab, "steady")
        workloads.kubectl(lab, "create", "namespace", NAMESPACE)
        say(f"{args.before} ConfigMaps, a snapshot, {args.after} ConfigMaps")
        etcd_loss.write(lab, NAMESPACE, "before", args.before)
        snapshot = master.run_salt(lab, "master-1", "kubesalt_etcd_snapshot.save")["master-1"]
        snapshot_at = time.monotonic()
        etcd_loss.write(lab, NAMESPACE, "after", args.after)
        say(f"etcd data of {', '.join(LOST)} destroyed")
        for node in LOST:
            etcd_loss.destroy_member_data(lab, node)
        lost_at = time.monotonic()
        say(f"{ORCH} from {snapshot['name']}")
        started = time.monotonic()
        ok, steps = master.orchestrate(lab, ORCH, {"snapshot": snapshot["name"]}, timeout=1800)
        orchestration = time.monotonic() - started
        if not ok:
            raise SystemExit(f"the restore failed: {master.failed_steps(steps)}")
        while not etcd_loss.api_serves(lab):
            time.sleep(0.5)
        serving = time.monotonic() - lost_at
        kept = len(etcd_loss.names(lab, NAMESPACE, "before-"))
        lost = args.after - len(etcd_loss.names(lab, NAMESPACE, "after-"))
        counted = steady_traffic.answers(lab, "steady")
        steady_traffic.stop(lab, "steady")

    asked = sum(c["ok"] + c["fail"] for c in counted.values())
    failed = sum(c["fail"] for c in counted.values())
    result = {
        "snapshot": {k: snapshot.get(k) for k in ("size", "keys", "revision", "seconds")},
        "orchestration_seconds": round(orchestration, 1),
        "loss_to_serving_seconds": round(serving, 1),
        "snapshot_age_at_loss_seconds": round(lost_at - snapshot_at, 1),
        "objects_before_snapshot": args.before,
        "objects_back": kept,
        "objects_after_snapshot": args.after,
        "objects_lost": lost,
        "steps": {
            s.removeprefix("kubesalt-orch-etcd-restore-"): f["seconds"] for s, f in steps.items()
        },
        "requests": asked,
        "failed_requests": failed,
        "answers": counted,
    }
    print(report.table(["step", "seconds"], [[s, f"{v:.1f}"] for s, v in result["steps"].items()]))
    print(report.table(
        ["RTO (orchestration)", "loss to serving", "back", "lost (RPO)", "snapshot",
         "requests failed"],
        [[f"{orchestration:.1f}s", f"{serving:.1f}s", f"{kept}/{args.before}",
          f"{lost}/{args.after} in {lost_at - snapshot_at:.1f}s",
          f"{(snapshot.get('size') or 0) / 1e6:.1f} MB", f"{failed}/{asked}"]],
    ))  # fmt: skip
    report.write_json(args.out, result)
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
