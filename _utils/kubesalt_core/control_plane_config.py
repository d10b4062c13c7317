"""The control plane's command lines and config files: kube-apiserver, kube-scheduler,
kube-controller-manager, calico-typha and etcd. Each builder is ``(ctx) -> (argv after the
binary, {path: (text, mode)})``; :mod:`kubesalt_core.components` names them per component.

No Salt dunders and no I/O here.
"""

import kubesalt_core.admission
import kubesalt_core.component_context
import kubesalt_core.etcd
import kubesalt_core.pillar
import kubesalt_core.ports
import kubesalt_core.tls_policy

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        # Health probes and the event stream are noise.
        {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]},
        {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
        # Never log the contents of secrets or tokens, only who touched them.
        {
            "level": "Metadata",
            "resources": [
                {"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                {"group": "authentication.k8s.io", "resources": ["tokenreviews"]},
            ],
        },
        {"level": "Metadata"},
    ],
}


def encryption_config_path(config):
    """The apiservers' EncryptionConfiguration: written by ``kubesalt_encryption`` from the
    key set the CA host seals to each master, never from pillar."""
    return f"{config['paths']['kubernetes_dir']}/encryption-config.yaml"


def admission_config_path(ctx):
    return f"{ctx.paths['kubernetes_dir']}/admission-config.yaml"


