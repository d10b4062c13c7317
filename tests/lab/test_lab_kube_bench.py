"""The CIS Kubernetes benchmark (kube-bench v0.15.6, cis-1.12), built here from its Go
module, run inside a master and a worker of the lab: every check runs, and nothing fails
that is not on the known list (``kube_bench.KNOWN_FAILS``, each entry with its reason)."""

from kubesalt_lab import kube_bench
from tests.lab.conftest import quiet


def test_kube_bench_runs_every_check_and_fails_only_the_known_ones(applied):
    reports = kube_bench.run_all(applied, quiet)
    assert set(reports) == {"master", "worker"}
    for kind, found in reports.items():
        counted = found.passed + found.failed + found.warned + found.info
        listed = sum(len(checks) for checks in found.checks.values())
        # cis-1.12: 106 checks for a master's four targets, 25 for a worker's node target.
        assert counted == listed >= {"master": 100, "worker": 20}[kind], (kind, found)
        failed = {number for number, _text in found.checks.get("FAIL", [])}
        unexpected = failed - set(kube_bench.KNOWN_FAILS[kind])
        assert not unexpected, (kind, sorted(unexpected), found.checks["FAIL"])
        assert found.passed > 0, found
