"""PKI through real daemons: a master-1 CA host, worker-1 asking it by peer publication.

Every test starts from the same converged state (``converged``) and undoes what it breaks.
"""

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import kubesalt_core.certificates
import kubesalt_core.encryption
import kubesalt_core.pki
from kubesalt_lab.pillar import lab_config
from tests.conftest import REPO
from tests.integration.conftest import write_test_pki_pillar

CA_HOST = "master-1"
PKI_STATE = "kubesalt_pki_|-kubesalt-pki-certificates-present_|-"
CA_STATE = "kubesalt_pki_|-kubesalt-pki-cas-present_|-"


def _pki_dir(node_roots, minion_id):
    return node_roots / minion_id / "etc" / "kubernetes" / "pki"


def _ca_dir(node_roots, minion_id):
    return node_roots / minion_id / "etc" / "kubesalt" / "ca"


def _apply(salt_cli, minion_id, test=False):
    args = ["kubesalt.pki"] + (["test=True"] if test else [])
    ret = salt_cli.run("state.apply", *args, minion_tgt=minion_id)
    assert isinstance(ret.data, dict), f"{ret.stdout}\n{ret.stderr}"
    return ret.data


def _pki_changes(data):
    return data[_key(data, PKI_STATE)]


def _all_changes(data):
    return {v["__id__"]: v["changes"] for v in data.values() if v["changes"]}


