"""How long pillar validation takes as a cluster grows.

kubesalt validates the whole cluster pillar when a minion renders top.sls and again in the
validation state, so its cost is paid by every node on every highstate. This measures
merge + validate for synthetic clusters of growing size (3 masters, the rest workers, one
router per 50 nodes) and writes bench/results/validate.json.

    .venv/bin/python bench/validate.py [--sizes 10 100 1000 5000] [--repeat 5]
"""

import argparse
import ipaddress
import statistics
import time
from pathlib import Path

import yaml
from common import REPO, RESULTS

import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
from kubesalt_lab import report


def synthetic_pillar(size):
    hosts = ipaddress.ip_network("198.18.0.0/18").hosts()
    next(hosts)  # leave .1 for the gateway
    nodes = {}
    for index in range(size):
        if index < 3:
            name, roles = f"master-{index + 1}", ["master"]
        elif index % 50 == 0:
            name, roles = f"router-{index}", ["router"]
        else:
            name, roles = f"worker-{index}", ["worker"]
        nodes[name] = {"roles": roles, "ip": str(next(hosts))}
    return {
        "cluster": {"name": "bench", "domain": "cluster.local"},
        "network": {
            "as_number": 64512,
            "node_cidr": "198.18.0.0/18",
            "pod_cidr": "198.19.0.0/16",
            "service_cidr": "198.18.64.0/20",
            "cluster_dns_ip": "198.18.64.10",
        },
        "nodes": nodes,
    }


def measure(size, repeat, defaults):
    pillar = synthetic_pillar(size)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        problems = kubesalt_core.pillar_schema.validate(
            kubesalt_core.pillar.merge(defaults, pillar)
        )
        timings.append(time.perf_counter() - start)
    assert not kubesalt_core.pillar_checks.errors(problems), problems[:3]
    return {
        "nodes": size,
        "median_ms": round(statistics.median(timings) * 1000, 2),
        "max_ms": round(max(timings) * 1000, 2),
        "repeat": repeat,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "validate.json")
    args = parser.parse_args(argv)

    defaults = yaml.safe_load((REPO / "states" / "kubesalt" / "defaults.yaml").read_text())
    rows = [measure(size, args.repeat, defaults) for size in args.sizes]

    print(f"{'nodes':>7} {'median ms':>10} {'max ms':>8}")
    for row in rows:
        print(f"{row['nodes']:>7} {row['median_ms']:>10} {row['max_ms']:>8}")
    report.write_json(args.out, {"benchmark": "pillar validation", "rows": rows})


if __name__ == "__main__":
    main()