def apiserver(ctx):
    pki, paths = ctx.layout, ctx.paths
    domain = ctx.config["cluster"]["domain"]
    audit_policy = f"{paths['kubernetes_dir']}/audit-policy.yaml"
    admission = kubesalt_core.admission.configuration(ctx.config)
    flags = [
        ("advertise-address", ctx.ip),
        ("bind-address", ctx.ip),
        ("secure-port", kubesalt_core.pillar.APISERVER_PORT),
        # Its own member only, as kubeadm's stacked control plane does: the apiserver and
        # the member live and die with their host, so no request waits on another host's
        # member that is gone (a request sent to a member that vanished hangs until its
        # connection times out).
        ("etcd-servers", f"https://{ctx.ip}:{kubesalt_core.etcd.CLIENT_PORT}"),
        ("etcd-cafile", pki.trusted_ca("etcd-ca")),
        ("etcd-certfile", pki.cert("apiserver-etcd-client")),
        ("etcd-keyfile", pki.key("apiserver-etcd-client")),
        ("client-ca-file", pki.trusted_ca("kubernetes-ca")),
        ("tls-cert-file", pki.cert("apiserver")),
        ("tls-private-key-file", pki.key("apiserver")),
        ("kubelet-client-certificate", pki.cert("apiserver-kubelet-client")),
        ("kubelet-client-key", pki.key("apiserver-kubelet-client")),
        ("kubelet-certificate-authority", pki.trusted_ca("kubernetes-ca")),
        ("kubelet-preferred-address-types", "InternalIP,Hostname"),
        ("proxy-client-cert-file", pki.cert("front-proxy-client")),
        ("proxy-client-key-file", pki.key("front-proxy-client")),
        ("requestheader-client-ca-file", pki.trusted_ca("front-proxy-ca")),
        ("requestheader-allowed-names", "front-proxy-client"),
        ("requestheader-username-headers", "X-Remote-User"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        ("service-account-issuer", f"https://kubernetes.default.svc.{domain}"),
        ("service-account-key-file", pki.service_account_bundle),
        ("service-account-signing-key-file", pki.service_account_key),
        ("service-cluster-ip-range", ctx.network["service_cidr"]),
        # The masters run no kube-proxy and no route leads them to Service addresses: with
        # "endpoints" the apiserver calls webhooks, CRD conversion and aggregated APIs at
        # their Services' ready pod addresses, which the routers route to the masters.
        (
            "enable-aggregator-routing",
            str(ctx.config["apiserver"]["service_routing"] == "endpoints").lower(),
        ),
        ("authorization-mode", "Node,RBAC"),
        ("anonymous-auth", "false"),
        ("allow-privileged", "true"),
        ("profiling", "false"),
        # Tokens live as long as they say (1 h for projected ones), not a year.
        ("service-account-extend-token-expiration", "false"),
        ("service-account-lookup", "true"),
        ("encryption-provider-config", encryption_config_path(ctx.config)),
        # A rewritten file (a key rotation step) is read again within a minute, without a
        # restart; kubesalt_encryption.loaded tells when (the apiserver's config hash).
        ("encryption-provider-config-automatic-reload", "true"),
        # On stop, end the open watches first (within 5 s): otherwise the HTTP server waits
        # for them until its 60 s deadline, and every restart (an upgrade, a renewal, a
        # repair) takes a minute.
        ("shutdown-watch-termination-grace-period", "5s"),
        ("audit-policy-file", audit_policy),
        ("audit-log-path", f"{paths['log_dir']}/audit.log"),
        ("audit-log-maxage", 30),
        ("audit-log-maxbackup", 10),
        ("audit-log-maxsize", 100),
        *kubesalt_core.tls_policy.kubernetes_flags(ctx.config),
    ]
    enabled = kubesalt_core.admission.enabled(ctx.config)
    if enabled:
        flags.append(("enable-admission-plugins", ",".join(enabled)))
    disabled = kubesalt_core.admission.disabled(ctx.config)
    if disabled:
        flags.append(("disable-admission-plugins", ",".join(disabled)))
    files = {audit_policy: (kubesalt_core.component_context.yaml_text(AUDIT_POLICY), 0o600)}
    if admission is not None:
        flags.append(("admission-control-config-file", admission_config_path(ctx)))
        files[admission_config_path(ctx)] = (
            kubesalt_core.component_context.yaml_text(admission),
            0o600,
        )
    return kubesalt_core.component_context.flags(flags), files


def component_auth(ctx, kubeconfig):
    path = ctx.kubeconfig(kubeconfig)
    return [
        ("kubeconfig", path),
        ("authentication-kubeconfig", path),
        ("authorization-kubeconfig", path),
        # Health and metrics on the loopback only: nothing off the host asks them.
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("profiling", "false"),
        *kubesalt_core.tls_policy.kubernetes_flags(ctx.config),
    ]


def scheduler(ctx):
    return kubesalt_core.component_context.flags(component_auth(ctx, "scheduler")), {}


def controller_manager(ctx):
    pki, config = ctx.layout, ctx.config
    flags = [
        *component_auth(ctx, "controller-manager"),
        ("cluster-name", config["cluster"]["name"]),
        ("cluster-cidr", ctx.network["pod_cidr"]),
        # Calico assigns pod blocks (its IPAM), not the node IPAM controller.
        ("allocate-node-cidrs", "false"),
        ("service-cluster-ip-range", ctx.network["service_cidr"]),
        ("root-ca-file", pki.trusted_ca("kubernetes-ca")),
        ("service-account-private-key-file", pki.service_account_key),
        ("use-service-account-credentials", "true"),
        ("client-ca-file", pki.trusted_ca("kubernetes-ca")),
        ("requestheader-client-ca-file", pki.trusted_ca("front-proxy-ca")),
    ]
    if kubesalt_core.component_context.is_ca_host(config, ctx.node_id):
        # The cluster-signing pair is the kubernetes CA itself, whose key lives on the CA
        # host alone: only there does the CSR signer run.
        flags += [
            ("cluster-signing-cert-file", pki.ca_cert("kubernetes-ca")),
            ("cluster-signing-key-file", pki.ca_key("kubernetes-ca")),
        ]
    else:
        flags.append(("controllers", "*,-csrsigning"))
    return kubesalt_core.component_context.flags(flags), {}


def typha_environment(ctx):
    pki = ctx.layout
    return {
        "TYPHA_DATASTORETYPE": "kubernetes",
        "KUBECONFIG": ctx.kubeconfig("calico-typha"),
        "TYPHA_LOGFILEPATH": "none",
        "TYPHA_LOGSEVERITYSYS": "none",
        "TYPHA_LOGSEVERITYSCREEN": "info",
        "TYPHA_HEALTHENABLED": "true",
        # An address, not "localhost": the name needs a resolver, an address does not.
        "TYPHA_HEALTHHOST": "127.0.0.1",
        "TYPHA_HEALTHPORT": str(kubesalt_core.ports.TYPHA_HEALTH_PORT),
        "TYPHA_CAFILE": pki.trusted_ca("kubernetes-ca"),
        "TYPHA_SERVERCERTFILE": pki.cert("calico-typha"),
        "TYPHA_SERVERKEYFILE": pki.key("calico-typha"),
        # Only felix's client certificate (CN calico-felix, signed by the kubernetes CA).
        "TYPHA_CLIENTCN": "calico-felix",
    }


def typha_env_path(ctx):
    return f"{ctx.paths['calico_dir']}/typha.env"


def typha(ctx):
    return [], {
        typha_env_path(ctx): (
            kubesalt_core.component_context.env_file(typha_environment(ctx)),
            0o600,
        )
    }


def etcd_settings(ctx):
    return kubesalt_core.etcd.node_settings(ctx.config, ctx.node_id, ctx.layout)


def etcd_environment(config, settings):
    """etcd's configuration as the ETCD_* variables it reads (see ``etcd --help``). The first
    start's cluster settings (state, member list, token) are in a second file, written when
    this member founded or joined the cluster (``kubesalt_etcd.member_present``)."""
    return {
        "ETCD_NAME": settings["name"],
        "ETCD_DATA_DIR": settings["data_dir"],
        "ETCD_LISTEN_PEER_URLS": ",".join(settings["peer_urls"]),
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": ",".join(settings["peer_urls"]),
        "ETCD_LISTEN_CLIENT_URLS": ",".join(settings["listen_client_urls"]),
        "ETCD_ADVERTISE_CLIENT_URLS": ",".join(settings["client_urls"]),
        "ETCD_CERT_FILE": settings["cert"],
        "ETCD_KEY_FILE": settings["key"],
        "ETCD_TRUSTED_CA_FILE": settings["ca"],
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_CERT_FILE": settings["peer_cert"],
        "ETCD_PEER_KEY_FILE": settings["peer_key"],
        "ETCD_PEER_TRUSTED_CA_FILE": settings["ca"],
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        # Refuse membership changes that would lose quorum (kubesalt waits, never turns it off).
        "ETCD_STRICT_RECONFIG_CHECK": "true",
        "ETCD_LOGGER": "zap",
        "ETCD_LOG_OUTPUTS": "stderr",
        **kubesalt_core.tls_policy.etcd_environment(config, config["versions"]["etcd"]),
    }


def etcd(ctx):
    settings = etcd_settings(ctx)
    return [], {
        settings["env_file"]: (
            kubesalt_core.component_context.env_file(etcd_environment(ctx.config, settings)),
            0o600,
        )
    }


def etcd_environment_files(ctx):
    settings = etcd_settings(ctx)
    # The cluster file exists once the member founded or joined: optional ("-").
    return (settings["env_file"], f"-{settings['cluster_env_file']}")


def etcd_service(ctx, _executable):
    """etcd runs as its own user; what root's tools made in its data directory (a member
    moved aside and made again, a data directory from before etcd had a user) is given to
    it before every start (``+``: that one command runs as root)."""
    settings = etcd_settings(ctx)
    user, data = settings["user"], settings["data_dir"]
    return [
        f"User={user}",
        f"Group={user}",
        f"ExecStartPre=+/bin/chown -R {user}:{user} {data}",
        f"ReadWritePaths={data}",
    ]