def _cert(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@pytest.fixture
def converged(synced, salt_cli):
    """master-1 and worker-1 hold all their certificates (the CA host first)."""
    for minion_id in (CA_HOST, "worker-1"):
        data = _apply(salt_cli, minion_id)
        assert all(v["result"] for v in data.values()), data


@pytest.fixture
def pki_pillar(salt_cli, salt_master):
    """Change ``kubesalt:pki`` for a test; the overrides are removed afterwards."""
    tree = Path(salt_master.config["pillar_roots"]["base"][0])

    def set_pki(**pki):
        write_test_pki_pillar(tree, pki)
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        assert ret.returncode == 0

    yield set_pki
    set_pki()


def test_nodes_hold_exactly_their_catalogue(converged, node_roots):
    for minion_id, role in ((CA_HOST, "master"), ("worker-1", "worker")):
        pki = _pki_dir(node_roots, minion_id)
        names = {i.name for i in kubesalt_core.pki.node_identities(lab_config(), minion_id, [role])}
        assert len(names) == {"master": 11, "worker": 6}[role]
        crts = {p.stem for p in pki.glob("*.crt")} - set(kubesalt_core.pki.CAS)
        keys = {p.stem for p in pki.glob("*.key")}
        assert crts == names
        extra = {"service-account"} if role == "master" else set()
        assert keys == names | extra
        for key in pki.glob("*.key"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert not (node_roots / "router-1" / "etc" / "kubernetes").exists()


def test_the_ca_key_exists_only_on_the_ca_host(converged, node_roots, salt_master):
    ca_dir = _ca_dir(node_roots, CA_HOST)
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    ca_keys = [(ca_dir / f"{ca}.key").read_bytes() for ca in kubesalt_core.pki.CAS]
    bodies = [_pem_body(k) for k in ca_keys]
    for ca in kubesalt_core.pki.CAS:
        assert stat.S_IMODE((ca_dir / f"{ca}.key").stat().st_mode) == 0o600
    # Nowhere else: not on other nodes, not in the master's job cache (job returns and
    # events), not in the master's file or pillar trees.
    places = [node_roots, Path(salt_master.config["cachedir"]), REPO / "states", REPO / "pillar"]
    for place in places:
        for path in _files(place):
            if path.parent == ca_dir:
                continue
            data = path.read_bytes()
            assert not any(body in data for body in bodies), path
    for minion_id in ("worker-1", "router-1", "stranger-1"):
        assert not _ca_dir(node_roots, minion_id).exists()


def test_every_chain_verifies_against_the_ca_host(converged, node_roots):
    ca_dir = _ca_dir(node_roots, CA_HOST)
    for minion_id, role in ((CA_HOST, "master"), ("worker-1", "worker")):
        for identity in kubesalt_core.pki.node_identities(lab_config(), minion_id, [role]):
            cert = _cert(_pki_dir(node_roots, minion_id) / f"{identity.name}.crt")
            cert.verify_directly_issued_by(_cert(ca_dir / f"{identity.ca}.crt"))
            assert kubesalt_core.certificates.describe(cert)["common_name"] == identity.common_name
            local_ca = _pki_dir(node_roots, minion_id) / f"{identity.ca}.crt"
            assert local_ca.read_bytes() == (ca_dir / f"{identity.ca}.crt").read_bytes()


def test_a_second_run_changes_nothing(converged, salt_cli, node_roots):
    before = _snapshot(node_roots)
    for minion_id in (CA_HOST, "worker-1"):
        data = _apply(salt_cli, minion_id)
        assert _all_changes(data) == {}
        assert "every certificate is valid" in _pki_changes(data)["comment"]
    assert _snapshot(node_roots) == before


def _publications(salt_master):
    """How many times the master has published kubesalt_ca.sign (its log says each)."""
    return (
        Path(salt_master.config["log_file"]).read_text().count("Published command kubesalt_ca.sign")
    )


def _mine_entry(salt_cli):
    """The CA host's public answer as worker-1 reads it from the mine."""
    args = ("mine.get", CA_HOST, "kubesalt_ca.public", "tgt_type=list")
    return salt_cli.run(*args, minion_tgt="worker-1").data.get(CA_HOST)


def test_a_run_with_nothing_due_reads_the_mine_and_publishes_nothing(
    converged, salt_cli, salt_master, node_roots
):
    entry = _mine_entry(salt_cli)
    assert set(entry) == {"cas", "service_account_keys", "encryption_keys"}
    ca_dir = _ca_dir(node_roots, CA_HOST)
    assert entry["cas"] == {ca: (ca_dir / f"{ca}.crt").read_text() for ca in kubesalt_core.pki.CAS}
    assert list(entry["service_account_keys"]) == [CA_HOST]
    before = _publications(salt_master)
    data = _apply(salt_cli, "worker-1")
    assert _all_changes(data) == {}
    assert "every certificate is valid" in _pki_changes(data)["comment"]
    assert _publications(salt_master) == before


def test_without_a_mine_entry_a_node_asks_the_ca_host_which_sends_it_again(
    converged, salt_cli, salt_master
):
    sent = _mine_entry(salt_cli)
    assert salt_cli.run("mine.delete", "kubesalt_ca.public", minion_tgt=CA_HOST).data is True
    assert _mine_entry(salt_cli) is None
    before = _publications(salt_master)
    data = _apply(salt_cli, "worker-1")
    assert _all_changes(data) == {}
    assert _publications(salt_master) == before + 1
    assert _mine_entry(salt_cli) == sent


def test_a_new_ca_reaches_a_node_through_the_mine(converged, salt_cli, node_roots):
    moved = salt_cli.run("kubesalt_ca.rotate_ca", "kubernetes-ca", minion_tgt=CA_HOST).data
    try:
        assert _all_changes(_apply(salt_cli, CA_HOST))  # a new CA, and what it signs
        new_ca = (_ca_dir(node_roots, CA_HOST) / "kubernetes-ca.crt").read_text()
        assert _mine_entry(salt_cli)["cas"]["kubernetes-ca"] == new_ca
        issued = _pki_changes(_apply(salt_cli, "worker-1"))["changes"]["issued"]
        assert set(issued.values()) == {"not signed by the current CA"}, issued
        assert (_pki_dir(node_roots, "worker-1") / "kubernetes-ca.crt").read_text() == new_ca
    finally:
        for path in moved.values():
            Path(path).unlink(missing_ok=True)


def test_dry_run_predicts_the_real_run_exactly(converged, salt_cli, node_roots):
    pki = _pki_dir(node_roots, "worker-1")
    (pki / "kubelet-client.key").unlink()
    (pki / "kube-proxy.crt").unlink()
    (pki / "kubernetes-ca.crt").unlink()
    predicted = _apply(salt_cli, "worker-1", test=True)
    assert _pki_changes(predicted)["result"] is None
    assert not (pki / "kubelet-client.key").exists()
    applied = _apply(salt_cli, "worker-1")
    assert _all_changes(predicted) == _all_changes(applied)
    assert _pki_changes(applied)["changes"] == {
        "issued": {"kubelet-client": "its key is missing", "kube-proxy": "missing"},
        "new keys": ["kubelet-client"],
        "ca certificates": {"kubernetes-ca.crt": "created"},
    }


def test_a_short_lived_certificate_is_renewed(converged, salt_cli, pki_pillar, node_roots):
    pki = _pki_dir(node_roots, "worker-1")
    (pki / "kubelet-server.crt").unlink()
    pki_pillar(leaf_days=20, renew_before_days=10)
    data = _apply(salt_cli, "worker-1")
    assert _pki_changes(data)["changes"]["issued"] == {"kubelet-server": "missing"}
    short = _cert(pki / "kubelet-server.crt")
    assert kubesalt_core.certificates.days_left(short, short.not_valid_before_utc) == 20

    expiring = salt_cli.run("kubesalt_pki.expiring", "days=25", minion_tgt="worker-1").data
    assert list(expiring) == ["kubelet-server"]

    pki_pillar()  # back to 365 days, renew within 30: a 20-day cert is due
    key_before = (pki / "kubelet-server.key").read_bytes()
    predicted = _apply(salt_cli, "worker-1", test=True)
    data = _apply(salt_cli, "worker-1")
    assert _all_changes(predicted) == _all_changes(data)
    reason = _pki_changes(data)["changes"]["issued"]["kubelet-server"]
    assert reason.startswith("expires in 19 days (renew within 30)"), reason
    renewed = _cert(pki / "kubelet-server.crt")
    assert renewed.not_valid_after_utc > short.not_valid_after_utc
    assert (pki / "kubelet-server.key").read_bytes() == key_before  # renewal keeps the key
    assert salt_cli.run("kubesalt_pki.expiring", "days=25", minion_tgt="worker-1").data == {}


def test_a_new_ca_reissues_what_the_old_one_signed(converged, salt_cli, node_roots):
    moved = salt_cli.run("kubesalt_ca.rotate_ca", "front-proxy-ca", minion_tgt=CA_HOST).data
    assert len(moved) == 2, moved
    try:
        predicted = _apply(salt_cli, CA_HOST, test=True)
        assert predicted[_key(predicted, CA_STATE)]["changes"] == {"created": ["front-proxy-ca"]}
        assert _pki_changes(predicted)["changes"]["issued"] == {
            "front-proxy-client": "not signed by the current CA"
        }
        applied = _apply(salt_cli, CA_HOST)
        assert _all_changes(predicted) == _all_changes(applied)
        assert _all_changes(_apply(salt_cli, "worker-1")) == {}  # workers hold none of it
    finally:
        for path in moved.values():
            Path(path).unlink(missing_ok=True)


# --- a node cannot obtain another node's identity -----------------------------------------


def _publish_sign(salt_minions, requester, request, extra_args=()):
    """What a (possibly hostile) minion can do: peer-publish kubesalt_ca.sign itself."""
    cli = salt_minions[requester].salt_call_cli(timeout=60)
    ret = cli.run(
        "publish.publish", CA_HOST, "kubesalt_ca.sign", json.dumps([request, *extra_args])
    )
    assert ret.returncode == 0, ret.stderr
    return ret.data[CA_HOST]


def _csr(name="x", key=None):
    key = key or kubesalt_core.certificates.new_private_key()
    return key, kubesalt_core.certificates.cert_pem(
        kubesalt_core.certificates.build_csr(key, name)
    ).decode()


def test_a_worker_cannot_get_a_masters_certificate(converged, salt_minions):
    _, csr = _csr("master-1")
    answer = _publish_sign(salt_minions, "worker-1", {"certificates": {"etcd-peer": csr}})
    assert answer == {
        "error": "'worker-1' asked for etcd-peer, which its roles (worker) do not hold"
    }


def test_a_claimed_identity_is_ignored(converged, salt_minions):
    """The CSR says master-1 and the caller passes __pub_id=master-1: the cert says worker-1."""
    key, csr = _csr("system:node:master-1")
    answer = _publish_sign(
        salt_minions,
        "worker-1",
        {"certificates": {"kubelet-client": csr}},
        extra_args=["__pub_id=master-1", "requester=master-1"],
    )
    cert = x509.load_pem_x509_certificate(answer["certificates"]["kubelet-client"].encode())
    assert kubesalt_core.certificates.describe(cert)["common_name"] == "system:node:worker-1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_a_stranger_gets_nothing_signed(converged, salt_minions):
    _, csr = _csr()
    answer = _publish_sign(salt_minions, "stranger-1", {"certificates": {"kubelet-client": csr}})
    assert answer == {"error": "'stranger-1' is not a node under kubesalt:nodes"}


def test_a_job_from_the_master_names_no_requester(converged, salt_cli):
    _, csr = _csr()
    ret = salt_cli.run(
        "kubesalt_ca.sign",
        json.dumps({"certificates": {"kubelet-client": csr}}),
        minion_tgt=CA_HOST,
    )
    assert "answers only a node's peer publication" in ret.data["error"]


def test_only_sign_is_open_to_peers(converged, salt_minions):
    cli = salt_minions["worker-1"].salt_call_cli(timeout=60)
    allowed = cli.run("publish.publish", CA_HOST, "kubesalt_ca.sign", "{}")
    assert set(allowed.data[CA_HOST]) == {
        "cas",
        "certificates",
        "service_account_keys",
        "encryption_keys",
    }
    for fun in ("kubesalt_ca.ca_init", "kubesalt_ca.rotate_ca", "cmd.run"):
        ret = cli.run("publish.publish", CA_HOST, fun, "etcd-ca")
        assert ret.data == {}, (fun, ret.data)


def test_a_csr_signed_by_another_key_is_refused(converged, salt_minions):
    _, csr = _csr()
    tampered = _swap_public_key(csr, kubesalt_core.certificates.new_private_key())
    answer = _publish_sign(salt_minions, "worker-1", {"certificates": {"kube-proxy": tampered}})
    assert answer == {"error": "the CSR for kube-proxy is not signed by its own key"}


# --- helpers ----------------------------------------------------------------------------------


def _swap_public_key(csr_pem, key):
    """A CSR whose public key is ``key``'s but whose signature was made by another key."""
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    old = csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    new = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert len(old) == len(new)
    start = der.index(old)
    der[start : start + len(old)] = new
    forged = x509.load_der_x509_csr(bytes(der))
    return forged.public_bytes(serialization.Encoding.PEM).decode()


def _key(data, prefix):
    (key,) = [k for k in data if k.startswith(prefix)]
    return key


def _pem_body(pem):
    return b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))[:64]


