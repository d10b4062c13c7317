"""kube-bench in the lab: its build recipe and how its JSON report is read."""

import json

import pytest
import yaml

import kubesalt_core.unit
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


def test_the_overlay_names_the_files_kubesalt_writes():
    """kube-bench's config for the lab names the unit, config and kubeconfig files kubesalt
    renders for each component, so its mode and flag checks read kubesalt's files."""
    config = kube_bench._lab_config()
    overlay = kube_bench.config_overlay(config)
    master = {
        name: kubesalt_core.unit.render(config, "master-1", name)
        for name in ("kube-apiserver", "kube-scheduler", "kube-controller-manager", "etcd")
    }
    assert overlay["master"]["apiserver"]["confs"] == [master["kube-apiserver"].unit_path]
    assert overlay["master"]["scheduler"]["kubeconfig"] == [
        master["kube-scheduler"].credentials[-1]
    ]
    assert overlay["master"]["controllermanager"]["defaultconf"] == (
        master["kube-controller-manager"].unit_path
    )
    assert overlay["etcd"]["etcd"]["confs"] == [master["etcd"].unit_path]
    assert overlay["etcd"]["etcd"]["datadirs"] == [config["paths"]["etcd_data_dir"]]
    kubelet = kubesalt_core.unit.render(config, "worker-1", "kubelet")
    node = overlay["node"]["kubelet"]
    assert node["svc"] == [kubelet.unit_path]
    assert node["confs"] == [p for p in kubelet.files if p.endswith("config.yaml")]
    assert node["kubeconfig"] == [kubelet.credentials[-1]]
    client_ca = yaml.safe_load(kubelet.files[node["confs"][0]][0])["authentication"]["x509"]
    assert node["cafile"] == [client_ca["clientCAFile"]]
