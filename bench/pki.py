"""How fast kubesalt's CA signs, and what an idempotent PKI run costs on one node.

1. Signing for a synthetic cluster (3 masters, the rest workers, a router per 50 nodes):
   every catalogue certificate of every node, signed by the CA side (``sign_requests``),
   once with the CSRs made beforehand (the CA's own cost) and once including each node's
   key generation and CSR (the whole cluster's cost).
2. ``state.apply kubesalt.pki`` on one master that is also the CA host, through a real
   ``salt-call --local`` in a temporary root: the first run (creates the CAs, issues
   everything) and the idempotent runs after it (the state's own duration, and the wall
   time of the whole salt-call).

Writes bench/results/pki.json.

    .venv/bin/python bench/pki.py [--nodes 1000] [--key-type ecdsa-p256] [--runs 5]
"""

import argparse
import datetime
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from common import REPO, RESULTS
from validate import synthetic_pillar

import kubesalt_core.certificates
import kubesalt_core.pillar
import kubesalt_core.pki
from kubesalt_lab import report

NOW = datetime.datetime.now(datetime.UTC)
CERT_STATE = "kubesalt-pki-certificates-present"


def _cas(key_type):
    cas = {}
    for name in kubesalt_core.pki.CAS:
        key = kubesalt_core.certificates.new_private_key(key_type)
        cas[name] = (kubesalt_core.certificates.build_ca(name, key, 3650, NOW), key)
    return cas


def signing(nodes, key_type):
    defaults = yaml.safe_load((REPO / "states" / "kubesalt" / "defaults.yaml").read_text())
    config = kubesalt_core.pillar.merge(defaults, synthetic_pillar(nodes))
    cas = _cas(key_type)
    requests = {}
    start = time.perf_counter()
    for node_id, node in config["nodes"].items():
        identities = kubesalt_core.pki.node_identities(config, node_id, node["roles"])
        requests[node_id] = {
            i.name: kubesalt_core.certificates.build_csr(
                kubesalt_core.certificates.new_private_key(key_type), i.name
            )
            for i in identities
        }
    keygen = time.perf_counter() - start
    count = sum(len(r) for r in requests.values())
    start = time.perf_counter()
    for node_id, csrs in requests.items():
        kubesalt_core.certificates.sign_requests(config, node_id, csrs, cas, 365, NOW)
    sign = time.perf_counter() - start
    return {
        "nodes": nodes,
        "key_type": key_type,
        "certificates": count,
        "sign_only_per_s": round(count / sign, 1),
        "with_keygen_per_s": round(count / (sign + keygen), 1),
        "sign_only_s": round(sign, 2),
        "with_keygen_s": round(sign + keygen, 2),
    }


def _salt_call(conf_dir, *args):
    argv = [
        str(REPO / ".venv" / "bin" / "salt-call"),
        "--local",
        f"--config-dir={conf_dir}",
        "--out=json",
        "--log-level=quiet",
        *args,
    ]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["local"], time.perf_counter() - start


def state_runs(runs):
    with tempfile.TemporaryDirectory(prefix="kubesalt-bench-pki-") as tmp:
        tmp = Path(tmp)
        overlay = tmp / "pillar"
        overlay.mkdir()
        (overlay / "top.sls").write_text("base:\n  '*':\n    - kubesalt\n    - bench\n")
        (overlay / "bench.sls").write_text(
            yaml.safe_dump(
                {
                    "kubesalt": {
                        "paths": {"root": str(tmp / "root")},
                        "pki": {"service_account_wait_seconds": 0},
                    }
                }
            )
        )
        conf_dir = tmp / "conf"
        conf_dir.mkdir()
        (conf_dir / "minion").write_text(
            yaml.safe_dump(
                {
                    "id": "master-1",
                    "root_dir": str(tmp / "salt"),
                    "file_client": "local",
                    "file_roots": {"base": [str(REPO / "states")]},
                    "pillar_roots": {"base": [str(overlay), str(REPO / "pillar")]},
                }
            )
        )
        rows = []
        for index in range(runs + 1):
            ret, wall = _salt_call(conf_dir, "state.apply", "kubesalt.pki")
            (state,) = [v for v in ret.values() if v["__id__"] == CERT_STATE]
            assert state["result"] is True, state["comment"]
            changed = sum(1 for v in ret.values() if v["changes"])
            assert (changed > 0) == (index == 0), f"run {index} changed {changed} states"
            rows.append({"run": index, "state_ms": state["duration"], "wall_s": wall})
    first, rest = rows[0], rows[1:]
    return {
        "first_state_ms": round(first["state_ms"], 1),
        "first_wall_s": round(first["wall_s"], 2),
        "idempotent_state_ms_median": round(statistics.median(r["state_ms"] for r in rest), 1),
        "idempotent_wall_s_median": round(statistics.median(r["wall_s"] for r in rest), 2),
        "idempotent_runs": len(rest),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--key-type", default="ecdsa-p256", choices=kubesalt_core.pillar.KEY_TYPES)
    parser.add_argument("--runs", type=int, default=5, help="idempotent state runs to time")
    parser.add_argument("--out", type=Path, default=RESULTS / "pki.json")
    args = parser.parse_args(argv)

    print(f"signing every certificate of a {args.nodes}-node cluster ...", flush=True)
    sign = signing(args.nodes, args.key_type)
    print(f"{'certs':>6} {'key':>11} {'sign/s':>9} {'incl. keygen/s':>15}")
    print(
        f"{sign['certificates']:>6} {sign['key_type']:>11} {sign['sign_only_per_s']:>9} "
        f"{sign['with_keygen_per_s']:>15}"
    )
    print(f"state.apply kubesalt.pki on one master (CA host), {args.runs + 1} runs ...", flush=True)
    state = state_runs(args.runs)
    print(f"{'run':>12} {'state ms':>9} {'salt-call s':>12}")
    print(f"{'first':>12} {state['first_state_ms']:>9} {state['first_wall_s']:>12}")
    print(
        f"{'idempotent':>12} {state['idempotent_state_ms_median']:>9} "
        f"{state['idempotent_wall_s_median']:>12}   (median of {state['idempotent_runs']})"
    )
    report.write_json(args.out, {"signing": sign, "state": state})


if __name__ == "__main__":
    main()
