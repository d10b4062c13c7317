"""The certificate catalogue and the decisions around it, as data and pure functions.

Like kubeadm's certlist: every certificate a node role holds is one record (CA, common
name, organisations, usages, a SAN rule); the values known only at run time (node name,
addresses, the service IP) are filled in from the cluster config. The CA side builds a
certificate from this catalogue and the requester's minion id alone: of a CSR it takes
nothing but the public key.

No Salt dunders and no I/O here; the execution and state modules do the talking.
"""

import ipaddress
from dataclasses import dataclass

import kubesalt_core.apiserver_proxy
import kubesalt_core.artifact
import kubesalt_core.pillar

SERVER = "server_auth"


CLIENT = "client_auth"


@dataclass(frozen=True)
class CA:
    name: str
    common_name: str


# The Salt mine entry in which the CA host keeps its public answer (the CA certificates and
# the registered service-account public keys): the function that makes it.
CA_MINE_FUNCTION = "kubesalt_ca.public"

CAS = {
    ca.name: ca
    for ca in (
        CA("kubernetes-ca", "kubernetes"),
        CA("etcd-ca", "etcd-ca"),
        CA("front-proxy-ca", "front-proxy-ca"),
    )
}


@dataclass(frozen=True)
class CertSpec:
    """One catalogue entry. ``common_name`` may contain ``{node}`` (the minion id)."""

    name: str
    ca: str
    common_name: str
    roles: tuple
    organizations: tuple = ()
    extended_usages: tuple = (CLIENT,)
    san_rule: str | None = None


CATALOGUE = (
    # etcd on every master: serving and peer certs both need serverAuth and clientAuth
    # (etcd's gateway dials its own gRPC port with the serving cert).
    CertSpec("etcd-server", "etcd-ca", "{node}", ("master",), (), (SERVER, CLIENT), "etcd"),
    CertSpec("etcd-peer", "etcd-ca", "{node}", ("master",), (), (SERVER, CLIENT), "etcd"),
    CertSpec("apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client", ("master",)),
    CertSpec(
        "apiserver", "kubernetes-ca", "kube-apiserver", ("master",), (), (SERVER,), "apiserver"
    ),
    # The identity the cluster binds to system:kubelet-api-admin (pod logs, exec).
    CertSpec(
        "apiserver-kubelet-client", "kubernetes-ca", "kube-apiserver-kubelet-client", ("master",)
    ),
    CertSpec("front-proxy-client", "front-proxy-ca", "front-proxy-client", ("master",)),
    CertSpec("kube-scheduler", "kubernetes-ca", "system:kube-scheduler", ("master",)),
    CertSpec(
        "kube-controller-manager", "kubernetes-ca", "system:kube-controller-manager", ("master",)
    ),
    CertSpec("admin", "kubernetes-ca", "kubernetes-admin", ("master",), ("system:masters",)),
    # Typha's mutual TLS: felix checks the server's CN (FELIX_TYPHACN), typha the
    # client's (TYPHA_CLIENTCN).
    CertSpec("calico-typha", "kubernetes-ca", "calico-typha", ("master",), (), (SERVER,), "node"),
    # Typha's own identity towards the apiserver (it watches the datastore for every felix).
    CertSpec("calico-typha-client", "kubernetes-ca", "calico-typha", ("master",)),
    CertSpec(
        "kubelet-client", "kubernetes-ca", "system:node:{node}", ("worker",), ("system:nodes",)
    ),
    CertSpec(
        "kubelet-server",
        "kubernetes-ca",
        "system:node:{node}",
        ("worker",),
        ("system:nodes",),
        (SERVER,),
        "node",
    ),
    CertSpec("kube-proxy", "kubernetes-ca", "system:kube-proxy", ("worker",)),
    # The node-local apiserver proxy's checks of every apiserver's /readyz (any
    # authenticated identity may read it: system:public-info-viewer).
    CertSpec("apiserver-proxy", "kubernetes-ca", "kubesalt:apiserver-proxy", ("worker",)),
    # felix's client cert towards Typha; calico-node also authenticates with it to the
    # apiserver (node registration, confd's BGP config, the CNI plugin's IPAM).
    CertSpec("calico-felix", "kubernetes-ca", "calico-felix", ("worker",)),
    # The Calico CNI plugin's identity (pods' addresses from IPAM), less than calico-node's.
    CertSpec("calico-cni", "kubernetes-ca", "calico-cni", ("worker",)),
)


