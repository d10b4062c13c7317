"""The ingress in the lab: NGINX's Ingress Controller (built from its source archive, with
Debian's nginx) runs on both workers behind a LoadBalancer Service whose address Calico
gives from network:load_balancer_cidr and the workers announce to the router. Requests are
sent from the router host, over the routes BGP gave it."""

import time

import pytest

from kubesalt_lab import bgp, ingress_traffic, lifecycle, master, workloads
from kubesalt_lab.system import wait_until
from tests.lab.conftest import quiet

WORKERS = ("worker-1", "worker-2")
HOST = "app.lab.test"  # its Ingress has TLS
PLAIN = "plain.lab.test"  # its Ingress has none
NAMESPACE = ingress_traffic.NAMESPACE


def _node(lab, node_id):
    return next(n for n in lab.nodes if n.id == node_id)


def _wait(what, check, timeout=60):
    return wait_until(check, timeout, interval=0.5, what=what)


def _paths_on_router(lab, prefix):
    return sorted(bgp.kernel_paths(lab, _node(lab, "router-1")).get(prefix, []))


@pytest.fixture(scope="module")
def served(applied):
    """Two backends (a pod on each worker) behind two Ingresses (``/one``, ``/two`` of
    app.lab.test, with TLS from a Secret, and of plain.lab.test, without): (lab, the
    ingress's address, the certificate in PEM)."""
    lab = applied
    controllers = workloads.wait_ready(lab, ingress_traffic.SELECTOR, 2, NAMESPACE, timeout=300)
    assert sorted(p["node"] for p in controllers) == list(WORKERS)
    address = _wait("the ingress's address", lambda: ingress_traffic.address(lab))
    secret, cert = ingress_traffic.tls_secret("app-tls", HOST)
    workloads.apply(
        lab,
        *ingress_traffic.backend("web-one", "/one"),
        *ingress_traffic.backend("web-two", "/two"),
        secret,
        ingress_traffic.ingress("app", HOST, {"/one": "web-one", "/two": "web-two"}, "app-tls"),
        ingress_traffic.ingress("plain", PLAIN, {"/one": "web-one", "/two": "web-two"}),
    )
    workloads.wait_ready(lab, "app=web-one", 2)
    workloads.wait_ready(lab, "app=web-two", 2)
    yield lab, address, cert
    made = ("ingress/app", "ingress/plain", "secret/app-tls", "deployment/web-one",
            "service/web-one", "deployment/web-two", "service/web-two")  # fmt: skip
    workloads.delete(lab, *made)


def test_the_address_is_announced_over_every_worker(served):
    lab, address, _cert = served
    workers = sorted(n.ip for n in lab.nodes if n.id in WORKERS)
    _wait("both workers' paths on the router", lambda: _paths_on_router(lab, address) == workers)


def test_http_reaches_the_backend_chosen_by_host_and_path(served):
    lab, address, _cert = served
    one = _wait(
        "plain.lab.test/one answered",
        lambda: (r := ingress_traffic.fetch(lab, address, PLAIN, "/one"))["status"] == 200 and r,
    )
    assert one["body"].startswith("web-one "), one
    # Each backend is in nginx's config once the controller saw its endpoints (until then
    # its upstream is the controller's own 502 server).
    two = _wait(
        "plain.lab.test/two answered",
        lambda: (r := ingress_traffic.fetch(lab, address, PLAIN, "/two"))["status"] == 200 and r,
    )
    assert two["body"].split()[0] == "web-two", two
    # A path no rule has, on a known host: the controller's own 404.
    assert ingress_traffic.fetch(lab, address, PLAIN, "/three")["status"] == 404
    # A host with TLS is sent to HTTPS (the controller's ssl-redirect default).
    redirected = ingress_traffic.fetch(lab, address, HOST, "/one")
    assert (redirected["status"], redirected["location"]) == (301, f"https://{HOST}:443/one")


def test_https_uses_the_ingresss_tls_secret(served):
    lab, address, cert = served
    answer = _wait(
        "app.lab.test/two over TLS",
        lambda: (r := ingress_traffic.fetch(lab, address, HOST, "/two", cert))["status"] and r,
    )
    # The client checked the chain against the Secret's certificate and the name (SNI).
    assert (answer["status"], answer["cn"]) == (200, HOST), answer
    assert answer["body"].startswith("web-two "), answer


def test_an_unknown_host_gets_the_controllers_404(served):
    lab, address, _cert = served
    answer = ingress_traffic.fetch(lab, address, "nobody.lab.test", "/one")
    assert answer["status"] == 404, answer
    assert "nginx" in answer["body"], answer
    # Over TLS the default server, without a certificate of its own, refuses the handshake.
    refused = ingress_traffic.fetch(lab, address, "nobody.lab.test", "/", tls_ca="-")
    assert refused["status"] is None and "SSL" in refused["error"], refused


