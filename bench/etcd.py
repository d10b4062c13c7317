"""How long an etcd membership change takes, and how much of it is etcd's own 5 s guard.

A real 3-member etcd cluster (Debian etcd-server) on 127.0.0.1. Each round joins a 4th
member the way kubesalt_etcd.member_present does (add as learner, start it with the list etcd
returned, wait until it answers with a leader, promote once in sync) and then removes it.
Every gateway call goes through kubesalt's own client (kubesalt_core.etcd_client). Time
spent on etcd's answers is split by reason: 503 "unhealthy cluster" (the strict
reconfiguration guard, for ~5 s after a start or promote), "not in sync" (the learner
still catching up), and the rest.

Writes bench/results/etcd.json.

    .venv/bin/python bench/etcd.py [--rounds 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import RESULTS

import kubesalt_core.errors
import kubesalt_core.etcd
import kubesalt_core.etcd_client
from kubesalt_lab import local_etcd as etcd
from kubesalt_lab import report


class Clock:
    """Books the waits of kubesalt's own retry loop by reason."""

    def __init__(self):
        self.waits = {"guard_503": 0.0, "catching_up": 0.0, "other": 0.0}

    def book(self, err, seconds):
        text = str(err).lower()
        if "unhealthy cluster" in text:
            self.waits["guard_503"] += seconds
        elif "in sync" in text:
            self.waits["catching_up"] += seconds
        else:
            self.waits["other"] += seconds

    def retry(self, action, timeout=60):
        return kubesalt_core.etcd_client.retrying(action, "bench", timeout, on_retry=self.book)


def one_round(cluster, gateway, workdir, index):
    clock = Clock()
    joiner = etcd.new_member(f"bench-{index}", workdir)
    t0 = time.monotonic()

    def add():
        answer = gateway.post(
            kubesalt_core.etcd.MEMBER_ADD, {"peerURLs": [joiner.peer_url], "isLearner": True}
        )
        return kubesalt_core.etcd.members_of(answer)

    members = clock.retry(add)
    added = kubesalt_core.etcd.find(members, peer_urls=[joiner.peer_url])
    initial = kubesalt_core.etcd.initial_cluster(members, joiner.name, [joiner.peer_url])
    etcd.launch(joiner, initial, "existing", "bench")
    t_added = time.monotonic()

    def ready():
        answer = gateway.post(kubesalt_core.etcd.STATUS, endpoints=[joiner.client_url], timeout=2)
        if str(answer.get("leader", "0")) == "0":
            raise kubesalt_core.errors.Unreachable("no leader yet")
        return answer

    clock.retry(ready)
    t_ready = time.monotonic()
    clock.retry(lambda: gateway.post(kubesalt_core.etcd.MEMBER_PROMOTE, {"ID": added.id}))
    t_promoted = time.monotonic()

    t1 = time.monotonic()
    clock.retry(lambda: gateway.post(kubesalt_core.etcd.MEMBER_REMOVE, {"ID": added.id}))
    t_removed = time.monotonic()
    joiner.process.wait(timeout=30)  # a removed member exits by itself
    join_waits = dict(clock.waits)
    return {
        "join_s": round(t_promoted - t0, 3),
        "add_s": round(t_added - t0, 3),
        "start_to_ready_s": round(t_ready - t_added, 3),
        "promote_s": round(t_promoted - t_ready, 3),
        "remove_s": round(t_removed - t1, 3),
        "waits_s": {k: round(v, 3) for k, v in join_waits.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "etcd.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kubesalt-bench-etcd-") as tmp:
        cluster = etcd.start_cluster(3, Path(tmp))
        try:
            gateway = kubesalt_core.etcd_client.Gateway(cluster.client_urls, context=None)
            print(
                f"3-member cluster on 127.0.0.1; {args.rounds} rounds of join + remove", flush=True
            )
            print(
                f"{'round':>5} {'join s':>7} {'503 guard s':>12} {'catch-up s':>11} {'remove s':>9}"
            )
            rounds = []
            for index in range(args.rounds):
                row = one_round(cluster, gateway, Path(tmp), index)
                rounds.append(row)
                print(
                    f"{index + 1:>5} {row['join_s']:>7} {row['waits_s']['guard_503']:>12} "
                    f"{row['waits_s']['catching_up']:>11} {row['remove_s']:>9}",
                    flush=True,
                )
        finally:
            cluster.kill()
    first, later = rounds[0], rounds[1:] or rounds[:1]
    summary = {
        "rounds": len(rounds),
        "first_join_s": first["join_s"],
        "first_join_guard_503_s": first["waits_s"]["guard_503"],
        "later_join_s_median": round(statistics.median(r["join_s"] for r in later), 3),
        "later_join_guard_503_s_median": round(
            statistics.median(r["waits_s"]["guard_503"] for r in later), 3
        ),
        "remove_s_median": round(statistics.median(r["remove_s"] for r in rounds), 3),
    }
    print(
        f"first join (cluster just started): {summary['first_join_s']} s, of which the 503 "
        f"guard {summary['first_join_guard_503_s']} s; later joins: median "
        f"{summary['later_join_s_median']} s (guard {summary['later_join_guard_503_s_median']} s); "
        f"median remove {summary['remove_s_median']} s"
    )
    report.write_json(args.out, {"summary": summary, "rounds": rounds})


if __name__ == "__main__":
    main()