# Every master signs service-account tokens with its own key pair (made on the master, like
# every node key); the CA host keeps the registry of their public halves, and every master's
# apiserver trusts the whole set.
SERVICE_ACCOUNT_ROLES = ("master",)


@dataclass(frozen=True)
class KubeconfigSpec:
    """A kubeconfig: which client cert it uses, and which apiserver it talks to.

    ``server`` is ``"local"`` (this master's own apiserver) or ``"cluster"`` (see
    :func:`apiserver_url`).
    """

    name: str
    certificate: str
    roles: tuple
    server: str


KUBECONFIGS = (
    KubeconfigSpec("admin", "admin", ("master",), "cluster"),
    KubeconfigSpec("scheduler", "kube-scheduler", ("master",), "local"),
    KubeconfigSpec("controller-manager", "kube-controller-manager", ("master",), "local"),
    KubeconfigSpec("kubelet", "kubelet-client", ("worker",), "cluster"),
    KubeconfigSpec("kube-proxy", "kube-proxy", ("worker",), "cluster"),
    KubeconfigSpec("calico-typha", "calico-typha-client", ("master",), "local"),
    KubeconfigSpec("calico-node", "calico-felix", ("worker",), "cluster"),
    KubeconfigSpec("calico-cni", "calico-cni", ("worker",), "cluster"),
)


def check_catalogue(catalogue=CATALOGUE):
    """Names are unique, every CA and SAN rule exists (a typo fails at import in tests)."""
    names = [spec.name for spec in catalogue]
    problems = [f"duplicate certificate name {n!r}" for n in set(names) if names.count(n) > 1]
    for spec in catalogue:
        if spec.ca not in CAS:
            problems.append(f"{spec.name}: unknown CA {spec.ca!r}")
        if spec.san_rule is not None and spec.san_rule not in SAN_RULES:
            problems.append(f"{spec.name}: unknown SAN rule {spec.san_rule!r}")
        if not set(spec.extended_usages) <= {SERVER, CLIENT}:
            problems.append(f"{spec.name}: unknown extended usage")
    by_name = {spec.name: spec for spec in catalogue}
    for kubeconfig in KUBECONFIGS:
        spec = by_name.get(kubeconfig.certificate)
        if spec is None or SERVER in spec.extended_usages:
            problems.append(f"kubeconfig {kubeconfig.name}: no client certificate")
        elif not set(kubeconfig.roles) <= set(spec.roles):
            problems.append(f"kubeconfig {kubeconfig.name}: its certificate is not on its roles")
    return problems


@dataclass(frozen=True)
class Identity:
    """What one certificate must say, resolved for one node."""

    name: str
    ca: str
    common_name: str
    organizations: tuple
    extended_usages: tuple
    dns_names: tuple
    ip_addresses: tuple

    @property
    def is_server(self):
        return SERVER in self.extended_usages


def _sans_etcd(config, node_id):
    ip = config["nodes"][node_id]["ip"]
    return (node_id, "localhost"), (ip, "127.0.0.1")


def _sans_node(config, node_id):
    return (node_id,), (config["nodes"][node_id]["ip"],)


def _sans_apiserver(config, node_id):
    domain = config["cluster"]["domain"]
    service_ip = str(ipaddress.ip_network(config["network"]["service_cidr"])[1])
    masters = kubesalt_core.pillar.masters(config)
    extra = (config.get("pki") or {}).get("apiserver_extra_sans") or []
    extra_ips = [s for s in extra if kubesalt_core.pillar.is_ip(s)]
    extra_names = [s for s in extra if not kubesalt_core.pillar.is_ip(s)]
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
        *(m for m, _ in masters),
        *extra_names,
        # The node-local apiserver proxy passes TLS through: clients dial the loopback.
        "localhost",
    ]
    ips = [service_ip, *(ip for _, ip in masters), *extra_ips, "127.0.0.1"]
    return tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips))


SAN_RULES = {"etcd": _sans_etcd, "node": _sans_node, "apiserver": _sans_apiserver}


def node_identities(config, node_id, roles):
    """Every certificate ``node_id`` must hold for ``roles``, fully resolved."""
    identities = []
    for spec in CATALOGUE:
        if not set(spec.roles) & set(roles):
            continue
        dns, ips = SAN_RULES[spec.san_rule](config, node_id) if spec.san_rule else ((), ())
        identities.append(
            Identity(
                name=spec.name,
                ca=spec.ca,
                common_name=spec.common_name.format(node=node_id),
                organizations=spec.organizations,
                extended_usages=spec.extended_usages,
                dns_names=tuple(dns),
                ip_addresses=tuple(ips),
            )
        )
    return identities


