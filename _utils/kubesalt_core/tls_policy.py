"""The TLS policy every Go server of the cluster gets (pillar ``tls``): the lowest protocol
version it accepts and, below TLS 1.3, the cipher suites it offers. The apiservers, the
controller-managers and schedulers, the kubelets and etcd all read the same names, Go's
``crypto/tls`` ones; TLS 1.3's suites are always on and cannot be chosen in Go.

No Salt dunders and no I/O here.
"""

import kubesalt_core.pillar_checks as check

# Go's crypto/tls CipherSuites() for TLS 1.0-1.2 (the ones it calls secure), and the two
# older names Kubernetes and etcd still accept for the ChaCha20 suites.
GO_TLS12_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
)

# Go's InsecureCipherSuites(): known, and refused here.
GO_INSECURE_SUITES = (
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
)

# TLS 1.3's, which Go always offers with TLS 1.3 and lets nobody choose.
GO_TLS13_SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)

# pillar value -> (Kubernetes' flag value, etcd's).
VERSIONS = {"VersionTLS12": ("VersionTLS12", "TLS1.2"), "VersionTLS13": ("VersionTLS13", "TLS1.3")}


def min_version(value, key):
    return check.choice(tuple(VERSIONS))(value, key)


def cipher_suites(value, key):
    """A non-empty list of Go's TLS 1.2 cipher suite names (see :data:`GO_TLS12_SUITES`)."""
    if not isinstance(value, list) or not value:
        expected = "a non-empty list of Go cipher suite names, such as " + GO_TLS12_SUITES[4]
        return None, [check.Problem(key, f"expected {expected}, got {value!r}")]
    problems = []
    for i, name in enumerate(value):
        where = f"{key}:{i}"
        if name in GO_TLS12_SUITES:
            continue
        if name in GO_INSECURE_SUITES:
            reason = "is one of Go's insecure cipher suites (crypto/tls InsecureCipherSuites)"
        elif name in GO_TLS13_SUITES:
            reason = "is a TLS 1.3 suite: Go always offers those with TLS 1.3; none is chosen"
        else:
            reason = "is not a cipher suite Go's crypto/tls knows"
        problems.append(
            check.Problem(where, f"{name!r} {reason}; valid: {', '.join(GO_TLS12_SUITES)}")
        )
    return value, problems


def suites_apply(config):
    """Cipher suites mean something only when TLS 1.2 is allowed (etcd refuses them with
    TLS 1.3 alone)."""
    return config["tls"]["min_version"] == "VersionTLS12"


def kubernetes_flags(config):
    """``[(flag, value)]`` for a Kubernetes server's command line."""
    tls = config["tls"]
    flags = [("tls-min-version", VERSIONS[tls["min_version"]][0])]
    if suites_apply(config):
        flags.append(("tls-cipher-suites", ",".join(tls["cipher_suites"])))
    return flags


def kubelet_settings(config):
    """The KubeletConfiguration fields of the policy."""
    tls = config["tls"]
    settings = {"tlsMinVersion": VERSIONS[tls["min_version"]][0]}
    if suites_apply(config):
        settings["tlsCipherSuites"] = list(tls["cipher_suites"])
    return settings


def etcd_environment(config, etcd_version):
    """etcd's variables of the policy (``ETCD_TLS_MIN_VERSION`` exists since etcd 3.5)."""
    tls = config["tls"]
    env = {}
    major_minor = tuple(int(p) for p in str(etcd_version).lstrip("v").split(".")[:2])
    if major_minor >= (3, 5):
        env["ETCD_TLS_MIN_VERSION"] = VERSIONS[tls["min_version"]][1]
    if suites_apply(config):
        env["ETCD_CIPHER_SUITES"] = ",".join(tls["cipher_suites"])
    return env
