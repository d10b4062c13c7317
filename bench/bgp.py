"""BGP: building Calico's resources and the routers' BIRD config for a large cluster, and
the time to Established in the lab.

  - build the BGP resources (BGPConfiguration, BGPPeers, node addresses, IPPools) for 1,000
    workers and 4 routers, and run the layout checks;
  - render one router's bird.conf for 1,000 workers and parse it with `bird -p`;
  - in the lab (unless --no-lab): restart a worker's calico-bird and time until the
    router reports its session Established and its pod block is in the other worker's
    kernel, --runs times; then, for a Service of type LoadBalancer (policy Local, a pod on
    each worker), power a worker's host off (worker-2 and worker-1 in turn) and time until
    the router stops using it, and after booting it again until its path is back.
Prints a table and writes bench/results/bgp.json.

    .venv/bin/python bench/bgp.py [--runs N] [--no-lab]
"""

import argparse
import copy
import ipaddress
import itertools
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import RESULTS, quiet

import kubesalt_core.calico
import kubesalt_core.pillar_schema
from kubesalt_lab import bgp, config, containers, converge, lifecycle, report, workloads
from kubesalt_lab.pillar import lab_config


def big_cluster(workers=1000, routers=4):
    cluster = copy.deepcopy(lab_config())
    cluster["network"]["node_cidr"] = "198.18.0.0/20"
    cluster["network"]["service_cidr"] = "198.18.16.0/20"
    hosts = ipaddress.ip_network("198.18.0.0/20").hosts()
    nodes = {}
    for i in range(3):
        nodes[f"master-{i + 1}"] = {"roles": ["master"], "ip": str(next(hosts))}
    for i in range(routers):
        nodes[f"router-{i + 1}"] = {"roles": ["router"], "ip": str(next(hosts))}
    for i in range(workers):
        nodes[f"worker-{i + 1}"] = {"roles": ["worker"], "ip": str(next(hosts))}
    cluster["nodes"] = nodes
    return cluster


