"""The hardened lab, measured: kube-bench's totals on every node, and the apiserver's
latency creating and reading --secrets Secrets with encryption at rest on (aescbc) and off
(identity).

  - kube-bench v0.15.6 (cis-1.12) inside every master and worker, told where kubesalt's files
    are (``kubesalt_lab.kube_bench``);
  - Secrets: from the first master, one HTTPS connection to its own apiserver (as admin),
    --secrets Secrets of 1 KiB created one after another, then each read back; per request
    latency. Encryption off is pillar ``apiserver:encryption:provider: identity`` applied to
    the masters (the apiservers reload the config by themselves:
    ``kubesalt_encryption.loaded``); the lab's own pillar is restored afterwards.

Uses the lab as it is (up and converged; it is brought up and converged when not).
Prints a table and writes bench/results/hardening.json.

    .venv/bin/python bench/hardening.py [--secrets N]
"""

import json

from common import arguments, converged_lab, percentile, quiet, say

from kubesalt_lab import containers, kube_bench, master, report

NAMESPACE = "kubesalt-bench-secrets"

# Runs inside the first master with its own python3: create N Secrets, read them back.
LOAD = """
import http.client, json, os, ssl, sys, time
ip, count, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pki = "/etc/kubernetes/pki"
context = ssl.create_default_context(cafile=f"{pki}/kubernetes-ca.crt")
context.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
connection = http.client.HTTPSConnection(ip, 6443, context=context)
base = "/api/v1/namespaces/%s/secrets" % sys.argv[4]
def call(method, path, body=None):
    started = time.perf_counter()
    connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    if answer.status >= 300:
        raise SystemExit(f"{method} {path}: {answer.status}")
    return (time.perf_counter() - started) * 1000
value = os.urandom(768).hex()[:1024]
created, read = [], []
for i in range(count):
    body = json.dumps({"metadata": {"name": f"{tag}-{i}"}, "stringData": {"v": value}})
    created.append(call("POST", base, body))
for i in range(count):
    read.append(call("GET", f"{base}/{tag}-{i}"))
print(json.dumps({"create_ms": created, "read_ms": read}))
"""


def _masters(lab):
    return [n.id for n in lab.ordered_nodes() if "master" in n.roles]


def _set_provider(lab, provider):
    """Pillar's provider on every master, applied, and loaded by every apiserver."""
    settings = {} if provider is None else {"apiserver:encryption:provider": provider}
    master.override_pillar(lab, settings)
    masters = ",".join(_masters(lab))
    applied = master.run_salt(lab, masters, "state.sls", "kubesalt.pki", list_target=True)
    for node, states in applied.items():
        failed = [s["comment"] for s in states.values() if not s.get("result")]
        if failed:
            raise SystemExit(f"{node}: {failed[:2]}")
    loaded = master.run_salt(lab, masters, "kubesalt_encryption.loaded", list_target=True)
    if not all(isinstance(v, float | int) for v in loaded.values()):
        raise SystemExit(f"the apiservers did not load the config: {loaded}")


def _load(lab, count, tag):
    first = lab.node(_masters(lab)[0])
    containers.inside(
        lab,
        first,
        ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "create", "namespace", NAMESPACE],
        check=False,
    )
    argv = ["python3", "-c", LOAD, first.ip, str(count), tag, NAMESPACE]
    found = json.loads(containers.inside(lab, first, argv, timeout=600).stdout)
    stored = master.run_salt(lab, first.id, "kubesalt_encryption.stored")[first.id]
    return found, stored


def _summary(values):
    return {
        "p50_ms": round(percentile(values, 0.5), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "mean_ms": round(sum(values) / len(values), 2),
    }


def main(argv=None):
    parser = arguments(__doc__, "hardening")
    parser.add_argument("--secrets", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.secrets < 1:
        parser.error("--secrets must be at least 1")
    lab = converged_lab()

    say("kube-bench on every master and worker")
    reports = kube_bench.run_all(lab, quiet)
    bench_rows, bench_results = [], []
    for kind, found in reports.items():
        for r in found:
            bench_rows.append([kind, r.node, r.passed, r.failed, r.warned])
            bench_results.append(
                {"kind": kind, "node": r.node, "pass": r.passed, "fail": r.failed,
                 "warn": r.warned, "info": r.info}
            )  # fmt: skip

    secrets = {}
    try:
        for provider in ("aescbc", "identity"):
            say(f"{args.secrets} Secrets with {provider}")
            _set_provider(lab, provider)
            found, stored = _load(lab, args.secrets, provider)
            secrets[provider] = {
                "create": _summary(found["create_ms"]),
                "read": _summary(found["read_ms"]),
                "stored": stored,
            }
    finally:
        say("the lab's own pillar back")
        _set_provider(lab, None)
        containers.inside(
            lab,
            lab.node(_masters(lab)[0]),
            ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "delete", "namespace",
             NAMESPACE, "--wait=false"],
            check=False,
        )  # fmt: skip

    print(report.table(["kind", "node", "pass", "fail", "warn"], bench_rows))
    rows = [
        [provider, f"{m['create']['p50_ms']:.1f} / {m['create']['p99_ms']:.1f}",
         f"{m['read']['p50_ms']:.1f} / {m['read']['p99_ms']:.1f}"]
        for provider, m in secrets.items()
    ]  # fmt: skip
    print(
        report.table(
            [f"{args.secrets} Secrets (1 KiB)", "create p50 / p99 ms", "read p50 / p99 ms"], rows
        )
    )
    report.write_json(
        args.out,
        {
            "benchmark": "hardening",
            "kube_bench": bench_results,
            "secrets": args.secrets,
            "encryption": secrets,
        },
    )


if __name__ == "__main__":
    main()