def _files(root):
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _snapshot(root):
    return {
        str(p): (p.read_bytes(), p.stat().st_mode)
        for p in _files(root)
        if "etc/kubernetes" in str(p) or "etc/kubesalt/ca" in str(p)
    }


def test_only_a_master_gets_the_encryption_keys_and_only_sealed(converged, salt_minions):
    """A worker asking the CA host for the apiservers' keys is refused; a master gets them
    sealed to the key it sent, so what Salt carries back holds no key in the clear."""
    _, public = kubesalt_core.encryption.request_key()
    worker = salt_minions["worker-1"].salt_call_cli(timeout=60)
    refused = worker.run("publish.publish", CA_HOST, "kubesalt_ca.sign", {"encryption_key": public})
    assert refused.data[CA_HOST] == {
        "error": "'worker-1' is not a master; only masters hold the encryption keys"
    }
    private, public = kubesalt_core.encryption.request_key()
    master = salt_minions[CA_HOST].salt_call_cli(timeout=60)
    answer = master.run("kubesalt_pki.ca_answer", {"encryption_key": public}).data
    keys = kubesalt_core.encryption.unseal(answer["encryption"], private)["keys"]
    assert [k["name"] for k in keys] == answer["encryption_keys"]
    assert all(k["secret"] not in json.dumps(answer) for k in keys)
