"""The certificate catalogue and the decisions around it, as data and pure functions.

Like kubeadm's certlist: every certificate a node role holds is one record (CA, common
name, organisations, usages, a SAN rule); the values known only at run time (node name,
addresses, the service IP) are filled in from the cluster config. The CA side builds a
certificate from this catalogue and the requester's minion id alone: of a CSR it takes
nothing but the public key.

No Salt dunders and no I/O here; the execution and state modules do the talking.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import kubesalt_core.apiserver_proxy
import kubesalt_core.pillar
from kubesalt_core.errors import SigningRefused

SERVER = "server_auth"
CLIENT = "client_auth"
_EKU_OIDS = {SERVER: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH}


@dataclass(frozen=True)
class CA:
    name: str
    common_name: str


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
        if not set(spec.extended_usages) <= set(_EKU_OIDS):
            problems.append(f"{spec.name}: unknown extended usage")
    by_name = {spec.name: spec for spec in catalogue}
    for kubeconfig in KUBECONFIGS:
        spec = by_name.get(kubeconfig.certificate)
        if spec is None or SERVER in spec.extended_usages:
            problems.append(f"kubeconfig {kubeconfig.name}: no client certificate")
        elif not set(kubeconfig.roles) <= set(spec.roles):
            problems.append(f"kubeconfig {kubeconfig.name}: its certificate is not on its roles")
    return problems


# --- run-time values ----------------------------------------------------------------------


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


# --- where things live --------------------------------------------------------------------


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

    def kubeconfig(self, name):
        return f"{self.kubernetes_dir}/{name}.conf"


# --- kubeconfigs --------------------------------------------------------------------------


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


# --- issuing and deciding -----------------------------------------------------------------


def new_private_key(key_type="ecdsa-p256"):
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type in ("rsa-2048", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"Invalid key type {key_type!r}. Valid: ecdsa-p256, rsa-2048, rsa-4096")


def key_type_of(key):
    """``ecdsa-p256``, ``rsa-2048`` ... for a private or public key; None when unsupported."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa-p256" if isinstance(key.curve, ec.SECP256R1) else None
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    return None


def key_pem(private_key):
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key):
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def build_csr(private_key, name):
    """A CSR proving possession of ``private_key``. The CA reads nothing else from it."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(name))
        .sign(private_key, hashes.SHA256())
    )


def _name(common_name, organizations=()):
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(ca=False, server=False, rsa_key=False):
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=server and rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_ca(ca_name, private_key, days, now):
    """A self-signed CA certificate for one of CAS."""
    subject = _name(CAS[ca_name].common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(private_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(private_key, hashes.SHA256())
    )


def build_certificate(identity, public_key, ca_cert, ca_key, days, now):
    """Sign ``identity`` for ``public_key``. Nothing but the key comes from the requester."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(identity.common_name, identity.organizations))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(server=identity.is_server, rsa_key=isinstance(public_key, rsa.RSAPublicKey)),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([_EKU_OIDS[u] for u in identity.extended_usages]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
    )
    sans = [x509.DNSName(n) for n in identity.dns_names] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in identity.ip_addresses
    ]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def describe(cert):
    """The identity a certificate carries, in the shape of :class:`Identity` fields."""
    subject = cert.subject
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = tuple(name for name, oid in _EKU_OIDS.items() if oid in eku)
    except x509.ExtensionNotFound:
        usages = ()
    return {
        "common_name": subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
        "organizations": tuple(
            a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ),
        "extended_usages": tuple(sorted(usages)),
        "dns_names": tuple(sorted(dns)),
        "ip_addresses": tuple(sorted(ips)),
    }


def _wanted(identity):
    return {
        "common_name": identity.common_name,
        "organizations": tuple(identity.organizations),
        "extended_usages": tuple(sorted(identity.extended_usages)),
        "dns_names": tuple(sorted(identity.dns_names)),
        "ip_addresses": tuple(sorted(str(ipaddress.ip_address(i)) for i in identity.ip_addresses)),
    }


def same_public_key(a, b):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


