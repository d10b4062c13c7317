"""Surviving a lost master, the decisions: where the node-local apiserver proxy runs and
what it sends connections to, how the formula removes it when a site turns it off, what a
router's kernel gets, and what a node does about its certificates while the CA host is
down. (HAProxy itself runs the rendered config in tests/functional/test_apiserver_proxy.py.)"""

import datetime

import pytest

import kubesalt_core.apiserver_proxy
import kubesalt_core.certificates
import kubesalt_core.component_context
import kubesalt_core.components
import kubesalt_core.node_config
import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
import kubesalt_core.pki
from kubesalt_core import unit as ku
from kubesalt_lab.pillar import lab_config

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def config():
    return kubesalt_core.pillar.merge(lab_config(), {"paths": kubesalt_core.pillar.resolve_paths(
        lab_config()["paths"]
    )})  # fmt: skip


def _units(config, node_id):
    return [r.unit.name for r in ku.node_units(config, node_id)]


def test_the_proxy_runs_on_workers_and_spreads_over_every_master(config):
    assert "kube-apiserver-proxy" in _units(config, "worker-1")
    assert "kube-apiserver-proxy" not in _units(config, "master-1")
    assert "kube-apiserver-proxy" not in _units(config, "router-1")
    rendered = ku.render(config, "worker-1", "kube-apiserver-proxy")
    (text,) = [text for text, _mode in rendered.files.values()]
    servers = [line.split()[1:] for line in text.splitlines() if line.startswith("    server ")]
    assert servers == [
        ["master-1", "198.18.0.11:6443"],
        ["master-2", "198.18.0.12:6443"],
        ["master-3", "198.18.0.13:6443"],
    ]
    assert "    bind 127.0.0.1:6443" in text
    assert "option httpchk GET /readyz" in text
    # The checks verify each apiserver and show the proxy's own client certificate.
    assert "verify required ca-file /etc/kubernetes/pki/kubernetes-ca.crt" in text
    assert "crt /etc/kubernetes/pki/apiserver-proxy.crt" in text
    assert "on-marked-down shutdown-sessions" in text
    assert rendered.unit.reload and "ExecReload=/bin/kill -USR2 $MAINPID" in rendered.unit_text


def test_a_node_that_is_master_and_worker_uses_its_own_apiserver(config):
    both = kubesalt_core.pillar.merge(
        config, {"nodes": {"master-1": {"roles": ["master", "worker"], "ip": "198.18.0.11"}}}
    )
    assert "kube-apiserver-proxy" not in _units(both, "master-1")
    assert "kubelet" in _units(both, "master-1")
    assert "kube-apiserver-proxy.service" not in kubesalt_core.components.managed_units(
        ["master", "worker"]
    )
    layout = kubesalt_core.pki.Layout.of(both)
    (spec,) = [s for s in kubesalt_core.pki.KUBECONFIGS if s.name == "kubelet"]
    kubelet = kubesalt_core.pki.kubeconfig_document(both, "master-1", spec, layout)
    assert kubelet["clusters"][0]["cluster"]["server"] == "https://198.18.0.11:6443"


@pytest.mark.parametrize(
    ("setting", "wanted"),
    [
        ({}, True),
        ({"apiserver_proxy": {"enabled": False}}, False),
        ({"cluster": {"apiserver_endpoint": "198.18.0.11"}}, False),
        ({"cluster": {"apiserver_endpoint": "198.18.0.11"}, "apiserver_proxy": {"enabled": False}},
         False),
    ],
)  # fmt: skip
def test_a_site_with_an_endpoint_or_the_proxy_off_gets_it_removed(config, setting, wanted):
    site = kubesalt_core.pillar.merge(config, setting)
    assert kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(site)) == []
    assert kubesalt_core.apiserver_proxy.wanted(site) is wanted
    assert ("kube-apiserver-proxy" in _units(site, "worker-1")) is wanted
    unwanted = [c.name for c in ku.unwanted_units(site, "worker-1")]
    assert unwanted == ([] if wanted else ["kube-apiserver-proxy"])
    # Its binary is not installed either (HAProxy is a Debian package on the node).
    assert kubesalt_core.components.idle_binaries(site, ["worker"]) == (
        [] if wanted else ["haproxy"]
    )