def test_a_default_tls_secret_must_exist_before_it_is_used(served):
    """ingress:default_tls_secret naming a Secret that does not exist: the master's run
    stops at validation, naming the key, and the DaemonSet stays as it was; once the
    Secret exists the controller serves it for names no Ingress has."""
    lab, address, _cert = served
    before = workloads.get(lab, "daemonset", "kubesalt-ingress", "-n", NAMESPACE)
    wanted = f"{NAMESPACE}/default-server"
    master.override_pillar(lab, {"ingress:default_tls_secret": wanted})
    try:
        ret = master.run_salt(lab, "master-1", "state.apply")["master-1"]
        failed = [s for s in ret.values() if s["result"] is False]
        assert failed, ret
        assert (
            "kubesalt:ingress:default_tls_secret: Secret kubesalt-ingress/default-server "
            "does not exist" in failed[0]["comment"]
        )
        assert not any(s["changes"] for s in ret.values()), ret
        after = workloads.get(lab, "daemonset", "kubesalt-ingress", "-n", NAMESPACE)
        assert after["metadata"]["generation"] == before["metadata"]["generation"]

        secret, cert = ingress_traffic.tls_secret("default-server", "default.lab.test", NAMESPACE)
        workloads.apply(lab, secret)
        ret = master.run_salt(lab, "master-1", "state.apply")["master-1"]
        assert all(s["result"] for s in ret.values()), [s for s in ret.values() if not s["result"]]
        _wait(
            "the controllers rolled with the default certificate",
            lambda: (
                ingress_traffic.fetch(lab, address, "default.lab.test", "/", cert)["cn"]
                == "default.lab.test"
            ),
            timeout=240,
        )
    finally:
        master.override_pillar(lab, {})
        master.run_salt(lab, "master-1", "state.apply")
        workloads.delete(lab, "secret/default-server", namespace=NAMESPACE)
    assert len(ingress_traffic.rolled_out(lab)) == 2


def test_a_config_nginx_rejects_never_replaces_the_running_one(served):
    """The controller runs ``nginx -t`` on what it renders before reloading
    (``-enable-config-safety``): an http snippet nginx rejects, given through pillar's
    ingress:config, is rolled back in every running controller, which logs why, and
    requests are answered as before. (Its ConfigMap event says "updated without error"
    all the same: the log is where the reason is.)"""
    lab, address, _cert = served
    controllers = ingress_traffic.rolled_out(lab)
    config = dict(lab.cluster["ingress"]["config"])
    bad = {**config, "http-snippets": "kubesalt_no_such_directive on;"}
    master.override_pillar(lab, {"ingress:config": bad})
    try:
        ret = master.run_salt(lab, "master-1", "state.apply")["master-1"]
        assert all(s["result"] for s in ret.values()), ret

        def rolled_back(pod):
            log = workloads.kubectl(lab, "logs", "-n", NAMESPACE, pod["name"]).stdout
            return [
                line
                for line in log.splitlines()
                if "rolled back to previous working config" in line
                and 'unknown directive "kubesalt_no_such_directive"' in line
            ]

        for pod in controllers:
            _wait(f"{pod['name']} rolled the config back", lambda p=pod: rolled_back(p), 120)
        answers = [ingress_traffic.fetch(lab, address, PLAIN, "/one") for _ in range(6)]
        assert [a["status"] for a in answers] == [200] * 6, answers
        # The same controllers, still ready: nothing restarted.
        assert workloads.wait_ready(lab, ingress_traffic.SELECTOR, 2, NAMESPACE) == controllers
    finally:
        master.override_pillar(lab, {})
        master.run_salt(lab, "master-1", "state.apply")


def test_requests_keep_succeeding_with_a_worker_powered_off(served):
    """worker-2's host stops: the router drops its path within BGP's hold time and every
    request after that is answered through worker-1 (by the backend pod there: nginx
    passes a request on to the next pod when the one it chose does not answer); booted
    again, its path returns."""
    lab, address, _cert = served
    workers = {n.id: n.ip for n in lab.nodes if n.id in WORKERS}
    _wait("both paths", lambda: _paths_on_router(lab, address) == sorted(workers.values()))
    lifecycle.stop_host(lab, "worker-2", quiet)
    try:
        stopped = time.monotonic()
        _wait(
            "worker-2's path withdrawn",
            lambda: _paths_on_router(lab, address) == [workers["worker-1"]],
            timeout=30,
        )
        print({"withdrawn_after_seconds": round(time.monotonic() - stopped, 1)})
        answers = [ingress_traffic.fetch(lab, address, PLAIN, "/one") for _ in range(20)]
        assert [a["status"] for a in answers] == [200] * 20, answers
    finally:
        lifecycle.start_host(lab, "worker-2", quiet)
    _wait(
        "worker-2's path back",
        lambda: _paths_on_router(lab, address) == sorted(workers.values()),
        timeout=240,
    )
    workloads.wait_ready(lab, ingress_traffic.SELECTOR, 2, NAMESPACE, timeout=240)
