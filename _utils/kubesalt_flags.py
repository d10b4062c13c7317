"""The command-line flags and config fields kubesalt may use, per pinned minor version.

The kube-* and Calico binaries cannot be run where kubesalt is tested, so their ``--help``
cannot be asked. Instead each list below names the flags (or config fields, or environment
variables) kubesalt renders, each checked by hand against the component's published
reference for that minor version (the ``SOURCES``). The renderers are tested against these
lists: a flag that is not listed for the pinned version fails the test, and a pinned
version with no list fails too, so a version bump makes someone read the new reference.

Lists hold only what kubesalt uses, not every flag a component has.
"""

SOURCES = {
    "kube-apiserver": "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/",
    "kube-scheduler": "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-scheduler/",
    "kube-controller-manager": (
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager/"
    ),
    "kubelet": "https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/",
    "kube-proxy": "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/",
    "containerd": "containerd --help (containerd 1.6 and 2.1: --config)",
    "KubeletConfiguration": "https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/",
    "KubeProxyConfiguration": (
        "https://kubernetes.io/docs/reference/config-api/kube-proxy-config.v1alpha1/"
    ),
    "calico-node": (
        "felix/docs/config-params.md and the calico-node environment (Calico docs: "
        "reference/felix/configuration, reference/configure-calico-node)"
    ),
    "calico-typha": (
        "typha/pkg/config/config_params.go (Calico docs: reference/typha/configuration)"
    ),
}


def _names(text):
    return frozenset(text.split())


_APISERVER = _names(
    """
    advertise-address allow-privileged anonymous-auth audit-log-maxage audit-log-maxbackup
    audit-log-maxsize audit-log-path audit-policy-file authorization-mode bind-address
    client-ca-file enable-admission-plugins etcd-cafile etcd-certfile etcd-keyfile
    etcd-servers kubelet-certificate-authority kubelet-client-certificate kubelet-client-key
    kubelet-preferred-address-types profiling proxy-client-cert-file proxy-client-key-file
    requestheader-allowed-names requestheader-client-ca-file
    requestheader-extra-headers-prefix requestheader-group-headers
    requestheader-username-headers secure-port service-account-issuer
    service-account-key-file service-account-signing-key-file service-cluster-ip-range
    tls-cert-file tls-private-key-file
    """
)
_SCHEDULER = _names(
    """
    authentication-kubeconfig authorization-kubeconfig bind-address kubeconfig leader-elect
    profiling
    """
)
_CONTROLLER_MANAGER = _names(
    """
    allocate-node-cidrs authentication-kubeconfig authorization-kubeconfig bind-address
    client-ca-file cluster-cidr cluster-name cluster-signing-cert-file
    cluster-signing-key-file controllers kubeconfig leader-elect profiling
    requestheader-client-ca-file root-ca-file service-account-private-key-file
    service-cluster-ip-range use-service-account-credentials
    """
)
_KUBELET = _names("config hostname-override kubeconfig node-ip")
_KUBE_PROXY = frozenset(["config"])

# Dotted paths; a mapping field's own name is listed with each of its children.
_KUBELET_FIELDS = _names(
    """
    apiVersion kind address port readOnlyPort authentication authentication.anonymous
    authentication.anonymous.enabled authentication.webhook authentication.webhook.enabled
    authentication.webhook.cacheTTL authentication.x509 authentication.x509.clientCAFile
    authorization authorization.mode authorization.webhook
    authorization.webhook.cacheAuthorizedTTL authorization.webhook.cacheUnauthorizedTTL
    tlsCertFile tlsPrivateKeyFile tlsMinVersion tlsCipherSuites rotateCertificates
    serverTLSBootstrap cgroupDriver containerRuntimeEndpoint clusterDNS clusterDomain
    healthzBindAddress healthzPort failSwapOn resolvConf staticPodPath maxPods
    protectKernelDefaults
    """
)
_KUBE_PROXY_FIELDS = _names(
    """
    apiVersion kind mode clusterCIDR hostnameOverride bindAddress healthzBindAddress
    metricsBindAddress clientConnection clientConnection.kubeconfig ipvs ipvs.scheduler
    ipvs.strictARP ipvs.syncPeriod ipvs.minSyncPeriod ipvs.excludeCIDRs
    """
)
_CALICO_NODE_ENV = _names(
    """
    DATASTORE_TYPE KUBECONFIG NODENAME IP CALICO_NETWORKING_BACKEND FELIX_DATASTORETYPE
    FELIX_FELIXHOSTNAME FELIX_LOGFILEPATH FELIX_LOGSEVERITYSYS FELIX_LOGSEVERITYSCREEN
    FELIX_HEALTHENABLED FELIX_TYPHAADDR FELIX_TYPHAK8SSERVICENAME FELIX_TYPHAK8SNAMESPACE
    FELIX_TYPHACAFILE FELIX_TYPHACERTFILE FELIX_TYPHAKEYFILE FELIX_TYPHACN FELIX_TYPHAURISAN
    """
)
_TYPHA_ENV = _names(
    """
    TYPHA_DATASTORETYPE KUBECONFIG TYPHA_LOGFILEPATH TYPHA_LOGSEVERITYSYS
    TYPHA_LOGSEVERITYSCREEN TYPHA_HEALTHENABLED TYPHA_CAFILE TYPHA_SERVERCERTFILE
    TYPHA_SERVERKEYFILE TYPHA_CLIENTCN TYPHA_CLIENTURISAN
    """
)

# Kubernetes minor version -> component -> names.
KUBERNETES = {
    "1.37": {
        "kube-apiserver": _APISERVER,
        "kube-scheduler": _SCHEDULER,
        "kube-controller-manager": _CONTROLLER_MANAGER,
        "kubelet": _KUBELET,
        "kube-proxy": _KUBE_PROXY,
        "KubeletConfiguration": _KUBELET_FIELDS,
        "KubeProxyConfiguration": _KUBE_PROXY_FIELDS,
    },
}
# Calico minor version -> environment file -> names.
CALICO = {"3.32": {"calico-node": _CALICO_NODE_ENV, "calico-typha": _TYPHA_ENV}}
CONTAINERD_FLAGS = frozenset(["config"])
# BIRD 2's command line (bird(8)): foreground, syslog/journal, control socket, config.
BIRD_OPTIONS = frozenset(["-f", "-R", "-s", "-c"])


def minor(version):
    return ".".join(str(version).split(".")[:2])


def known(table, version, component):
    """The names documented for ``component`` at ``version``; KeyError names what is missing."""
    by_component = table.get(minor(version))
    if by_component is None:
        raise KeyError(
            f"no flag list for version {minor(version)} (known: {', '.join(table)}): "
            "read the reference pages of the new version and add one"
        )
    return by_component[component]


def flag_names(argv):
    """``--name`` of every ``--name=value`` / ``--name`` word in ``argv``."""
    return [w[2:].split("=", 1)[0] for w in argv if w.startswith("--")]


def field_paths(document, prefix=""):
    """Every dotted key path in a nested mapping (lists are leaves)."""
    paths = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict):
            paths += field_paths(value, f"{path}.")
    return paths


def unknown(names, documented):
    return sorted(set(names) - set(documented))
