"""A highstate with a bad pillar stops at validation and changes nothing; a good one
converges, is idempotent and is honest in test=True."""

import pytest
import yaml

from kubesalt_lab.pillar import lab_pillar
from tests.conftest import HOST_EXCLUDE
from tests.support.bad_pillars import CASES

ERROR_CASES = [c for c in CASES if c.level == "error"]
WARNING_CASES = [c for c in CASES if c.level == "warning"]
VALIDATE_ID = "kubesalt-pillar-validated"
GUARD_ID = "kubesalt-kubernetes-version-held"


def _with_root(pillar, root):
    if isinstance(pillar, dict):
        paths = pillar.setdefault("paths", {})
        paths["root"] = str(root)
        # master-2 and master-3 never run here: do not wait for their service-account keys.
        if isinstance(pillar.get("pki", {}), dict):
            pillar.setdefault("pki", {}).setdefault("service_account_wait_seconds", 0)
    return {"kubesalt": pillar}


def _stopped(ret):
    """True when the run failed: a render error, or any state with result False."""
    return ret.failed or any(s.result is False for s in ret)


def _files_under(root):
    return sorted(p for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("test_mode", [False, True], ids=["apply", "test"])
@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_bad_pillar_stops_the_highstate_before_any_change(loaders, tmp_path, case, test_mode):
    root = tmp_path / "root"
    ret = loaders.modules.state.apply(
        exclude=HOST_EXCLUDE, pillar=_with_root(case.pillar(), root), test=test_mode
    )
    assert _stopped(ret)
    # Nothing but validation was even compiled (validate.sls: the version guard after it,
    # which failhard kept from running).
    assert {s.id for s in ret} <= {VALIDATE_ID, GUARD_ID}
    assert all(s.changes == {} for s in ret)
    only = ret[VALIDATE_ID]
    assert only.result is False  # a dry run with a bad pillar fails too
    assert case.expected in only.comment
    assert "nothing was changed" in only.comment
    assert only.changes == {}
    assert _files_under(root) == []


@pytest.mark.parametrize("case", WARNING_CASES, ids=[c.id for c in WARNING_CASES])
def test_warnings_are_shown_but_do_not_stop_the_run(loaders, tmp_path, case):
    root = tmp_path / "root"
    ret = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=_with_root(case.pillar(), root))
    assert not _stopped(ret)
    assert ret[VALIDATE_ID].warnings == [case.expected]
    assert (root / "etc" / "kubesalt" / "node.yaml").exists()


def test_applying_a_role_sls_directly_with_a_bad_pillar_renders_nothing(loaders, tmp_path):
    """Bypassing top.sls still cannot change anything: map.jinja refuses to render."""
    root = tmp_path / "root"
    pillar = lab_pillar()
    pillar["network"]["as_number"] = "64512"
    ret = loaders.modules.state.sls("kubesalt.worker", pillar=_with_root(pillar, root))
    assert ret.failed
    assert any("kubesalt:network:as_number: '64512' is a str" in e for e in ret.errors)
    assert _files_under(root) == []


def test_good_pillar_dry_run_apply_and_rerun(loaders, tmp_path):
    root = tmp_path / "root"
    pillar = _with_root(lab_pillar(), root)
    node_file = root / "etc" / "kubesalt" / "node.yaml"

    dry = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=pillar, test=True)
    assert not _stopped(dry)
    assert dry[VALIDATE_ID].result is True
    predicted = {s.id for s in dry if s.changes}
    assert predicted == {
        "kubesalt-encryption-config-current",
        "kubesalt-node-config-dir-managed",
        "kubesalt-node-identity-file-managed",
        "kubesalt-pki-cas-present",
        "kubesalt-pki-certificates-present",
        "kubesalt-pki-kubeconfig-admin-managed",
        "kubesalt-pki-kubeconfig-calico-typha-managed",
        "kubesalt-pki-kubeconfig-controller-manager-managed",
        "kubesalt-pki-kubeconfig-scheduler-managed",
    }
    assert all(s.result is None for s in dry if s.changes)  # "would change", not "changed"
    assert _files_under(root) == []

    applied = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=pillar)
    assert not _stopped(applied)
    assert {s.id for s in applied if s.changes} == predicted
    for state_id in ("kubesalt-pki-cas-present", "kubesalt-pki-certificates-present"):
        assert applied[state_id].changes == dry[state_id].changes
    assert yaml.safe_load(node_file.read_text()) == {
        "cluster": "lab",
        "domain": "cluster.local",
        "node": "master-1",
        "ip": "198.18.0.11",
        "roles": ["master"],
    }
    assert oct(node_file.stat().st_mode & 0o777) == "0o644"
    # The apiservers' keys, made on this master (the CA host): only their names are shown.
    encryption = root / "etc" / "kubernetes" / "encryption-config.yaml"
    assert oct(encryption.stat().st_mode & 0o777) == "0o600"
    (key,) = yaml.safe_load(encryption.read_text())["resources"][0]["providers"][0]["aescbc"][
        "keys"
    ]
    shown = applied["kubesalt-encryption-config-current"].changes["encryption config"]
    assert shown == {"provider": "aescbc", "keys": [key["name"]]}
    assert key["secret"] not in str(applied.raw)

    again = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=pillar)
    assert not _stopped(again)
    assert [s.id for s in again if s.changes] == []

    dry_again = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=pillar, test=True)
    assert [s.id for s in dry_again if s.result is None or s.changes] == []


def test_minion_missing_from_pillar_gets_only_the_notice(loaders, tmp_path):
    root = tmp_path / "root"
    pillar = lab_pillar()
    del pillar["nodes"]["master-1"]
    ret = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar=_with_root(pillar, root))
    (only,) = list(ret)
    assert only.id == "kubesalt-node-unassigned"
    assert only.result is True
    assert "minion 'master-1' is not listed under pillar 'kubesalt:nodes'" in only.comment
    assert _files_under(root) == []


def test_minion_without_kubesalt_pillar_gets_only_the_notice(loaders):
    ret = loaders.modules.state.apply(exclude=HOST_EXCLUDE, pillar={"unrelated": True})
    (only,) = list(ret)
    assert only.id == "kubesalt-node-unassigned"
    assert "has no 'kubesalt' pillar" in only.comment
