"""The certificate catalogue: who gets which identity, and when a cert must be re-issued."""

import datetime
import re

import pytest

import kubesalt_core.certificates
import kubesalt_core.errors
import kubesalt_core.pillar
import kubesalt_core.pillar_schema
import kubesalt_core.pki
from kubesalt_lab.pillar import lab_config

NOW = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def config():
    return lab_config()


def _by_name(config, node_id):
    roles = kubesalt_core.pillar.roles_of(config, node_id)
    return {i.name: i for i in kubesalt_core.pki.node_identities(config, node_id, roles)}


def test_catalogue_is_consistent():
    assert kubesalt_core.pki.check_catalogue() == []


def test_catalogue_check_finds_typos():
    bad = (kubesalt_core.pki.CertSpec("x", "etdc-ca", "x", ("master",), san_rule="nodes"),) * 2
    problems = kubesalt_core.pki.check_catalogue(bad)
    assert "duplicate certificate name 'x'" in problems
    assert "x: unknown CA 'etdc-ca'" in problems
    assert "x: unknown SAN rule 'nodes'" in problems


def test_master_certificates(config):
    certs = _by_name(config, "master-2")
    assert set(certs) == {
        "etcd-server",
        "etcd-peer",
        "apiserver-etcd-client",
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-client",
        "kube-scheduler",
        "kube-controller-manager",
        "admin",
        "calico-typha",
        "calico-typha-client",
    }
    etcd = certs["etcd-server"]
    assert (etcd.ca, etcd.common_name) == ("etcd-ca", "master-2")
    assert etcd.extended_usages == ("server_auth", "client_auth")
    assert etcd.dns_names == ("master-2", "localhost")
    assert etcd.ip_addresses == ("198.18.0.12", "127.0.0.1")
    assert certs["etcd-peer"].extended_usages == ("server_auth", "client_auth")
    assert certs["admin"].organizations == ("system:masters",)
    assert certs["front-proxy-client"].ca == "front-proxy-ca"
    assert certs["apiserver-kubelet-client"].common_name == "kube-apiserver-kubelet-client"
    assert certs["kube-scheduler"].common_name == "system:kube-scheduler"


def test_apiserver_sans_cover_service_ip_every_master_and_extras(config):
    config = kubesalt_core.pillar.merge(
        config, {"pki": {"apiserver_extra_sans": ["api.lab", "198.18.0.100"]}}
    )
    api = _by_name(config, "master-1")["apiserver"]
    assert api.dns_names == (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "master-1",
        "master-2",
        "master-3",
        "api.lab",
        # Clients of the node-local apiserver proxy dial the loopback.
        "localhost",
    )
    assert api.ip_addresses == (
        "198.18.16.1",
        "198.18.0.11",
        "198.18.0.12",
        "198.18.0.13",
        "198.18.0.100",
        "127.0.0.1",
    )
    assert api.extended_usages == ("server_auth",)


def test_worker_certificates_carry_the_node_identity(config):
    certs = _by_name(config, "worker-2")
    assert set(certs) == {
        "kubelet-client",
        "kubelet-server",
        "kube-proxy",
        "calico-felix",
        "calico-cni",
        "apiserver-proxy",
    }
    assert certs["apiserver-proxy"].extended_usages == ("client_auth",)
    client = certs["kubelet-client"]
    assert (client.common_name, client.organizations) == ("system:node:worker-2", ("system:nodes",))
    assert client.extended_usages == ("client_auth",)
    server = certs["kubelet-server"]
    assert (server.dns_names, server.ip_addresses) == (("worker-2",), ("198.18.0.22",))
    assert server.extended_usages == ("server_auth",)
    assert certs["kube-proxy"].common_name == "system:kube-proxy"
    assert certs["calico-felix"].common_name == "calico-felix"
    assert certs["calico-cni"].common_name == "calico-cni"


def test_router_holds_no_certificate(config):
    assert _by_name(config, "router-1") == {}


@pytest.mark.parametrize("key_type", kubesalt_core.pillar.KEY_TYPES)
def test_every_pillar_key_type_makes_a_key(key_type):
    assert kubesalt_core.certificates.new_private_key(key_type).public_key() is not None


def test_unknown_key_type_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="Valid: ecdsa-p256, rsa-2048, rsa-4096"):
        kubesalt_core.certificates.new_private_key("dsa")


@pytest.fixture(scope="module")
def issued(config):
    ca_key = kubesalt_core.certificates.new_private_key()
    ca = kubesalt_core.certificates.build_ca("kubernetes-ca", ca_key, 3650, NOW)
    key = kubesalt_core.certificates.new_private_key()
    identity = _by_name(config, "worker-1")["kubelet-server"]
    cert = kubesalt_core.certificates.build_certificate(
        identity, key.public_key(), ca, ca_key, 365, NOW
    )
    return {"ca": ca, "ca_key": ca_key, "key": key, "identity": identity, "cert": cert}


