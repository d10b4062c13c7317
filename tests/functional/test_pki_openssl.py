"""Certificates built from the catalogue verify with openssl, for the purpose they serve."""

import datetime
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

import kubesalt_core.certificates
import kubesalt_core.pillar
import kubesalt_core.pki
from kubesalt_lab.pillar import lab_config

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(scope="module")
def issued_tree(tmp_path_factory):
    """Every lab node's catalogue certs, signed by fresh CAs, written as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    config = lab_config()
    cas = {}
    for name in kubesalt_core.pki.CAS:
        key = kubesalt_core.certificates.new_private_key("rsa-2048")
        cas[name] = (kubesalt_core.certificates.build_ca(name, key, 3650, NOW), key)
        (root / f"{name}.crt").write_bytes(cas[name][0].public_bytes(serialization.Encoding.PEM))
    issued = []
    for node_id in config["nodes"]:
        roles = kubesalt_core.pillar.roles_of(config, node_id)
        for identity in kubesalt_core.pki.node_identities(config, node_id, roles):
            ca_cert, ca_key = cas[identity.ca]
            key = kubesalt_core.certificates.new_private_key()
            cert = kubesalt_core.certificates.build_certificate(
                identity, key.public_key(), ca_cert, ca_key, 365, NOW
            )
            path = root / f"{node_id}-{identity.name}.crt"
            path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            issued.append((identity, path))
    return root, issued


def _verify(ca_file, cert_file, purpose):
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_file), "-purpose", purpose, str(cert_file)],
        capture_output=True,
        text=True,
    )


def test_every_cert_verifies_against_its_ca_for_each_usage(issued_tree):
    root, issued = issued_tree
    assert len(issued) == 3 * 11 + 2 * 6  # per master, per worker
    for identity, path in issued:
        for usage in identity.extended_usages:
            purpose = "sslserver" if usage == "server_auth" else "sslclient"
            proc = _verify(root / f"{identity.ca}.crt", path, purpose)
            assert proc.returncode == 0, (path.name, purpose, proc.stdout + proc.stderr)


def test_a_cert_does_not_verify_against_another_ca(issued_tree):
    root, issued = issued_tree
    path = next(p for i, p in issued if i.ca == "etcd-ca")
    proc = _verify(root / "kubernetes-ca.crt", path, "sslclient")
    assert proc.returncode != 0


def test_a_client_cert_is_not_a_server_cert(issued_tree):
    root, issued = issued_tree
    path = next(p for i, p in issued if i.name == "kubelet-client")
    proc = _verify(root / "kubernetes-ca.crt", path, "sslserver")
    assert proc.returncode != 0