def signed_by(cert, ca_cert):
    """True when ``ca_cert`` signed ``cert``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def reissue_reason(identity, cert, public_key, ca_cert, now, renew_before_days):
    """Why ``cert`` must be (re)issued for ``identity``, or None when it is good as it is.

    Reasons, in the order they are checked: missing, not signed by the current CA, does not
    match its key, differs from the catalogue (names the field), expires within
    ``renew_before_days``.
    """
    if cert is None:
        return "missing"
    if not signed_by(cert, ca_cert):
        return "not signed by the current CA"
    if not same_public_key(cert.public_key(), public_key):
        return "does not match its key"
    have, want = describe(cert), _wanted(identity)
    for field in want:
        if have[field] != want[field]:
            return f"{field.replace('_', ' ')} differs from the catalogue"
    left = cert.not_valid_after_utc - now
    if left <= datetime.timedelta(days=renew_before_days):
        return f"expires in {max(left.days, 0)} days (renew within {renew_before_days})"
    return None


def without_ca_plan(identities, held, cas, pki, now):
    """With the CA host silent: ``(waiting, blocked)``, each ``{name: reason}``.

    ``waiting``: certificates that are due (renewal, a changed SAN) but still valid and
    signed by the node's copy of their CA: they keep working until the CA host answers.
    ``blocked``: those the node cannot run with (missing, expired, not signed by the CA it
    trusts), which need the CA host now.

    held
        ``{name: (private key or None, certificate or None)}``.
    """
    waiting, blocked = {}, {}
    for identity in identities:
        key, cert = held[identity.name]
        ca_cert = cas[identity.ca]
        reason, _new_key = certificate_plan(
            identity, key, cert, ca_cert, pki["key_type"], now, pki["renew_before_days"]
        )
        if not reason:
            continue
        usable = (
            key is not None
            and cert is not None
            and cert.not_valid_before_utc <= now < cert.not_valid_after_utc
            and signed_by(cert, ca_cert)
        )
        if usable:
            until = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
            waiting[identity.name] = f"{reason}; valid until {until}"
        else:
            blocked[identity.name] = reason
    return waiting, blocked


def certificate_plan(identity, key, cert, ca_cert, key_type, now, renew_before_days):
    """What to do about one catalogue certificate on its node.

    Returns ``(reason, new_key)``: ``reason`` is None when the certificate is good as it is;
    ``new_key`` says a fresh private key is needed (it is missing, or not the pillar's key
    type). A renewal keeps the existing key. ``ca_cert`` None means the CA does not exist yet
    (it is created on the first signing request).
    """
    if key is None:
        return ("missing" if cert is None else "its key is missing"), True
    have = key_type_of(key)
    if have != key_type:
        return f"key type is {have}, pillar asks for {key_type}", True
    if ca_cert is None:
        return ("missing" if cert is None else "not signed by the current CA"), False
    return reissue_reason(identity, cert, key.public_key(), ca_cert, now, renew_before_days), False


def sign_requests(config, requester, csrs, cas, days, now):
    """Certificates for ``requester`` (an authenticated minion id) from its CSRs.

    ``csrs`` maps catalogue names to CSR objects; ``cas`` maps CA names to ``(cert, key)``.
    Identity, SANs and usages come from the catalogue and pillar for ``requester``; of each
    CSR only its public key is used, after its signature proves the requester holds the key.
    """
    node = (config.get("nodes") or {}).get(requester)
    if not node:
        raise SigningRefused(f"{requester!r} is not a node under kubesalt:nodes")
    identities = {i.name: i for i in node_identities(config, requester, node.get("roles") or [])}
    unknown = sorted(set(csrs) - set(identities))
    if unknown:
        raise SigningRefused(
            f"{requester!r} asked for {', '.join(unknown)}, which its roles "
            f"({', '.join(node.get('roles') or [])}) do not hold"
        )
    issued = {}
    for name, csr in sorted(csrs.items()):
        if not csr.is_signature_valid:
            raise SigningRefused(f"the CSR for {name} is not signed by its own key")
        identity = identities[name]
        ca_cert, ca_key = cas[identity.ca]
        issued[name] = build_certificate(identity, csr.public_key(), ca_cert, ca_key, days, now)
    return issued


def days_left(cert, now):
    return (cert.not_valid_after_utc - now).days