def ca_host(config):
    """The minion that keeps the CAs: ``pki:ca_host``, else the first master by minion id."""
    chosen = (config.get("pki") or {}).get("ca_host")
    if chosen:
        return chosen
    masters = kubesalt_core.pillar.masters(config)
    return masters[0][0] if masters else None


def trusted_cas(identities):
    """The CAs whose certificates a node keeps: those that signed its own certificates."""
    return sorted({identity.ca for identity in identities})


def holds_service_account_key(roles):
    return bool(set(SERVICE_ACCOUNT_ROLES) & set(roles))


@dataclass(frozen=True)
class Layout:
    """File names, from the (root-resolved) ``paths`` of the cluster config.

    On every node, under ``pki_dir``: ``<cert>.crt`` / ``<cert>.key`` for each catalogue
    entry, ``<ca>.crt`` for each CA it trusts, and on masters ``service-account.key`` and
    ``service-accounts.pub`` (every master's public key). On the CA host only, under
    ``ca_dir`` (mode 0700): ``<ca>.crt`` / ``<ca>.key`` and ``service-accounts/<id>.pub``.
    """

    pki_dir: str
    ca_dir: str
    kubernetes_dir: str

    @classmethod
    def of(cls, config):
        paths = config["paths"]
        return cls(paths["pki_dir"], paths["ca_dir"], paths["kubernetes_dir"])

    def cert(self, name):
        return f"{self.pki_dir}/{name}.crt"

    def key(self, name):
        return f"{self.pki_dir}/{name}.key"

    def trusted_ca(self, ca):
        return f"{self.pki_dir}/{ca}.crt"

    @property
    def service_account_key(self):
        return f"{self.pki_dir}/service-account.key"

    @property
    def service_account_bundle(self):
        return f"{self.pki_dir}/service-accounts.pub"

    def ca_cert(self, ca):
        return f"{self.ca_dir}/{ca}.crt"

    def ca_key(self, ca):
        return f"{self.ca_dir}/{ca}.key"

    @property
    def registry_dir(self):
        return f"{self.ca_dir}/service-accounts"

    @property
    def encryption_keys(self):
        """The key set Secrets are encrypted with (CA host only, 0600)."""
        return f"{self.ca_dir}/encryption-keys.json"

    def kubeconfig(self, name):
        return f"{self.kubernetes_dir}/{name}.conf"


def apiserver_url(config, node_id, scope):
    """``https://host:port`` of the apiserver a kubeconfig of ``scope`` talks to.

    ``local`` and any kubeconfig of a master: the master's own apiserver. Otherwise
    ``cluster:apiserver_endpoint`` when set, the node-local apiserver proxy where it runs,
    and with the proxy turned off the first master.
    """
    port = kubesalt_core.pillar.APISERVER_PORT
    roles = config["nodes"][node_id]["roles"]
    if scope == "local" or "master" in roles:
        host = config["nodes"][node_id]["ip"]
    elif config["cluster"].get("apiserver_endpoint"):
        host, port = kubesalt_core.pillar.split_endpoint(config["cluster"]["apiserver_endpoint"])
    elif kubesalt_core.apiserver_proxy.runs_on(config, roles):
        return kubesalt_core.apiserver_proxy.url(config)
    else:
        host = kubesalt_core.pillar.masters(config)[0][1]
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def kubeconfig_document(config, node_id, spec, layout):
    """The kubeconfig ``spec`` for ``node_id`` as a dict: paths to the cert and key, no
    embedded secrets (the key stays in its own 0600 file)."""
    cluster = config["cluster"]["name"]
    user = spec.name
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": apiserver_url(config, node_id, spec.server),
                    "certificate-authority": layout.trusted_ca("kubernetes-ca"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": layout.cert(spec.certificate),
                    "client-key": layout.key(spec.certificate),
                },
            }
        ],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }


def node_kubeconfigs(roles):
    return [spec for spec in KUBECONFIGS if set(spec.roles) & set(roles)]


def admin_kubectl(config):
    """``[kubectl, --kubeconfig, <admin kubeconfig>]`` as a master runs it, or None when
    pillar gives no ``artifacts:kubernetes`` (no kubectl)."""
    if not kubesalt_core.artifact.available(config, "kubernetes"):
        return None
    kubectl = kubesalt_core.artifact.executable(config, "kubernetes", "kubectl")
    return [kubectl, "--kubeconfig", Layout.of(config).kubeconfig("admin")]
