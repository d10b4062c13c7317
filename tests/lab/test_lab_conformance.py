"""Kubernetes' own conformance suite (upstream's ``e2e.test``, built from the cluster's
Kubernetes version) against the lab, through ``kubesalt-lab conformance``: the sig-network
and DNS specs, and the admission webhook, CRD conversion webhook and aggregated API specs.
``make conformance`` runs all of them (bench/conformance.py).
"""

import subprocess

import pytest
import yaml

from kubesalt_lab import conformance, master, registry
from tests.lab.conftest import LAB_CLI

# The spec names select what upstream calls sig-network's and DNS' conformance tests ...
NETWORK_AND_DNS = r"\[sig-network\]|DNS"
# ... and everything the apiservers reach through a Service: webhooks and aggregated APIs.
WEBHOOKS_AND_AGGREGATOR = (
    r"\[sig-api-machinery\] (AdmissionWebhook|CustomResourceConversionWebhook|Aggregator)"
)


@pytest.fixture(scope="module")
def cluster(lab_up, first_apply):
    lab, _ = lab_up
    for node_id, summary in first_apply.items():
        assert (summary["failed"], summary["errors"]) == (0, []), (node_id, summary)
    return lab


def _cli(*args, timeout=None):
    return subprocess.run([*LAB_CLI, *args], capture_output=True, text=True, timeout=timeout)


def _conformance(report_dir, focus):
    said = _cli("conformance", "--focus", focus, "--report-dir", str(report_dir))
    result = conformance.read_junit(report_dir / conformance.JUNIT)
    return said, result


def test_kubeconfig_is_self_contained_and_reaches_the_lab_from_this_machine(cluster, tmp_path):
    said = _cli("kubeconfig")
    assert said.returncode == 0, said.stderr
    document = yaml.safe_load(said.stdout)
    (user,) = document["users"]
    (entry,) = document["clusters"]
    assert set(user["user"]) == {"client-certificate-data", "client-key-data"}
    assert set(entry["cluster"]) == {"server", "certificate-authority-data"}
    path = tmp_path / "lab.conf"
    path.write_text(said.stdout)
    tools = conformance.build_tools(cluster, lambda _m: None, master.lab_pillar(cluster).versions())
    nodes = subprocess.run(
        [str(tools.kubectl), "--kubeconfig", str(path), "get", "nodes", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert nodes.stdout.split() == ["node/worker-1", "node/worker-2"], nodes.stderr


def test_sig_network_and_dns_conformance_passes(cluster, tmp_path):
    said, result = _conformance(tmp_path, NETWORK_AND_DNS)
    failures = "\n".join(f"{name}: {reason}" for name, reason in result.failures)
    assert said.returncode == 0, failures or said.stderr[-2000:]
    assert (result.failed, result.skipped) == (0, 0), failures
    # Kubernetes 1.37 has 47 conformance specs in sig-network and DNS.
    assert result.passed >= 47, said.stdout[-2000:]
    assert "passed" in said.stdout and str(tmp_path) in said.stdout


def test_webhook_and_aggregated_api_conformance_passes(cluster, tmp_path):
    said, result = _conformance(tmp_path, WEBHOOKS_AND_AGGREGATOR)
    failures = "\n".join(f"{name}: {reason}" for name, reason in result.failures)
    assert said.returncode == 0, failures or said.stderr[-2000:]
    assert (result.failed, result.skipped) == (0, 0), failures
    # 25 in Kubernetes 1.37: 22 admission webhook, 2 CRD conversion webhook, 1 aggregator.
    assert result.passed >= 25, said.stdout[-2000:]


def test_a_focus_that_selects_nothing_exits_2_and_runs_nothing(cluster, tmp_path):
    before = registry.catalogue(registry.url(cluster))
    said = _cli("conformance", "--focus", "no spec is called this", "--report-dir", str(tmp_path))
    assert said.returncode == 2, said.stderr
    assert "selects none of the conformance specs" in said.stderr
    assert not (tmp_path / conformance.JUNIT).exists()
    assert registry.catalogue(registry.url(cluster)) == before


def test_a_focus_that_is_no_regular_expression_exits_2(cluster):
    said = _cli("conformance", "--focus", "[sig-network")
    assert said.returncode == 2
    assert "is not a regular expression" in said.stderr


def test_without_a_lab_it_exits_2_and_says_so(tmp_path):
    said = _cli("--run-dir", str(tmp_path / "no-lab"), "conformance")
    assert said.returncode == 2
    assert "no lab is running" in said.stderr
    said = _cli("--run-dir", str(tmp_path / "no-lab"), "kubeconfig")
    assert said.returncode == 2
    assert "no lab is running" in said.stderr
