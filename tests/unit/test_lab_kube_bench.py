"""kube-bench in the lab: its build recipe and how its JSON report is read."""

import json

import pytest

from kubesalt_lab import kube_bench, recipes
from kubesalt_lab.config import LabError


def _report(results, totals):
    """A document shaped as kube-bench v0.15.6 prints with --json."""
    return json.dumps(
        {
            "Controls": [
                {
                    "id": "4",
                    "version": "cis-1.12",
                    "node_type": "node",
                    "tests": [
                        {
                            "section": "4.1",
                            "results": [
                                {"test_number": number, "test_desc": text, "status": status}
                                for number, text, status in results
                            ],
                        }
                    ],
                }
            ],
            "Totals": totals,
        }
    )


def test_a_report_gives_its_totals_and_the_checks_by_state():
    output = _report(
        [
            ("4.1.1", "kubelet service file permissions", "FAIL"),
            ("4.1.2", "kubelet service file ownership", "PASS"),
            ("4.2.13", "strong ciphers", "WARN"),
        ],
        {"total_pass": 1, "total_fail": 1, "total_warn": 1, "total_info": 0},
    )
    found = kube_bench.parse("worker-1", output)
    assert (found.node, found.passed, found.failed, found.warned, found.info) == (
        "worker-1", 1, 1, 1, 0,
    )  # fmt: skip
    assert found.checks["FAIL"] == [("4.1.1", "kubelet service file permissions")]
    assert found.checks["WARN"] == [("4.2.13", "strong ciphers")]


def test_output_that_is_not_a_report_names_the_node():
    with pytest.raises(LabError, match="kube-bench on master-1 printed no JSON: boom"):
        kube_bench.parse("master-1", "boom")


def test_the_recipe_ships_the_checks_of_the_one_benchmark_it_runs():
    (release,) = recipes.KUBE_BENCH.releases
    members = recipes.release_members(release, recipes.KUBE_BENCH_VERSION)
    assert members["kube-bench"] == "kube-bench"
    assert members["cfg/config.yaml"] == "source:cfg/config.yaml"
    for name in ("master", "node", "etcd", "controlplane", "policies", "config"):
        path = f"cfg/{recipes.KUBE_BENCH_BENCHMARK}/{name}.yaml"
        assert members[path] == f"source:{path}"
    stamps = recipes.ldflags(recipes.KUBE_BENCH, recipes.Resolved("0.15.6", "v0.15.6", "", ""))
    assert "github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=v0.15.6" in stamps
