"""Three masters issued concurrently, then a real etcd cluster on the certificates they got.

master-2 and master-3 join the session's master-1 for this module only. Their etcd
members all run on 127.0.0.1 (which every etcd certificate carries as a SAN), with client
and peer mutual TLS.
"""

import ssl
import subprocess
import urllib.error
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import kubesalt_core.certificates
import kubesalt_core.pki
from kubesalt_lab import local_etcd as etcd
from kubesalt_lab.pillar import lab_config
from tests.integration.conftest import cluster_minion, write_test_pki_pillar

MASTERS = ("master-1", "master-2", "master-3")


def _pki(node_roots, minion_id):
    return node_roots / minion_id / "etc" / "kubernetes" / "pki"


@pytest.fixture(scope="module")
def three_masters(salt_master, salt_minions, salt_cli, node_roots):
    extra = {}
    for minion_id in MASTERS[1:]:
        extra[minion_id] = cluster_minion(salt_master, minion_id)
        extra[minion_id].start()
    tree = Path(salt_master.config["pillar_roots"]["base"][0])
    # Every master now runs: a master with a new key waits for the others' keys.
    write_test_pki_pillar(tree, {"service_account_wait_seconds": 60})
    try:
        assert salt_cli.run("saltutil.sync_all", minion_tgt="*").returncode == 0
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        assert ret.returncode == 0
        yield
    finally:
        write_test_pki_pillar(tree, {})
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        for minion in extra.values():
            minion.terminate()


@pytest.fixture(scope="module")
def issued(three_masters, salt_cli, node_roots):
    """One concurrent `state.apply kubesalt.pki` on all three masters."""
    ret = salt_cli.run("state.apply", "kubesalt.pki", minion_tgt="master-*")
    for minion_id in MASTERS:
        states = ret.data[minion_id]
        assert all(s["result"] for s in states.values()), states
    return ret.data


def _bundle(node_roots, minion_id):
    return (_pki(node_roots, minion_id) / "service-accounts.pub").read_bytes()


def _public_keys(node_roots):
    return [
        kubesalt_core.certificates.public_pem(
            serialization.load_pem_private_key(
                (_pki(node_roots, m) / "service-account.key").read_bytes(), None
            )
        ).decode()
        for m in MASTERS
    ]


def test_joining_masters_wait_for_each_other(issued, node_roots):
    """master-2 and master-3 are new: each waited until all three keys were registered.

    (master-1 may have run alone earlier in the session, like a first master that others
    join later; then it learns the new keys on its next run, see below.)
    """
    for minion_id in MASTERS[1:]:
        bundle = _bundle(node_roots, minion_id).decode()
        assert bundle.count("BEGIN PUBLIC KEY") == 3
        assert all(key in bundle for key in _public_keys(node_roots))


def test_after_one_more_run_all_masters_agree_and_then_nothing_changes(
    issued, salt_cli, node_roots
):
    salt_cli.run("state.apply", "kubesalt.pki", minion_tgt="master-*")
    assert len({_bundle(node_roots, m) for m in MASTERS}) == 1
    ret = salt_cli.run("state.apply", "kubesalt.pki", minion_tgt="master-*")
    for minion_id in MASTERS:
        changed = {v["__id__"]: v["changes"] for v in ret.data[minion_id].values() if v["changes"]}
        assert changed == {}, (minion_id, changed)


@pytest.mark.parametrize("minion_id", MASTERS)
def test_openssl_verifies_every_chain_and_purpose(issued, node_roots, minion_id):
    pki = _pki(node_roots, minion_id)
    identities = kubesalt_core.pki.node_identities(lab_config(), minion_id, ["master"])
    assert len(identities) == 11
    for identity in identities:
        for usage in identity.extended_usages:
            purpose = {"server_auth": "sslserver", "client_auth": "sslclient"}[usage]
            result = subprocess.run(
                [
                    "openssl",
                    "verify",
                    "-CAfile",
                    str(pki / f"{identity.ca}.crt"),
                    "-purpose",
                    purpose,
                    str(pki / f"{identity.name}.crt"),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, (identity.name, purpose, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def tls_etcd(issued, node_roots, tmp_path_factory):
    client = _pki(node_roots, "master-1")
    members = [
        etcd.MemberTLS(
            ca=_pki(node_roots, m) / "etcd-ca.crt",
            cert=_pki(node_roots, m) / "etcd-server.crt",
            key=_pki(node_roots, m) / "etcd-server.key",
            peer_cert=_pki(node_roots, m) / "etcd-peer.crt",
            peer_key=_pki(node_roots, m) / "etcd-peer.key",
        )
        for m in MASTERS
    ]
    context = etcd.client_context(
        client / "etcd-ca.crt",
        client / "apiserver-etcd-client.crt",
        client / "apiserver-etcd-client.key",
    )
    cluster = etcd.start_cluster(
        3, tmp_path_factory.mktemp("etcd-tls"), tls=members, client_context=context
    )
    yield cluster
    cluster.kill()


def test_etcd_runs_on_the_issued_certificates(tls_etcd):
    members = tls_etcd.call("/v3/cluster/member/list")["members"]
    assert len(members) == 3
    assert all(url.startswith("https://") for m in members for url in m["peerURLs"])
    tls_etcd.put("/kubesalt/pki", "issued by kubesalt", member=0)
    for index in range(3):
        assert tls_etcd.get("/kubesalt/pki", member=index) == "issued by kubesalt"


@pytest.mark.parametrize(
    "client_cert",
    [
        pytest.param(("kubernetes-ca.crt", "admin"), id="a cert of another CA (admin)"),
        pytest.param(None, id="no client cert"),
    ],
)
def test_etcd_refuses_what_its_ca_did_not_sign(tls_etcd, node_roots, client_cert):
    pki = _pki(node_roots, "master-1")
    if client_cert:
        context = etcd.client_context(
            pki / "etcd-ca.crt", pki / f"{client_cert[1]}.crt", pki / f"{client_cert[1]}.key"
        )
    else:
        context = etcd.client_context(pki / "etcd-ca.crt")
    url = tls_etcd.members[0].client_url + "/v3/kv/range"
    with pytest.raises((urllib.error.URLError, ssl.SSLError)) as refused:
        etcd.post_json(url, {"key": etcd.b64("/kubesalt/pki")}, context=context)
    # etcd's TLS handshake rejects the client. With TLS 1.3 the client sees the alert
    # ("bad certificate", "certificate required") or, racing it, an EOF: both are TLS errors.
    error = refused.value
    if isinstance(error, urllib.error.URLError):
        error = error.reason
    assert isinstance(error, ssl.SSLError), refused.value
    # The same member answers the cluster's own client certificate (the control).
    assert tls_etcd.call("/v3/maintenance/status", member=0)["header"]
