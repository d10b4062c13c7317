"""Workers and pods: how long until the cluster runs pods, how fast pods start, and what the
pod network carries across the workers.

Measures, on this machine, with warm caches:
  - fresh hosts (`down`, `up`), then from `kubesalt-lab apply` to every worker Ready and a
    test Deployment (one busybox httpd per worker) Running and Ready
  - pod start latency: --pods pods created one after another, each from `kubectl apply`
    to Running and Ready (p50, p95, max)
  - pod to pod across the workers: ICMP round trips (busybox ping, --pings of them) and TCP
    throughput (zeros through busybox nc, --megabytes MiB), on the lab's own addresses
Leaves the lab up. Prints a table and writes bench/results/workers.json.

    .venv/bin/python bench/workers.py [--pods N] [--pings N] [--megabytes N]
"""

import argparse
import json
import re
import statistics
import time
from pathlib import Path

from common import REPO, RESULTS, percentile, quiet, say

from kubesalt_lab import config, converge, lifecycle, report, workloads

WORKERS = ("worker-1", "worker-2")


def apply_to_running(lab):
    """Fresh hosts; seconds from apply's start to the nodes Ready and the Deployment ready,
    and apply's own seconds."""
    lifecycle.down(lab, quiet)
    lifecycle.up(lab, quiet)
    start = time.monotonic()
    applied = converge.apply(lab, quiet)
    apply_seconds = time.monotonic() - start
    failed = {n: s["errors"] for n, s in applied.items() if s["failed"]}
    if failed:
        raise SystemExit(f"apply failed: {failed}")
    while workloads.ready_nodes(lab) != list(WORKERS):
        if time.monotonic() - start > 300:
            raise SystemExit("the workers were not Ready within 300 s")
        time.sleep(0.5)
    workloads.apply(lab, workloads.http_server("bench-web", replicas=2))
    workloads.wait_ready(lab, "app=bench-web", 2, timeout=300)
    return time.monotonic() - start, apply_seconds


def pod_starts(lab, count):
    """Seconds from `kubectl apply` of a pod to its Running and Ready, one pod at a time."""
    seconds = []
    for i in range(count):
        name = f"bench-start-{i}"
        pod = workloads.client_pod(name, WORKERS[i % 2])
        pod["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["true"]},
            "periodSeconds": 1,
        }
        start = time.monotonic()
        workloads.apply(lab, pod)
        workloads.wait_ready(lab, f"app={name}", 1, timeout=120)
        seconds.append(time.monotonic() - start)
        workloads.delete(lab, f"pod/{name}")
    return seconds


def pod_to_pod(lab, pings, megabytes):
    """ICMP round trips (ms) and TCP throughput (MiB/s, busybox nc) from a pod on worker-1
    to a pod on worker-2."""
    workloads.apply(lab, *(workloads.client_pod(f"bench-{w}", w) for w in WORKERS))
    for worker in WORKERS:
        workloads.wait_ready(lab, f"app=bench-{worker}", 1)
    (there,) = workloads.pods(lab, "app=bench-worker-2")
    out = workloads.exec_in(
        lab, "bench-worker-1", f"ping -q -c {pings} -i 0.2 -W 2 {there['ip']}", timeout=120
    ).stdout
    match = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    loss = re.search(r"(\d+)% packet loss", out)
    if not match or not loss:
        raise SystemExit(f"ping said: {out}")
    rtt = dict(zip(("min", "avg", "max"), map(float, match.groups()), strict=True))
    # The receiver counts the bytes and notes the kernel's uptime once it has them all (its
    # nc keeps reading while a sleep holds its stdin open); the sender notes it before
    # sending. One kernel, one clock; /proc/uptime has centisecond resolution.
    size = megabytes * 1048576
    workloads.kubectl(
        lab,
        "exec",
        "bench-worker-2",
        "--",
        "sh",
        "-c",
        "rm -f /tmp/end; (sleep 120 | nc -l -p 9000 | "
        f"(head -c {size} > /dev/null; cut -d' ' -f1 /proc/uptime > /tmp/end)) "
        "> /dev/null 2>&1 & sleep 0.5",
    )
    started = workloads.exec_in(
        lab,
        "bench-worker-1",
        "cut -d' ' -f1 /proc/uptime; "
        f"dd if=/dev/zero bs=1048576 count={megabytes} 2>/dev/null | "
        f"timeout 60 nc -w 1 {there['ip']} 9000",
        timeout=120,
    ).stdout.split()[0]
    ended = workloads.exec_in(
        lab,
        "bench-worker-2",
        "for i in $(seq 300); do [ -s /tmp/end ] && break; sleep 0.1; done; cat /tmp/end",
    ).stdout.strip()
    rate = megabytes / (float(ended) - float(started))
    workloads.delete(lab, *(f"pod/bench-{w}" for w in WORKERS))
    return rtt, int(loss.group(1)), rate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS / "workers.json")
    args = parser.parse_args(argv)
    lab = config.load()

    say("fresh hosts, then apply until the workers are Ready and a Deployment runs ...")
    to_running, apply_seconds = apply_to_running(lab)
    say(f"pod starts: {args.pods} pods, one after another ...")
    starts = pod_starts(lab, args.pods)
    say("pod to pod across the workers ...")
    rtt, loss, rate = pod_to_pod(lab, args.pings, args.megabytes)
    workloads.delete(lab, "deployment/bench-web")

    results = {
        "benchmark": "workers",
        "apply_seconds": round(apply_seconds, 1),
        "apply_to_ready_and_running_seconds": round(to_running, 1),
        "pod_start_seconds": [round(s, 2) for s in starts],
        "pod_start_p50_seconds": round(statistics.median(starts), 2),
        "pod_start_p95_seconds": round(percentile(starts, 0.95), 2),
        "ping_ms": rtt,
        "ping_loss_percent": loss,
        "tcp_mebibytes_per_second": round(rate, 1),
        "tcp_megabytes": args.megabytes,
    }
    rows = [
        ["kubesalt-lab apply (fresh hosts)", f"{results['apply_seconds']}s"],
        [
            "apply -> workers Ready and a Deployment Running (aim 90 s)",
            f"{results['apply_to_ready_and_running_seconds']}s",
        ],
        [
            f"pod start, create -> Running and Ready, p50 / p95 / max of {len(starts)}",
            f"{results['pod_start_p50_seconds']}s / {results['pod_start_p95_seconds']}s / "
            f"{max(starts):.2f}s",
        ],
        [
            f"pod -> pod across workers, ICMP rtt min / avg / max ({args.pings}, {loss}% loss)",
            f"{rtt['min']} / {rtt['avg']} / {rtt['max']} ms",
        ],
        [f"pod -> pod across workers, TCP ({args.megabytes} MiB, busybox nc)", f"{rate:.0f} MiB/s"],
    ]
    print(report.table(["measure", "result"], rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