def _reason(issued, **override):
    args = {
        "identity": issued["identity"],
        "cert": issued["cert"],
        "public_key": issued["key"].public_key(),
        "ca_cert": issued["ca"],
        "now": NOW,
        "renew_before_days": 30,
    }
    args.update(override)
    return kubesalt_core.certificates.reissue_reason(**args)


def test_a_valid_cert_is_never_reissued(issued):
    assert _reason(issued) is None


def test_reissue_reasons(issued, config):
    other_ca_key = kubesalt_core.certificates.new_private_key()
    other_ca = kubesalt_core.certificates.build_ca("kubernetes-ca", other_ca_key, 3650, NOW)
    assert _reason(issued, cert=None) == "missing"
    assert _reason(issued, ca_cert=other_ca) == "not signed by the current CA"
    assert _reason(
        issued, public_key=kubesalt_core.certificates.new_private_key().public_key()
    ) == ("does not match its key")
    other_node = _by_name(config, "worker-2")["kubelet-server"]
    assert _reason(issued, identity=other_node) == "common name differs from the catalogue"
    assert _reason(issued, now=NOW + datetime.timedelta(days=340)) == (
        "expires in 25 days (renew within 30)"
    )


def test_sans_that_moved_force_a_reissue(issued, config):
    moved = kubesalt_core.pillar.merge(config, {"nodes": {"worker-1": {"ip": "198.18.0.29"}}})
    identity = _by_name(moved, "worker-1")["kubelet-server"]
    assert _reason(issued, identity=identity) == "ip addresses differs from the catalogue"


# --- CA host, kubeconfigs ------------------------------------------------------------------


def test_ca_host_is_pillars_choice_else_the_first_master(config):
    assert kubesalt_core.pki.ca_host(config) == "master-1"
    chosen = kubesalt_core.pillar.merge(config, {"pki": {"ca_host": "master-3"}})
    assert kubesalt_core.pki.ca_host(chosen) == "master-3"


def _kubeconfig(config, node_id, name):
    layout = kubesalt_core.pki.Layout("/pki", "/ca", "/k8s")
    (spec,) = [s for s in kubesalt_core.pki.KUBECONFIGS if s.name == name]
    return kubesalt_core.pki.kubeconfig_document(config, node_id, spec, layout)


def test_kubeconfigs_per_role():
    names = {s.name for s in kubesalt_core.pki.node_kubeconfigs(["master"])}
    assert names == {"admin", "scheduler", "controller-manager", "calico-typha"}
    worker = {s.name for s in kubesalt_core.pki.node_kubeconfigs(["worker"])}
    assert worker == {"kubelet", "kube-proxy", "calico-node", "calico-cni"}
    assert kubesalt_core.pki.node_kubeconfigs(["router"]) == []


def test_kubeconfig_points_at_files_and_the_right_apiserver(config):
    kubelet = _kubeconfig(config, "worker-2", "kubelet")
    (cluster,) = kubelet["clusters"]
    # A worker talks to every apiserver through its node-local proxy.
    assert cluster["cluster"] == {
        "server": "https://127.0.0.1:6443",
        "certificate-authority": "/pki/kubernetes-ca.crt",
    }
    (user,) = kubelet["users"]
    assert user["user"] == {
        "client-certificate": "/pki/kubelet-client.crt",
        "client-key": "/pki/kubelet-client.key",
    }
    assert kubelet["current-context"] == "kubelet@lab"
    # The control plane's own components talk to their local apiserver.
    scheduler = _kubeconfig(config, "master-3", "scheduler")
    assert scheduler["clusters"][0]["cluster"]["server"] == "https://198.18.0.13:6443"
    admin = _kubeconfig(config, "master-2", "admin")
    assert admin["clusters"][0]["cluster"]["server"] == "https://198.18.0.12:6443"


def test_with_the_proxy_turned_off_workers_use_the_first_master(config):
    off = kubesalt_core.pillar.merge(config, {"apiserver_proxy": {"enabled": False}})
    assert kubesalt_core.pillar_schema.validate(off) == []
    server = _kubeconfig(off, "worker-1", "kubelet")["clusters"][0]["cluster"]["server"]
    assert server == "https://198.18.0.11:6443"


def test_kubeconfig_uses_the_pillar_endpoint(config):
    vip = kubesalt_core.pillar.merge(
        config,
        {
            "cluster": {"apiserver_endpoint": "api.lab.example:8443"},
            "pki": {"apiserver_extra_sans": ["api.lab.example"]},
        },
    )
    assert kubesalt_core.pillar_schema.validate(vip) == []
    server = _kubeconfig(vip, "worker-1", "kube-proxy")["clusters"][0]["cluster"]["server"]
    assert server == "https://api.lab.example:8443"