def test_a_worker_that_is_also_a_master_installs_no_proxy():
    assert kubesalt_core.components.idle_binaries(lab_config(), ["master", "worker"]) == ["haproxy"]
    assert kubesalt_core.components.idle_binaries(lab_config(), ["master"]) == []
    assert kubesalt_core.components.idle_binaries(lab_config(), ["router"]) == []


def test_a_drained_master_gets_no_connections(config):
    drained = kubesalt_core.pillar.merge(config, {"apiserver_proxy": {"drain": ["master-2"]}})
    assert kubesalt_core.pillar_schema.validate(drained) == []
    text = ku.render(drained, "worker-2", "kube-apiserver-proxy").files
    (cfg,) = [t for t, _ in text.values()]
    assert "server master-2 " not in cfg
    assert "server master-1 " in cfg and "server master-3 " in cfg


def test_the_port_is_the_sites(config):
    site = kubesalt_core.pillar.merge(config, {"apiserver_proxy": {"port": 7443}})
    assert kubesalt_core.pillar_schema.validate(site) == []
    layout = kubesalt_core.pki.Layout.of(site)
    (spec,) = [s for s in kubesalt_core.pki.KUBECONFIGS if s.name == "kube-proxy"]
    document = kubesalt_core.pki.kubeconfig_document(site, "worker-1", spec, layout)
    assert document["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"
    assert (
        "    bind 127.0.0.1:7443"
        in next(iter(ku.render(site, "worker-1", "kube-apiserver-proxy").files.values()))[0]
    )


def test_a_router_forwards_by_its_own_sysctl_file(config):
    ctx = kubesalt_core.component_context.Context(
        config, "router-1", kubesalt_core.pki.Layout.of(config)
    )
    files = kubesalt_core.node_config.kernel_files(ctx, routing_only=True)
    assert list(files) == ["/etc/sysctl.d/90-kubesalt.conf"]
    assert "net.ipv4.ip_forward = 1" in files["/etc/sysctl.d/90-kubesalt.conf"][0]
    # Flows to a range several workers announce are spread by ports too, not pinned to one.
    assert "net.ipv4.fib_multipath_hash_policy = 1" in files["/etc/sysctl.d/90-kubesalt.conf"][0]


# --- the CA host down ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    key = kubesalt_core.certificates.new_private_key()
    return kubesalt_core.certificates.build_ca(
        "kubernetes-ca", key, 3650, NOW - datetime.timedelta(days=400)
    ), key


def _identity(config, name):
    roles = kubesalt_core.pillar.roles_of(config, "worker-1")
    return {i.name: i for i in kubesalt_core.pki.node_identities(config, "worker-1", roles)}[name]


def _held(config, ca, name, days, issued=NOW):
    identity = _identity(config, name)
    key = kubesalt_core.certificates.new_private_key()
    cert = kubesalt_core.certificates.build_certificate(
        identity, key.public_key(), ca[0], ca[1], days, issued
    )
    return identity, key, cert


def test_without_the_ca_a_due_renewal_waits_and_an_unusable_certificate_blocks(config, ca):
    current = _held(config, ca, "kube-proxy", 365)
    due = _held(config, ca, "kubelet-server", 10)  # renewal due (renew_before_days 30)
    expired = _held(config, ca, "kubelet-client", 10, issued=NOW - datetime.timedelta(days=20))
    missing = _identity(config, "calico-felix")
    held = {i.name: (key, cert) for i, key, cert in (current, due, expired)}
    held["calico-felix"] = (None, None)
    identities = [current[0], due[0], expired[0], missing]
    waiting, blocked = kubesalt_core.certificates.without_ca_plan(
        identities, held, {"kubernetes-ca": ca[0]}, config["pki"], NOW
    )
    assert list(waiting) == ["kubelet-server"]
    assert waiting["kubelet-server"].startswith("expires in 10 days (renew within 30)")
    assert "valid until 2026-12-12" in waiting["kubelet-server"]
    assert sorted(blocked) == ["calico-felix", "kubelet-client"]
    assert blocked["calico-felix"] == "missing"
    assert blocked["kubelet-client"].startswith("expires in")  # expired: not usable
