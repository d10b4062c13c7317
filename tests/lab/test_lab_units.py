"""Every component's unit in the lab: every component runs from the lab's own builds (BIRD
from Debian's bird2), every unit file is clean under systemd-analyze, test=True on fresh
hosts predicts the first run exactly, and a second run changes nothing."""

import pytest

import kubesalt_core.components
from kubesalt_lab import containers, converge, lifecycle, overview, report
from tests.lab.conftest import quiet


@pytest.fixture(scope="module")
def fresh_first_run(lab):
    """Fresh hosts (the lab is taken down first), then each wave predicted and applied."""
    lifecycle.down(lab, quiet)
    lifecycle.up(lab, quiet)
    return converge.predict_then_apply(lab, quiet)


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def test_the_first_run_converges(fresh_first_run):
    for node_id, result in fresh_first_run.items():
        summary = result["summary"]
        assert (summary["failed"], summary["errors"]) == (0, []), node_id
        assert result["changed"], node_id


def test_test_mode_on_a_fresh_host_predicts_the_first_run_exactly(fresh_first_run):
    for node_id, result in fresh_first_run.items():
        assert result["predicted"] == result["changed"], node_id


def test_containerd_really_runs_on_the_workers(fresh_first_run, lab):
    for node_id in ("worker-1", "worker-2"):
        node = _node(lab, node_id)
        out = containers.inside(lab, node, ["ctr", "version"], check=False)
        assert out.returncode == 0, out.stderr
        assert "Server:" in out.stdout and "Version:" in out.stdout.split("Server:")[1]
        config = containers.inside(lab, node, ["cat", "/etc/containerd/config.toml"]).stdout
        assert "SystemdCgroup = true" in config
        # containerd reads the file kubesalt wrote (its merged view says so).
        dumped = containers.inside(lab, node, ["containerd", "config", "dump"]).stdout
        assert "SystemdCgroup = true" in dumped


def test_every_unit_is_installed_and_clean_under_systemd_analyze(fresh_first_run, lab):
    for node in lab.ordered_nodes():
        for unit in kubesalt_core.components.for_roles(node.roles):
            path = f"/etc/systemd/system/{unit.unit_name}"
            proc = containers.inside(lab, node, ["systemd-analyze", "verify", path], check=False)
            findings = [line for line in proc.stderr.splitlines() if line.strip()]
            assert findings == [], (node.id, unit.name, findings)


def test_every_master_component_runs_from_the_lab_build(fresh_first_run, lab):
    shown = overview.status(lab)
    states = {(node, unit): state for node, unit, state in shown["units"]}
    for node in ("master-1", "master-2", "master-3"):
        for unit in kubesalt_core.components.managed_units(["master"]):
            assert states[(node, unit)] == "active (running), enabled", (node, unit)
        installed = containers.inside(
            lab, next(n for n in lab.nodes if n.id == node), ["kube-apiserver", "--version"]
        ).stdout
        assert installed.strip() == f"Kubernetes v{lab.versions()['kubernetes']}"


def test_every_worker_component_runs_from_the_lab_build(fresh_first_run, lab):
    shown = overview.status(lab)
    states = {(node, unit): state for node, unit, state in shown["units"]}
    for node in ("worker-1", "worker-2"):
        for unit in kubesalt_core.components.managed_units(["worker"]):
            assert states[(node, unit)].startswith("active ("), (node, unit, states[(node, unit)])
        installed = containers.inside(lab, _node(lab, node), ["kubelet", "--version"]).stdout
        assert installed.strip() == f"Kubernetes v{lab.versions()['kubernetes']}"
    assert report.NOT_IN_LAB not in overview.status_tables(shown)


def test_the_second_run_changes_nothing(fresh_first_run, lab):
    again = converge.apply(lab, quiet, together=True)
    for node_id, summary in again.items():
        assert (summary["changed"], summary["failed"], summary["errors"]) == (0, 0, []), node_id
