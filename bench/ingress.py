"""The ingress in the lab, measured from the router host: requests per second and latency
through NGINX's Ingress Controller, time from creating an Ingress until it answers, and
time until the router stops sending to a powered-off worker.

  - load: Apache's ``ab`` (Debian's apache2-utils, on the router host) sends --requests
    requests, --concurrency at a time, keep-alive, bounded by --seconds, to the ingress's
    load balancer address for an Ingress whose backends run on both workers;
  - Ingress -> answer: an Ingress for a new host name is created and the router asks it
    every 0.1 s until the backend answers (--runs times);
  - a worker's host powered off (worker-2 and worker-1 in turn): seconds until the router's
    route to the address has only the other worker, and whether requests sent meanwhile
    failed.

Uses the lab as it is (up and converged; it is brought up and converged when not).
Prints a table and writes bench/results/ingress.json.

    .venv/bin/python bench/ingress.py [--runs N] [--requests N] [--concurrency N]
"""

import calendar
import itertools
import re
import statistics
import time

from common import arguments, converged_lab, percentile, quiet, say

from kubesalt_lab import (
    bgp,
    containers,
    ingress_traffic,
    lifecycle,
    report,
    workloads,
)

HOST = "bench.lab.test"
NAMESPACE = ingress_traffic.NAMESPACE


def _until(check, limit, what, interval=0.1):
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise SystemExit(f"{what}: not within {limit} s")
        time.sleep(interval)
    return time.monotonic() - start


def _router(lab):
    return lab.node(ingress_traffic.ROUTER)


def _paths(lab, address):
    return sorted(bgp.kernel_paths(lab, _router(lab)).get(address, []))


def parse_ab(text):
    """What ``ab`` reports: requests per second, failed and non-2xx answers, and its
    percentiles of the total time per request (ms)."""

    def number(pattern, default=None):
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else default

    percentiles = {
        int(p): float(ms) for p, ms in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.MULTILINE)
    }
    return {
        "requests": int(number(r"^Complete requests:\s+(\d+)", 0)),
        "seconds": number(r"^Time taken for tests:\s+([\d.]+)"),
        "failed": int(number(r"^Failed requests:\s+(\d+)", 0)),
        "non_2xx": int(number(r"^Non-2xx responses:\s+(\d+)", 0)),
        "rps": number(r"^Requests per second:\s+([\d.]+)"),
        "p50_ms": percentiles.get(50),
        "p99_ms": percentiles.get(99),
    }


def load(lab, address, requests, concurrency, seconds):
    # -t before -n: ab's -t alone means 50,000 requests. -r: a reset counts as a failure
    # instead of ending the run.
    argv = ["ab", "-r", "-k", "-l", "-q", "-t", str(seconds), "-n", str(requests),
            "-c", str(concurrency), "-s", "5", "-H", f"Host: {HOST}",
            f"http://{address}/one"]  # fmt: skip
    proc = containers.inside(lab, _router(lab), argv, check=False, timeout=seconds + 30)
    if proc.returncode != 0:
        raise SystemExit(f"ab failed: {proc.stderr.strip()[-400:]}")
    return parse_ab(proc.stdout)


def ingress_to_answer(lab, address, runs):
    """Seconds from creating an Ingress for a new host until the router gets its backend."""
    seconds = []
    for run in range(runs):
        host = f"new-{run}.{HOST}"
        created = ingress_traffic.ingress(f"bench-new-{run}", host, {"/one": "bench-one"})
        workloads.apply(lab, created)
        try:
            seconds.append(
                _until(
                    lambda h=host: ingress_traffic.fetch(lab, address, h, "/one")["status"] == 200,
                    120,
                    f"{host} answering",
                )
            )
        finally:
            workloads.delete(lab, f"ingress/bench-new-{run}")
        say(f"Ingress -> answer: {seconds[-1]:.2f} s")
    return seconds


def _controller_back(lab, node, since):
    """True once the controller on ``node`` is ready in a container started after
    ``since`` (a wall-clock time): a pod's Ready from before the power-off does not count."""
    pods = workloads.get(lab, "pods", "-n", NAMESPACE, "-l", ingress_traffic.SELECTOR)["items"]
    for pod in pods:
        if pod["spec"].get("nodeName") != node:
            continue
        for status in pod["status"].get("containerStatuses", []):
            started = (status.get("state", {}).get("running") or {}).get("startedAt")
            if status.get("ready") and started and _epoch(started) > since:
                return True
    return False