def test_an_endpoint_the_apiserver_cert_does_not_carry_is_refused(config):
    bad = kubesalt_core.pillar.merge(config, {"cluster": {"apiserver_endpoint": "198.18.0.99"}})
    (problem,) = kubesalt_core.pillar_schema.validate(bad)
    assert problem.key == "kubesalt:cluster:apiserver_endpoint"
    assert "kubesalt:pki:apiserver_extra_sans" in problem.message


# --- the node's decision --------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    key = kubesalt_core.certificates.new_private_key()
    return kubesalt_core.certificates.build_ca("kubernetes-ca", key, 3650, NOW), key


def _issued(config, ca, node_id, name, key, days=365, now=NOW):
    identity = _by_name(config, node_id)[name]
    return identity, kubesalt_core.certificates.build_certificate(
        identity, key.public_key(), ca[0], ca[1], days, now
    )


def test_plan_for_missing_key_or_cert(config, ca):
    identity = _by_name(config, "worker-1")["kube-proxy"]
    plan = kubesalt_core.certificates.certificate_plan
    assert plan(identity, None, None, ca[0], "ecdsa-p256", NOW, 30) == ("missing", True)
    key = kubesalt_core.certificates.new_private_key()
    _, cert = _issued(config, ca, "worker-1", "kube-proxy", key)
    assert plan(identity, None, cert, ca[0], "ecdsa-p256", NOW, 30) == ("its key is missing", True)
    assert plan(identity, key, None, ca[0], "ecdsa-p256", NOW, 30) == ("missing", False)
    assert plan(identity, key, cert, ca[0], "ecdsa-p256", NOW, 30) == (None, False)


def test_plan_replaces_a_key_of_another_type(config, ca):
    key = kubesalt_core.certificates.new_private_key("ecdsa-p256")
    identity, cert = _issued(config, ca, "worker-1", "kube-proxy", key)
    reason, new_key = kubesalt_core.certificates.certificate_plan(
        identity, key, cert, ca[0], "rsa-2048", NOW, 30
    )
    assert (reason, new_key) == ("key type is ecdsa-p256, pillar asks for rsa-2048", True)


def test_plan_before_the_ca_exists(config):
    identity = _by_name(config, "worker-1")["kube-proxy"]
    key = kubesalt_core.certificates.new_private_key()
    plan = kubesalt_core.certificates.certificate_plan(
        identity, key, None, None, "ecdsa-p256", NOW, 30
    )
    assert plan == ("missing", False)


def test_renewal_keeps_the_key(config, ca):
    key = kubesalt_core.certificates.new_private_key()
    identity, cert = _issued(config, ca, "worker-1", "kubelet-server", key, days=20)
    reason, new_key = kubesalt_core.certificates.certificate_plan(
        identity, key, cert, ca[0], "ecdsa-p256", NOW, 30
    )
    assert reason == "expires in 20 days (renew within 30)"
    assert new_key is False


# --- the CA side ------------------------------------------------------------------------------


def _csr(name="anything"):
    key = kubesalt_core.certificates.new_private_key()
    return key, kubesalt_core.certificates.build_csr(key, name)


def _cas(ca):
    return dict.fromkeys(kubesalt_core.pki.CAS, ca)


def test_signing_takes_identity_from_the_requester_not_the_csr(config, ca):
    key, csr = _csr("system:node:master-1")
    issued = kubesalt_core.certificates.sign_requests(
        config, "worker-2", {"kubelet-client": csr}, _cas(ca), 365, NOW
    )
    described = kubesalt_core.certificates.describe(issued["kubelet-client"])
    assert described["common_name"] == "system:node:worker-2"
    assert described["organizations"] == ("system:nodes",)
    assert kubesalt_core.certificates.public_pem(issued["kubelet-client"].public_key()) == (
        kubesalt_core.certificates.public_pem(key)
    )


@pytest.mark.parametrize(
    ("requester", "name", "message"),
    [
        ("worker-1", "etcd-server", "'worker-1' asked for etcd-server, which its roles (worker)"),
        ("router-1", "kube-proxy", "'router-1' asked for kube-proxy, which its roles (router)"),
        ("intruder-9", "kube-proxy", "'intruder-9' is not a node under kubesalt:nodes"),
    ],
)
def test_signing_refuses_what_the_requester_does_not_hold(config, ca, requester, name, message):
    _, csr = _csr()
    with pytest.raises(kubesalt_core.errors.SigningRefused, match=re.escape(message)):
        kubesalt_core.certificates.sign_requests(config, requester, {name: csr}, _cas(ca), 365, NOW)