def timed(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def lab_established(runs):
    lab = config.load()
    lifecycle.up(lab, quiet)
    applied = converge.apply(lab, quiet)
    assert all(s["failed"] == 0 for s in applied.values()), applied
    worker_1, worker_2 = (n for n in lab.ordered_nodes() if n.id in ("worker-1", "worker-2"))
    (block, *_) = workloads.blocks(lab)["worker-2"]
    established, routed = [], []
    for _ in range(runs):
        containers.inside(lab, worker_2, ["systemctl", "stop", "calico-bird.service"])
        while block in bgp.kernel_routes(lab, worker_1):
            time.sleep(0.2)
        start = time.monotonic()
        containers.inside(lab, worker_2, ["systemctl", "start", "calico-bird.service"])
        up = None
        while True:
            now = time.monotonic() - start
            states = {r[1]: r[3] for r in bgp.sessions(lab)}
            if up is None and states.get("node_worker_2", "").startswith("Established"):
                up = now
            if up is not None and block in bgp.kernel_routes(lab, worker_1):
                established.append(up)
                routed.append(now)
                break
            if now > 60:
                raise SystemExit("worker-2 did not come back within 60 s")
            time.sleep(0.1)
    return established, routed


def _load_balancer_paths(lab, address):
    router = lab.node("router-1")
    return sorted(bgp.kernel_paths(lab, router).get(address, []))


def _until(check, limit, what):
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise SystemExit(f"{what}: not within {limit} s")
        time.sleep(0.1)
    return time.monotonic() - start


def lab_load_balancer(runs):
    """Seconds until the router drops a powered-off worker's path to a LoadBalancer
    address, and until the path is back once the host booted again."""
    lab = config.load()
    service = workloads.service("bench-lb")
    service["spec"].update({"type": "LoadBalancer", "externalTrafficPolicy": "Local"})
    workloads.apply(lab, workloads.http_server("bench-lb", replicas=2), service)
    workloads.wait_ready(lab, "app=bench-lb", 2)
    ips = {n.id: n.ip for n in lab.nodes if n.id in ("worker-1", "worker-2")}

    def address():
        status = workloads.get(lab, "service", "bench-lb").get("status", {})
        found = [i.get("ip") for i in status.get("loadBalancer", {}).get("ingress", [])]
        return found[0] if found else None

    _until(lambda: address() is not None, 60, "an address for bench-lb")
    ip = address()
    both = sorted(ips.values())
    _until(lambda: _load_balancer_paths(lab, ip) == both, 60, "both paths")
    withdrawn, back = [], []
    try:
        for _, victim in zip(range(runs), itertools.cycle(("worker-2", "worker-1"))):
            other = [v for k, v in ips.items() if k != victim]
            lifecycle.stop_host(lab, victim, quiet)
            try:
                withdrawn.append(
                    _until(lambda o=other: _load_balancer_paths(lab, ip) == o, 60, "withdrawal")
                )
            finally:
                start = time.monotonic()
                lifecycle.start_host(lab, victim, quiet)
            _until(lambda: _load_balancer_paths(lab, ip) == both, 300, "the path back")
            back.append(time.monotonic() - start)
    finally:
        workloads.delete(lab, "deployment/bench-lb", "service/bench-lb")
    return withdrawn, back


def _p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _lab_row(results, key, label, seconds):
    """Book ``seconds`` under ``key`` in the JSON; the table's row: p50 and p95."""
    results[key] = [round(s, 2) for s in seconds]
    return [
        f"lab: {label} (p50 / p95)",
        f"{statistics.median(seconds):.2f} s / {_p95(seconds):.2f} s",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-lab", action="store_true", help="skip the lab measurement")
    parser.add_argument("--out", type=Path, default=RESULTS / "bgp.json")
    args = parser.parse_args(argv)

    cluster = big_cluster()
    problems = kubesalt_core.pillar_schema.validate(cluster)
    assert not problems, problems[:3]
    build_s, objects = timed(lambda: kubesalt_core.calico.resources(cluster))
    check_s, found = timed(lambda: kubesalt_core.calico.problems(cluster))
    assert not found, found
    render_s, text = timed(lambda: kubesalt_core.calico.bird_config(cluster, "router-1"))
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write(text)
        conf.flush()

        def parse():
            return subprocess.run(["bird", "-p", "-c", conf.name], capture_output=True, check=True)

        parse_s, _ = timed(parse)
    results = {
        "benchmark": "bgp",
        "workers": 1000,
        "routers": 4,
        "resources": len(objects),
        "build_resources_ms": round(build_s * 1000, 2),
        "layout_checks_ms": round(check_s * 1000, 2),
        "render_bird_conf_ms": round(render_s * 1000, 2),
        "bird_conf_lines": text.count("\n"),
        "bird_parse_ms": round(parse_s * 1000, 2),
    }
    rows = [
        ["build resources (1,000 workers, 4 routers)", f"{results['build_resources_ms']} ms"],
        ["layout checks", f"{results['layout_checks_ms']} ms"],
        ["render bird.conf (1,000 sessions)", f"{results['render_bird_conf_ms']} ms"],
        ["bird -p of that config", f"{results['bird_parse_ms']} ms"],
    ]
    if not args.no_lab:
        established, routed = lab_established(args.runs)
        withdrawn, back = lab_load_balancer(args.runs)
        rows += [
            _lab_row(results, "lab_established_seconds", "calico-bird start -> Established",
                     established),
            _lab_row(results, "lab_route_in_kernel_seconds",
                     "-> route in the other worker's kernel", routed),
            _lab_row(results, "lab_lb_path_withdrawn_seconds",
                     "worker powered off -> router drops its LB path", withdrawn),
            _lab_row(results, "lab_lb_path_back_seconds",
                     "worker booted -> its LB path back", back),
        ]  # fmt: skip
    print(report.table(["step", "time"], rows))
    report.write_json(args.out, results)


if __name__ == "__main__":
    main()