def _epoch(stamp):
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def lost_worker(lab, address, runs):
    """Seconds until the router drops a powered-off worker's path; requests sent while it
    was not yet dropped, and failed ones among them."""
    ips = {n.id: n.ip for n in lab.nodes if n.id in ("worker-1", "worker-2")}
    both = sorted(ips.values())
    withdrawn, sent, failed = [], 0, 0
    for _, victim in zip(range(runs), itertools.cycle(("worker-2", "worker-1"))):
        _until(lambda: _paths(lab, address) == both, 300, "both paths")
        other = [ip for node, ip in ips.items() if node != victim]
        lifecycle.stop_host(lab, victim, quiet)
        stopped_at, start = time.time(), time.monotonic()
        try:
            while _paths(lab, address) != other:
                answer = ingress_traffic.fetch(lab, address, HOST, "/one")
                sent += 1
                failed += answer["status"] != 200
                if time.monotonic() - start > 60:
                    raise SystemExit(f"{victim}'s path not withdrawn within 60 s")
            withdrawn.append(time.monotonic() - start)
        finally:
            lifecycle.start_host(lab, victim, quiet)
        say(f"{victim} off: path withdrawn after {withdrawn[-1]:.2f} s")
        _until(lambda v=victim, t=stopped_at: _controller_back(lab, v, t), 300,
               f"{victim}'s controller ready again", interval=1)  # fmt: skip
    _until(lambda: _paths(lab, address) == both, 300, "both paths back")
    return withdrawn, sent, failed


def main(argv=None):
    parser = arguments(__doc__, "ingress")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=30, help="bound of the load run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.requests < 1 or args.concurrency < 1 or args.seconds < 1:
        parser.error("--runs, --requests, --concurrency and --seconds must be at least 1")

    lab = converged_lab()
    workloads.wait_ready(lab, ingress_traffic.SELECTOR, 2, NAMESPACE, timeout=300)
    address = ingress_traffic.address(lab)
    if address is None:
        raise SystemExit("the ingress Service has no load balancer address")
    backend = ingress_traffic.backend("bench-one", "/one")
    workloads.apply(lab, *backend, ingress_traffic.ingress("bench", HOST, {"/one": "bench-one"}))
    try:
        workloads.wait_ready(lab, "app=bench-one", 2)
        _until(lambda: ingress_traffic.fetch(lab, address, HOST, "/one")["status"] == 200, 120,
               "the bench Ingress answering")  # fmt: skip
        say(f"load: {args.requests} requests, {args.concurrency} at a time, to {address}")
        measured = load(lab, address, args.requests, args.concurrency, args.seconds)
        created = ingress_to_answer(lab, address, args.runs)
        withdrawn, sent, failed = lost_worker(lab, address, args.runs)
    finally:
        workloads.delete(lab, "ingress/bench", *(f"{o['kind'].lower()}/bench-one" for o in backend))
    results = {
        "benchmark": "ingress",
        "address": address,
        "load": {**measured, "concurrency": args.concurrency},
        "ingress_to_answer_seconds": [round(s, 2) for s in created],
        "worker_off_path_withdrawn_seconds": [round(s, 2) for s in withdrawn],
        "requests_before_withdrawal": sent,
        "failed_before_withdrawal": failed,
    }
    rows = [
        [f"requests per second (ab, keep-alive, c={args.concurrency})",
         f"{measured['rps']:.0f} ({measured['requests']} sent, "
         f"{measured['failed'] + measured['non_2xx']} failed)"],
        ["latency p50 / p99", f"{measured['p50_ms']:.0f} ms / {measured['p99_ms']:.0f} ms"],
        ["Ingress created -> answers (p50 / max)",
         f"{statistics.median(created):.2f} s / {max(created):.2f} s"],
        ["worker off -> router drops its path (p50 / p95)",
         f"{statistics.median(withdrawn):.2f} s / {percentile(withdrawn, 0.95):.2f} s"],
        ["requests failed before the path was dropped", f"{failed} of {sent}"],
    ]  # fmt: skip
    print(report.table(["ingress (from the router host)", "measured"], rows))
    report.write_json(args.out, results)


if __name__ == "__main__":
    main()
