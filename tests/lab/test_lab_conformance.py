"""Kubernetes' own conformance suite (upstream's ``e2e.test``, built from the cluster's
Kubernetes version) against the lab, through ``kubesalt-lab conformance``: the sig-network
and DNS specs, and the admission webhook, CRD conversion webhook and aggregated API specs.
``make conformance`` runs all of them (bench/conformance.py).
"""

import re
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


# Upstream's known flake with more than one apiserver (kubernetes/kubernetes#138085): the
# suite waits only 30 s for a deleted CRD to leave discovery, while the apiservers' CRD
# finalizers conflict and back off ("storage is (re)initializing" on an apiserver that
# never served the CRD). A spec whose first attempt failed so may pass on a retry; a spec
# that failed any other way on its first attempt fails this test.
KNOWN_FLAKE = r"(failed to delete|deleting) CustomResourceDefinition.*context deadline exceeded"


def _conformance(report_dir, focus, *extra):
    said = _cli("conformance", "--focus", focus, "--report-dir", str(report_dir), *extra)
    return said, conformance.read_report(report_dir)


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


@pytest.fixture(scope="module")
def suite(cluster, tmp_path_factory):
    """One run of both sets (one Ginkgo run packs the short webhook specs around the long
    network ones): what the command said, and the JUnit report read back."""
    report_dir = tmp_path_factory.mktemp("conformance")
    focus = f"{NETWORK_AND_DNS}|{WEBHOOKS_AND_AGGREGATOR}"
    # 8 processes: the specs mostly wait (for pods, DNS records, endpoints); measured on 2
    # cores, the 72 specs took 209 s with 8 and 270 s with the default 4, none failing.
    said, result = _conformance(report_dir, focus, "--flake-attempts", "2", "--procs", "8")
    return said, result, report_dir


def _failures(result):
    return "\n".join(f"{name}: {reason}" for name, reason in result.failures)


def _passed_in(suite, focus):
    """No spec ``focus`` names failed; returns how many passed."""
    _said, result, report_dir = suite
    mine = [(n, r) for n, r in result.failures if re.search(focus, n)]
    assert mine == [], f"{_failures(result)}\njournals: {report_dir / 'journals'}"
    return len([n for n in result.passed_specs if re.search(focus, n)])


def test_sig_network_and_dns_conformance_passes(suite):
    # Kubernetes 1.37 has 47 conformance specs in sig-network and DNS.
    assert _passed_in(suite, NETWORK_AND_DNS) >= 47, suite[0].stdout[-2000:]


def test_webhook_and_aggregated_api_conformance_passes(suite):
    # 25 in Kubernetes 1.37: 22 admission webhook, 2 CRD conversion webhook, 1 aggregator.
    assert _passed_in(suite, WEBHOOKS_AND_AGGREGATOR) >= 25, suite[0].stdout[-2000:]


def test_a_spec_passes_on_a_retry_only_after_upstreams_known_flake(suite):
    _said, result, _report_dir = suite
    other = [(name, why) for name, why in result.flaky if not re.search(KNOWN_FLAKE, why)]
    assert other == [], other


def test_the_run_exits_0_with_its_summary_and_report(suite):
    said, result, report_dir = suite
    assert said.returncode == 0, _failures(result) or said.stderr[-2000:]
    assert (result.failed, result.skipped) == (0, 0), _failures(result)
    assert "passed" in said.stdout and str(report_dir) in said.stdout
    assert (report_dir / "e2e.log").stat().st_size > 0


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
