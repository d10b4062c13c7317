"""Health: what "the component works" means, asked of the component itself (its own
health endpoint, or etcd's status), one :class:`Probe` per component.

No Salt dunders and no I/O here: the execution module runs the probe.
"""

from dataclasses import dataclass

import kubesalt_core.apiserver_proxy
import kubesalt_core.etcd
import kubesalt_core.pillar
import kubesalt_core.ports


@dataclass(frozen=True)
class Probe:
    """An HTTP(S) request whose 200 answer means healthy. ``ca`` verifies the server; without
    it the server's self-signed serving certificate is accepted (the scheduler's and the
    controller-manager's: they are asked on the loopback)."""

    url: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


def etcd_probe(ctx):
    pki = ctx.layout
    return Probe(
        f"https://{ctx.ip}:{kubesalt_core.etcd.CLIENT_PORT}/health",
        pki.trusted_ca("etcd-ca"),
        pki.cert("apiserver-etcd-client"),
        pki.key("apiserver-etcd-client"),
    )


def apiserver_probe(ctx):
    pki = ctx.layout
    # /readyz: storage, informers and post-start hooks ready, not merely the process up.
    return Probe(
        f"https://{ctx.ip}:{kubesalt_core.pillar.APISERVER_PORT}/readyz",
        pki.trusted_ca("kubernetes-ca"),
        pki.cert("admin"),
        pki.key("admin"),
    )


def apiserver_proxy_probe(ctx):
    # /readyz of whichever apiserver the proxy picks: the proxy passes TLS through.
    pki = ctx.layout
    return Probe(
        f"{kubesalt_core.apiserver_proxy.url(ctx.config)}/readyz",
        pki.trusted_ca("kubernetes-ca"),
        pki.cert("apiserver-proxy"),
        pki.key("apiserver-proxy"),
    )


def local_tls_probe(port, path="healthz"):
    # They serve on the loopback only (--bind-address=127.0.0.1).
    return lambda _ctx: Probe(f"https://127.0.0.1:{port}/{path}")


def typha_probe(_ctx):
    return Probe(f"http://127.0.0.1:{kubesalt_core.ports.TYPHA_HEALTH_PORT}/readiness")


def felix_probe(_ctx):
    return Probe(f"http://127.0.0.1:{kubesalt_core.ports.FELIX_HEALTH_PORT}/readiness")


def kubelet_probe(_ctx):
    return Probe(f"http://127.0.0.1:{kubesalt_core.ports.KUBELET_HEALTHZ_PORT}/healthz")


def kube_proxy_probe(ctx):
    return Probe(f"http://{ctx.ip}:{kubesalt_core.ports.KUBE_PROXY_HEALTHZ_PORT}/healthz")
