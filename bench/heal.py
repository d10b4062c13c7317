"""Self-healing on the lab's real hosts: time to repair, and a storm of events.

MTTR: --rounds rounds; in each, systemd gives up on six units at once (on the masters, in
turn, etcd on one, kube-apiserver on another and Typha on the third, so quorum holds;
containerd on both workers; BIRD on the router) the way it does in production: start limit
used up, then the main process SIGKILLed. Nobody acts; the journal
beacon, the reactor and kubesalt_heal.repair bring them back. MTTR is read from each host's
journal: from systemd's "Failed to start" (the moment it gave up) to the unit's next
"Started". Each round waits until every repair has held (heal:hold_seconds, and for the
apiserver and Typha their own readiness answering) before the next.

Storm: containerd on worker-2 is failed the same way and 50 copies of its failure event
arrive at once: repairs made, MTTR (as above), time from the events to active, most repair
jobs seen running at once on the node (sampled every 0.5 s), time until every job has
ended, and the slowest answer of the minion meanwhile.

Prints a table and writes bench/results/heal.json.

    .venv/bin/python bench/heal.py [--rounds N] [--keep]
"""

import statistics
import threading
import time

from common import arguments, fresh_lab, percentile, quiet

from kubesalt_lab import converge, heal, report


def one_round(lab, broken):
    since = time.time()
    threads = [threading.Thread(target=heal.give_up, args=(lab, n, u)) for n, u in broken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = []
    for node_id, unit in broken:
        heal.wait_repair_recorded(lab, node_id, unit, since, timeout=120)
        failed, started = heal.time_to_repair(lab, node_id, unit, since)
        if failed is None or started is None:
            raise SystemExit(f"{unit} on {node_id}: no give-up/start pair in the journal")
        samples.append({"node": node_id, "unit": unit, "mttr_s": round(started - failed, 3)})
    return samples


def storm(lab, events=50):
    node_id, unit = "worker-2", "containerd.service"
    heal.salt(lab, node_id, "kubesalt_heal.reset", unit)
    since = time.time()
    heal.give_up(lab, node_id, unit)
    tag = heal.BEACON_TAG.format(node=node_id)
    data = {"id": node_id, "unit": unit, "result": "start-limit-hit"}
    start = time.monotonic()
    heal.forge(lab, node_id, [(tag, data)] * events)
    most, active_s, pings = 0, None, []
    while True:
        ping_start = time.monotonic()
        running = heal.repair_jobs_running(lab, node_id)
        pings.append(time.monotonic() - ping_start)
        most = max(most, running or 0)
        if active_s is None and heal.unit_props(lab, node_id, unit)["ActiveState"] == "active":
            active_s = time.monotonic() - start
        if running == 0 and active_s is not None:
            break
        if time.monotonic() - start > 300:
            raise SystemExit("storm: repair jobs still running after 300 s")
        time.sleep(0.5)
    drained_s = time.monotonic() - start
    repairs = heal.wait_repair_recorded(lab, node_id, unit, since)
    failed, started = heal.time_to_repair(lab, node_id, unit, since)
    return {
        "mttr_s": round(started - failed, 3),
        "events": events,
        "repairs": [(r["action"], r["held"]) for r in repairs],
        "active_after_s": round(active_s, 2),
        "most_repair_jobs_at_once": most,
        "all_jobs_ended_after_s": round(drained_s, 2),
        "minion_answer_s_worst": round(max(pings), 2),
    }


def main(argv=None):
    parser = arguments(__doc__, "heal", keep="leave the lab up afterwards")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 6 failures")
    args = parser.parse_args(argv)

    with fresh_lab(args.keep) as lab:
        converge.apply(lab, quiet)
        masters = [n.id for n in lab.ordered_nodes() if "master" in n.roles]
        on_masters = ("etcd.service", "kube-apiserver.service", "calico-typha.service")
        units = [(m, u) for m in masters for u in on_masters] + [
            ("worker-1", "containerd.service"),
            ("worker-2", "containerd.service"),
            ("router-1", "bird.service"),
        ]
        for node_id, unit in units:  # a fresh budget for this run
            heal.salt(lab, node_id, "kubesalt_heal.reset", unit)
        samples = []
        for i in range(args.rounds):
            broken = [
                (masters[(i + k) % len(masters)], unit) for k, unit in enumerate(on_masters)
            ] + [
                ("worker-1", "containerd.service"),
                ("worker-2", "containerd.service"),
                ("router-1", "bird.service"),
            ]
            samples += one_round(lab, broken)
            print(f"round {i + 1}/{args.rounds}: {[s['mttr_s'] for s in samples[-6:]]}")
        stormed = storm(lab)

    mttr = [s["mttr_s"] for s in samples]
    rows = []
    for unit in sorted({s["unit"] for s in samples}):
        mine = [s["mttr_s"] for s in samples if s["unit"] == unit]
        rows.append([unit, str(len(mine)), f"{statistics.median(mine):.2f}", f"{max(mine):.2f}"])
    rows.append(["all", str(len(mttr)), f"{statistics.median(mttr):.2f}", f"{max(mttr):.2f}"])
    print(report.table(["unit", "failures", "MTTR p50 s", "max s"], rows))
    print(f"MTTR p95 over {len(mttr)} failures: {percentile(mttr, 0.95):.2f} s")
    print(report.table(["storm", "value"], [[k, str(v)] for k, v in stormed.items()]))
    report.write_json(
        args.out,
        {
            "failures": samples,
            "mttr_p50_s": statistics.median(mttr),
            "mttr_p95_s": percentile(mttr, 0.95),
            "storm": stormed,
        },
    )


if __name__ == "__main__":
    main()
