"""Every component kubesalt runs as a systemd unit: one record each (:class:`Component`).

A record says which role runs the component, which artifact and binary it runs, the SLS
that (re)applies it, its ordering, ports, certificates and hardening, and, as functions of
the cluster config and the node (values known only at run time, like kubeadm's certlist):
its ``ExecStart`` argv and config files, its environment files, extra service lines and
its health probe. Everything else is derived from :data:`COMPONENTS`: the unit files
(:func:`render`), the units each role manages (:func:`managed_units`, which the journal
beacon and the healer trust), the units each binary restarts (:func:`units_of_binary`), and
the state a repair re-applies (:func:`state_of`).

The formula writes what :func:`render` returns; the tests prove the same output with
``systemd-analyze verify``, the built binaries' own flags and config validation, and, for
Kubernetes objects, ``kubernetes-validate``.

No Salt dunders and no I/O here.
"""

import json
from dataclasses import dataclass

import yaml

import kubesalt_core.apiserver_proxy
import kubesalt_core.artifact
import kubesalt_core.calico
import kubesalt_core.confd
import kubesalt_core.etcd
import kubesalt_core.images
import kubesalt_core.pillar
import kubesalt_core.pki
import kubesalt_core.ports

TYPHA_PORT = kubesalt_core.ports.TYPHA_PORT
TYPHA_HEALTH_PORT = kubesalt_core.ports.TYPHA_HEALTH_PORT
FELIX_HEALTH_PORT = kubesalt_core.ports.FELIX_HEALTH_PORT
KUBELET_HEALTHZ_PORT = kubesalt_core.ports.KUBELET_HEALTHZ_PORT
KUBE_PROXY_HEALTHZ_PORT = kubesalt_core.ports.KUBE_PROXY_HEALTHZ_PORT
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
# calico-node's confd writes BIRD's config here and reaches BIRD through this socket.
CALICO_RUN_DIR = "/var/run/calico"
BIRD_SOCKET = "/run/bird/bird.ctl"
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
# Calico routes pods' traffic (no bridge): forwarding is all the kernel must allow.
SYSCTLS = {"net.ipv4.ip_forward": "1"}
# The host packages kube-proxy's mode and felix use (Debian's names).
# procps: kubesalt's own `sysctl -p`.
ROUTER_PACKAGES = ("procps",)
MODE_PACKAGES = {
    "ipvs": ("ipset", "ipvsadm", "conntrack", "procps"),
    "nftables": ("nftables", "conntrack", "procps"),
    "iptables": ("iptables", "ipset", "conntrack", "procps"),
}

# Hardening that every component here tolerates: none of them needs /home, a shared /tmp,
# new privileges through setuid, or a personality change.
_BASE_HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
)
# For the control plane and Typha: they only read their config and talk over the network.
_SERVER_HARDENING = (
    *_BASE_HARDENING,
    "ProtectSystem=strict",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
)


@dataclass(frozen=True)
class Rendered:
    """What the formula writes for one unit on one node."""

    unit: "Component"
    unit_path: str
    unit_text: str
    argv: tuple
    files: dict  # path -> (text, mode)
    executable: str
    directories: tuple  # what the unit writes under ProtectSystem=strict: must exist
    credentials: tuple = ()  # certificate and kubeconfig files it reads when it starts


# --- the values every builder needs ----------------------------------------------------------


@dataclass(frozen=True)
class Context:
    config: dict
    node_id: str
    layout: kubesalt_core.pki.Layout

    @property
    def paths(self):
        return self.config["paths"]

    @property
    def ip(self):
        return self.config["nodes"][self.node_id]["ip"]

    @property
    def network(self):
        return self.config["network"]

    def kubeconfig(self, name):
        return self.layout.kubeconfig(name)


def _flags(pairs):
    return [f"--{name}={value}" for name, value in pairs]


def _dump(document):
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=True)


def _env_file(values):
    lines = ["# Managed by kubesalt: edits are replaced on the next state run."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _etcd_servers(config):
    return ",".join(f"https://{ip}:2379" for _, ip in kubesalt_core.pillar.masters(config))


def is_ca_host(config, node_id):
    return kubesalt_core.pki.ca_host(config) == node_id


# --- builders: (ctx) -> (argv after the binary, {path: (text, mode)}) ------------------------


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


def _apiserver(ctx):
    pki, paths = ctx.layout, ctx.paths
    domain = ctx.config["cluster"]["domain"]
    audit_policy = f"{paths['kubernetes_dir']}/audit-policy.yaml"
    flags = [
        ("advertise-address", ctx.ip),
        ("bind-address", ctx.ip),
        ("secure-port", kubesalt_core.pillar.APISERVER_PORT),
        ("etcd-servers", _etcd_servers(ctx.config)),
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
        ("enable-admission-plugins", "NodeRestriction"),
        ("anonymous-auth", "false"),
        ("allow-privileged", "true"),
        ("profiling", "false"),
        ("audit-policy-file", audit_policy),
        ("audit-log-path", f"{paths['log_dir']}/audit.log"),
        ("audit-log-maxage", 30),
        ("audit-log-maxbackup", 10),
        ("audit-log-maxsize", 100),
    ]
    return _flags(flags), {audit_policy: (_dump(AUDIT_POLICY), 0o644)}


def _component_auth(ctx, kubeconfig):
    path = ctx.kubeconfig(kubeconfig)
    return [
        ("kubeconfig", path),
        ("authentication-kubeconfig", path),
        ("authorization-kubeconfig", path),
        ("bind-address", ctx.ip),
        ("leader-elect", "true"),
        ("profiling", "false"),
    ]


def _scheduler(ctx):
    return _flags(_component_auth(ctx, "scheduler")), {}


def _controller_manager(ctx):
    pki, config = ctx.layout, ctx.config
    flags = [
        *_component_auth(ctx, "controller-manager"),
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
    if is_ca_host(config, ctx.node_id):
        # The cluster-signing pair is the kubernetes CA itself, whose key lives on the CA
        # host alone: only there does the CSR signer run.
        flags += [
            ("cluster-signing-cert-file", pki.ca_cert("kubernetes-ca")),
            ("cluster-signing-key-file", pki.ca_key("kubernetes-ca")),
        ]
    else:
        flags.append(("controllers", "*,-csrsigning"))
    return _flags(flags), {}


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
        "TYPHA_HEALTHPORT": str(TYPHA_HEALTH_PORT),
        "TYPHA_CAFILE": pki.trusted_ca("kubernetes-ca"),
        "TYPHA_SERVERCERTFILE": pki.cert("calico-typha"),
        "TYPHA_SERVERKEYFILE": pki.key("calico-typha"),
        # Only felix's client certificate (CN calico-felix, signed by the kubernetes CA).
        "TYPHA_CLIENTCN": "calico-felix",
    }


def _typha_env_path(ctx):
    return f"{ctx.paths['calico_dir']}/typha.env"


def _typha(ctx):
    return [], {_typha_env_path(ctx): (_env_file(typha_environment(ctx)), 0o644)}


def _registries_dir(ctx):
    return f"{ctx.paths['containerd_dir']}/certs.d"


def containerd_config(ctx):
    """containerd's config.toml for its major version: schema 3 for 2.x, 2 for 1.x. The pod
    sandbox image comes from pillar, registry hosts from ``certs.d`` (see
    :func:`registry_hosts`)."""
    version = str(ctx.config["versions"]["containerd"])
    cni_bin, cni_conf = ctx.paths["cni_bin_dir"], ctx.paths["cni_conf_dir"]
    sandbox = kubesalt_core.images.sandbox(ctx.config)
    restrict = "true" if ctx.config["containerd"]["restrict_oom_score_adj"] else "false"
    if int(version.split(".")[0]) >= 2:
        cri_runtime = '"io.containerd.cri.v1.runtime"'
        cri_images = '"io.containerd.cri.v1.images"'
        head = ["version = 3"]
        images = [
            f"[plugins.{cri_images}.pinned_images]",
            f'  sandbox = "{sandbox}"',
            "",
            f"[plugins.{cri_images}.registry]",
            f'  config_path = "{_registries_dir(ctx)}"',
        ]
        cni = [f"[plugins.{cri_runtime}.cni]", f'  bin_dirs = ["{cni_bin}"]']
        runtime = [f"[plugins.{cri_runtime}]", f"  restrict_oom_score_adj = {restrict}", ""]
    else:
        cri_runtime = '"io.containerd.grpc.v1.cri"'
        head = ["version = 2"]
        images = [
            f"[plugins.{cri_runtime}]",
            f'  sandbox_image = "{sandbox}"',
            f"  restrict_oom_score_adj = {restrict}",
            "",
            f"[plugins.{cri_runtime}.registry]",
            f'  config_path = "{_registries_dir(ctx)}"',
        ]
        cni = [f"[plugins.{cri_runtime}.cni]", f'  bin_dir = "{cni_bin}"']
        runtime = []  # 1.x: one CRI table, above
    lines = [
        "# Managed by kubesalt: edits are replaced on the next state run.",
        *head,
        'root = "/var/lib/containerd"',
        'state = "/run/containerd"',
        "",
        "[grpc]",
        f'  address = "{CONTAINERD_SOCKET}"',
        "",
        *images,
        "",
        *runtime,
        f"[plugins.{cri_runtime}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        "",
        # kubelet's cgroupDriver is systemd: the runtime must use the same driver.
        f"[plugins.{cri_runtime}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = true",
        "",
        *cni,
        f'  conf_dir = "{cni_conf}"',
    ]
    return "\n".join(lines) + "\n"


# Where a registry's name is not its API's host.
_REGISTRY_SERVERS = {"docker.io": "https://registry-1.docker.io"}


def registry_hosts(ctx):
    """``{path: hosts.toml}`` for each registry of ``containerd:registry_mirrors``: its
    mirrors first, in order, for pulling and resolving; the registry itself last."""
    files = {}
    for registry, mirrors in sorted(
        (ctx.config["containerd"].get("registry_mirrors") or {}).items()
    ):
        server = _REGISTRY_SERVERS.get(registry, f"https://{registry}")
        lines = [
            "# Managed by kubesalt: edits are replaced on the next state run.",
            f'server = "{server}"',
        ]
        for mirror in mirrors:
            lines += ["", f'[host."{mirror}"]', '  capabilities = ["pull", "resolve"]']
        files[f"{_registries_dir(ctx)}/{registry}/hosts.toml"] = ("\n".join(lines) + "\n", 0o644)
    return files


def _containerd_config_path(ctx):
    return f"{ctx.paths['containerd_dir']}/config.toml"


def _containerd(ctx):
    path = _containerd_config_path(ctx)
    files = {path: (containerd_config(ctx), 0o644), **registry_hosts(ctx)}
    return _flags([("config", path)]), files


def kubelet_configuration(ctx):
    """The KubeletConfiguration (kubelet.config.k8s.io/v1beta1) of one worker.

    kubesalt owns the kubelet's certificates: the serving pair comes from kubesalt's PKI
    (SANs: node name and IP) and is renewed by the state run, so the kubelet's own rotation
    (rotateCertificates, serverTLSBootstrap) is off.
    """
    pki = ctx.layout
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": ctx.ip,
        "port": 10250,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": pki.trusted_ca("kubernetes-ca")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": pki.cert("kubelet-server"),
        "tlsPrivateKeyFile": pki.key("kubelet-server"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        "clusterDNS": [ctx.network["cluster_dns_ip"]],
        "clusterDomain": ctx.config["cluster"]["domain"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "failSwapOn": True,
        # Upstream's default (true): a cgroup v1 host is refused unless pillar says
        # kubelet:fail_cgroup_v1: false.
        "failCgroupV1": bool(ctx.config.get("kubelet", {}).get("fail_cgroup_v1", True)),
    }


def _kubelet_config_path(ctx):
    return f"{ctx.paths['kubelet_dir']}/config.yaml"


def _kubelet(ctx):
    path = _kubelet_config_path(ctx)
    flags = [
        ("config", path),
        ("kubeconfig", ctx.kubeconfig("kubelet")),
        ("hostname-override", ctx.node_id),
        ("node-ip", ctx.ip),
    ]
    return _flags(flags), {path: (_dump(kubelet_configuration(ctx)), 0o644)}


def kube_proxy_mode(config):
    return config.get("kube_proxy", {}).get("mode") or "ipvs"


def kube_proxy_configuration(ctx):
    """The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) of one worker."""
    mode = kube_proxy_mode(ctx.config)
    document = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": mode,
        "clusterCIDR": ctx.network["pod_cidr"],
        "hostnameOverride": ctx.node_id,
        "bindAddress": ctx.ip,
        "healthzBindAddress": f"{ctx.ip}:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": ctx.kubeconfig("kube-proxy")},
        # 0: leave the kernel's conntrack table size as it is (see kube_proxy:).
        "conntrack": {
            "maxPerCore": int(ctx.config.get("kube_proxy", {}).get("conntrack_max_per_core", 32768))
        },
    }
    if mode == "ipvs":
        # strictARP: the node answers ARP only for addresses on its own interfaces, which
        # IPVS needs once service IPs sit on kube-ipvs0.
        document["ipvs"] = {"scheduler": "rr", "strictARP": True}
    return document


def _kube_proxy_config_path(ctx):
    return f"{ctx.paths['kube_proxy_dir']}/config.yaml"


def sysctl_path(ctx):
    return f"{ctx.paths['sysctl_dir']}/90-kubesalt.conf"


def kernel_modules(config):
    """The modules kube-proxy's mode needs loaded (nftables and iptables: none beyond what
    the kernel loads on use)."""
    return IPVS_MODULES if kube_proxy_mode(config) == "ipvs" else ()


def kernel_files(ctx, routing_only=False):
    """The sysctl.d file pod routing needs, and for IPVS the modules-load.d file (not with
    ``routing_only``: a router forwards and runs no kube-proxy)."""
    sysctls = "\n".join(
        ["# Managed by kubesalt: routing for pods and services."]
        + [f"{key} = {value}" for key, value in SYSCTLS.items()]
    )
    files = {sysctl_path(ctx): (sysctls + "\n", 0o644)}
    if routing_only:
        return files
    modules = kernel_modules(ctx.config)
    if modules:
        text = "\n".join(["# Managed by kubesalt: IPVS for kube-proxy.", *modules]) + "\n"
        files[f"{ctx.paths['modules_load_dir']}/kubesalt-ipvs.conf"] = (text, 0o644)
    return files


def _kube_proxy(ctx):
    path = _kube_proxy_config_path(ctx)
    files = {path: (_dump(kube_proxy_configuration(ctx)), 0o644)}
    return _flags([("config", path)]), files


def calico_node_environment(ctx):
    """The environment calico-node's startup, felix and confd share (one binary)."""
    pki = ctx.layout
    return {
        "DATASTORE_TYPE": "kubernetes",
        "KUBECONFIG": ctx.kubeconfig("calico-node"),
        "NODENAME": ctx.node_id,
        "IP": ctx.ip,
        "CALICO_NETWORKING_BACKEND": "bird",
        # kubesalt applies the pools (network:ip_pools): startup must not make its own.
        "NO_DEFAULT_POOLS": "true",
        "WAIT_FOR_DATASTORE": "true",
        "CLUSTER_TYPE": "k8s,bgp,kubesalt",
        "FELIX_DATASTORETYPE": "kubernetes",
        "FELIX_FELIXHOSTNAME": ctx.node_id,
        "FELIX_LOGFILEPATH": "none",
        "FELIX_LOGSEVERITYSYS": "none",
        "FELIX_LOGSEVERITYSCREEN": "info",
        "FELIX_HEALTHENABLED": "true",
        "FELIX_HEALTHHOST": "127.0.0.1",
        "FELIX_HEALTHPORT": str(FELIX_HEALTH_PORT),
        # Typha over mutual TLS: found through its Service (every master's Typha), the
        # server must present CN calico-typha signed by the kubernetes CA.
        "FELIX_TYPHAK8SSERVICENAME": "calico-typha",
        "FELIX_TYPHAK8SNAMESPACE": "kube-system",
        "FELIX_TYPHACAFILE": pki.trusted_ca("kubernetes-ca"),
        "FELIX_TYPHACERTFILE": pki.cert("calico-felix"),
        "FELIX_TYPHAKEYFILE": pki.key("calico-felix"),
        "FELIX_TYPHACN": "calico-typha",
        # The dataplane kube-proxy uses: felix's rules must live beside kube-proxy's.
        "FELIX_NFTABLESMODE": "Enabled"
        if kube_proxy_mode(ctx.config) == "nftables"
        else "Disabled",
        "FELIX_IPV6SUPPORT": "false",
        # Pods may reach their own host (kubelet probes come from it anyway).
        "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT",
    }


def _calico_env_path(ctx):
    return f"{ctx.paths['calico_dir']}/calico-node.env"


def _calico_env(ctx):
    return {_calico_env_path(ctx): (_env_file(calico_node_environment(ctx)), 0o644)}


def cni_config_path(ctx):
    return f"{ctx.paths['cni_conf_dir']}/10-calico.conflist"


def cni_configuration(ctx):
    """The CNI network of the node's pods: Calico's plugin with its IPAM (addresses from
    the pools, in blocks affine to the node) and Kubernetes policy, then portmap."""
    return {
        "name": "k8s-pod-network",
        "cniVersion": "0.3.1",
        "plugins": [
            {
                "type": "calico",
                "log_level": "info",
                "log_file_path": "none",
                "datastore_type": "kubernetes",
                "nodename": ctx.node_id,
                # 0: the MTU felix detected (it writes it where the plugin reads it).
                "mtu": 0,
                "ipam": {"type": "calico-ipam"},
                "policy": {"type": "k8s"},
                "kubernetes": {"kubeconfig": ctx.kubeconfig("calico-cni")},
            },
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        ],
    }


def _calico_node(ctx):
    """calico-node's startup: the node's BGP address and IPAM, then the CNI config."""
    cni = (json.dumps(cni_configuration(ctx), indent=2, sort_keys=True) + "\n", 0o644)
    return ["-startup"], {**_calico_env(ctx), cni_config_path(ctx): cni}


def _felix(ctx):
    return ["-felix"], _calico_env(ctx)


def confd_dir(ctx):
    return f"{ctx.paths['calico_dir']}/confd"


def _confd(ctx):
    bird = kubesalt_core.artifact.executable(ctx.config, "bird", "bird")
    birdc = kubesalt_core.artifact.executable(ctx.config, "bird", "birdc")
    templates = kubesalt_core.confd.files(confd_dir(ctx), bird, birdc, f"{CALICO_RUN_DIR}/bird.ctl")
    argv = ["-confd", f"-confd-confdir={confd_dir(ctx)}"]
    return argv, {**_calico_env(ctx), **templates}


def bird_config_path(ctx):
    return f"{ctx.paths['calico_dir']}/confd/config/bird.cfg"


def _bird(ctx):
    argv = ["-f", "-R", "-s", f"{CALICO_RUN_DIR}/bird.ctl", "-c", bird_config_path(ctx)]
    return argv, {}


def _calico_bird_service(ctx, _executable):
    """BIRD starts once confd has written its config (a fresh node: within a minute)."""
    wait = (
        f"for i in $(seq 90); do [ -s {bird_config_path(ctx)} ] && exit 0; sleep 1; done; "
        "echo 'no BIRD config from calico-confd' >&2; exit 1"
    )
    return [f"ExecStartPre=/bin/sh -c '{wait}'", "TimeoutStartSec=120"]


def router_bird_config_path(ctx):
    return f"{ctx.paths['bird_dir']}/bird.conf"


def _router_bird(ctx):
    path = router_bird_config_path(ctx)
    argv = ["-f", "-s", BIRD_SOCKET, "-c", path]
    return argv, {path: (kubesalt_core.calico.bird_config(ctx.config, ctx.node_id), 0o640)}


def _router_bird_service(ctx, executable):
    """Check the config before every start; a reload is `birdc configure`, which keeps the
    running config when the new one does not parse."""
    birdc = kubesalt_core.artifact.executable(ctx.config, "bird", "birdc")
    path = router_bird_config_path(ctx)
    return [
        f"ExecStartPre={executable} -p -c {path}",
        f"ExecReload={birdc} -s {BIRD_SOCKET} configure",
    ]


def apiserver_proxy_config_path(ctx):
    return f"{ctx.paths['kubernetes_dir']}/apiserver-proxy.cfg"


def _apiserver_proxy(ctx):
    path = apiserver_proxy_config_path(ctx)
    text = kubesalt_core.apiserver_proxy.config_text(
        ctx.config,
        kubesalt_core.pillar.masters(ctx.config),
        ctx.layout.trusted_ca("kubernetes-ca"),
        ctx.layout.cert("apiserver-proxy"),
    )
    # -Ws: master-worker mode with systemd's notify protocol; a reload (SIGUSR2) starts new
    # workers on the new config while the old ones finish the connections they carry.
    return ["-Ws", "-f", path], {path: (text, 0o644)}


def _apiserver_proxy_service(ctx, executable):
    """A reload checks the config first and keeps the running one when it does not load."""
    path = apiserver_proxy_config_path(ctx)
    return [
        f"ExecReload={executable} -Ws -f {path} -c -q",
        "ExecReload=/bin/kill -USR2 $MAINPID",
    ]


def _etcd_settings(ctx):
    return kubesalt_core.etcd.node_settings(ctx.config, ctx.node_id, ctx.layout)


def etcd_environment(settings):
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
    }


def _etcd(ctx):
    settings = _etcd_settings(ctx)
    return [], {settings["env_file"]: (_env_file(etcd_environment(settings)), 0o644)}


def _etcd_environment_files(ctx):
    settings = _etcd_settings(ctx)
    # The cluster file exists once the member founded or joined: optional ("-").
    return (settings["env_file"], f"-{settings['cluster_env_file']}")


def _etcd_service(ctx, _executable):
    return [f"ReadWritePaths={_etcd_settings(ctx)['data_dir']}"]


# --- health: what "the component works" means, asked of the component itself ----------------


@dataclass(frozen=True)
class Probe:
    """An HTTP(S) request whose 200 answer means healthy. ``ca`` verifies the server; without
    it the server's self-signed serving certificate is accepted (the scheduler's and the
    controller-manager's: they are asked on the node's own address)."""

    url: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


def _etcd_probe(ctx):
    pki = ctx.layout
    return Probe(
        f"https://{ctx.ip}:{kubesalt_core.etcd.CLIENT_PORT}/health",
        pki.trusted_ca("etcd-ca"),
        pki.cert("apiserver-etcd-client"),
        pki.key("apiserver-etcd-client"),
    )


def _apiserver_probe(ctx):
    pki = ctx.layout
    # /readyz: storage, informers and post-start hooks ready, not merely the process up.
    return Probe(
        f"https://{ctx.ip}:{kubesalt_core.pillar.APISERVER_PORT}/readyz",
        pki.trusted_ca("kubernetes-ca"),
        pki.cert("admin"),
        pki.key("admin"),
    )


def _apiserver_proxy_probe(ctx):
    # /readyz of whichever apiserver the proxy picks: the proxy passes TLS through.
    pki = ctx.layout
    return Probe(
        f"{kubesalt_core.apiserver_proxy.url(ctx.config)}/readyz",
        pki.trusted_ca("kubernetes-ca"),
        pki.cert("apiserver-proxy"),
        pki.key("apiserver-proxy"),
    )


def _local_tls_probe(port, path="healthz"):
    return lambda ctx: Probe(f"https://{ctx.ip}:{port}/{path}")


def _typha_probe(_ctx):
    return Probe(f"http://127.0.0.1:{TYPHA_HEALTH_PORT}/readiness")


def _felix_probe(_ctx):
    return Probe(f"http://127.0.0.1:{FELIX_HEALTH_PORT}/readiness")


def _kubelet_probe(_ctx):
    return Probe(f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz")


def _kube_proxy_probe(ctx):
    return Probe(f"http://{ctx.ip}:{KUBE_PROXY_HEALTHZ_PORT}/healthz")


# --- the records ------------------------------------------------------------------------------


def _nothing(_ctx):
    return [], {}


@dataclass(frozen=True)
class Component:
    """One component, run as one systemd unit. ``binary`` is the executable's name in its
    artifact; ``needs`` the artifacts that must be available for it to run (default: its
    own)."""

    name: str
    role: str
    artifact: str
    binary: str
    description: str
    documentation: str
    command: object = _nothing  # ctx -> (argv after the binary, {path: (text, mode)})
    environment_files: object = None  # ctx -> paths ("-" prefix: optional)
    service_lines: object = None  # (ctx, executable) -> extra [Service] lines
    health: object = None  # ctx -> Probe
    state: str = "kubesalt.units"  # the SLS that writes and starts it (what a repair re-applies)
    needs: tuple = ()
    after: tuple = ("network-online.target",)
    wants: tuple = ("network-online.target",)
    ports: tuple = ()  # "port/proto what", for the README and status
    certs: tuple = ()  # catalogue certificate names it reads
    kubeconfig: str | None = None
    unit_type: str = "simple"
    hardening: tuple = _BASE_HARDENING
    read_write: tuple = ()  # paths: keys it writes under ProtectSystem=strict
    directories: object = None  # ctx -> further directories it writes in, made for it
    service_extra: tuple = ()
    # A changed config reloads the unit (ExecReload) instead of restarting it.
    reload: bool = False
    # Not on a node that also has one of these roles.
    not_with: tuple = ()
    # config -> False: the site turned the component off (its unit is removed).
    wanted: object = None
    # The component's own check of a config file (its arguments before the file's path):
    # a file it rejects never replaces the running one.
    config_check: tuple = ()

    @property
    def unit_name(self):
        return f"{self.name}.service"

    @property
    def artifacts_needed(self):
        return self.needs or (self.artifact,)


COMPONENTS = (
    Component(
        "etcd",
        "master",
        "etcd",
        "etcd",
        "etcd, the cluster's key-value store",
        "https://etcd.io/docs/",
        command=_etcd,
        environment_files=_etcd_environment_files,
        service_lines=_etcd_service,
        health=_etcd_probe,
        # etcd's own formula: membership (found, join as a learner, promote) with the unit.
        state="kubesalt.etcd",
        ports=("2379/tcp clients (mutual TLS)", "2380/tcp peers (mutual TLS)"),
        certs=("etcd-server", "etcd-peer"),
        # etcd notifies systemd once it has joined a cluster with a leader; a founder waits
        # for a majority of founders before it reports ready.
        unit_type="notify",
        hardening=_SERVER_HARDENING,
        service_extra=("NotifyAccess=main", "TimeoutStartSec=300", "LimitNOFILE=65536"),
    ),
    Component(
        "kube-apiserver",
        "master",
        "kubernetes",
        "kube-apiserver",
        "Kubernetes API server",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/",
        command=_apiserver,
        health=_apiserver_probe,
        after=("network-online.target", "etcd.service"),
        wants=("network-online.target", "etcd.service"),
        ports=("6443/tcp API (TLS)",),
        certs=(
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "front-proxy-client",
        ),
        hardening=_SERVER_HARDENING,
        read_write=("log_dir",),
        service_extra=("LimitNOFILE=65536",),
    ),
    Component(
        "kube-scheduler",
        "master",
        "kubernetes",
        "kube-scheduler",
        "Kubernetes scheduler",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-scheduler/",
        command=_scheduler,
        health=_local_tls_probe(10259, "readyz"),
        after=("network-online.target", "kube-apiserver.service"),
        ports=("10259/tcp health and metrics (TLS)",),
        certs=("kube-scheduler",),
        kubeconfig="scheduler",
        hardening=_SERVER_HARDENING,
    ),
    Component(
        "kube-controller-manager",
        "master",
        "kubernetes",
        "kube-controller-manager",
        "Kubernetes controller manager",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/"
        "kube-controller-manager/",
        command=_controller_manager,
        health=_local_tls_probe(10257),
        after=("network-online.target", "kube-apiserver.service"),
        ports=("10257/tcp health and metrics (TLS)",),
        certs=("kube-controller-manager",),
        kubeconfig="controller-manager",
        hardening=_SERVER_HARDENING,
    ),
    Component(
        "calico-typha",
        "master",
        "calico_typha",
        "calico-typha",
        "Calico Typha, the datastore fan-out for felix",
        "https://docs.tigera.io/calico/latest/reference/typha/configuration",
        command=_typha,
        environment_files=lambda ctx: (_typha_env_path(ctx),),
        health=_typha_probe,
        after=("network-online.target", "kube-apiserver.service"),
        ports=(
            f"{TYPHA_PORT}/tcp felix connections (mutual TLS)",
            f"{TYPHA_HEALTH_PORT}/tcp health (127.0.0.1)",
        ),
        certs=("calico-typha", "calico-typha-client"),
        kubeconfig="calico-typha",
        hardening=_SERVER_HARDENING,
    ),
    Component(
        "kube-apiserver-proxy",
        "worker",
        "haproxy",
        "haproxy",
        "Node-local apiserver proxy (HAProxy): every master's apiserver on the loopback",
        "https://docs.haproxy.org/2.6/configuration.html",
        command=_apiserver_proxy,
        service_lines=_apiserver_proxy_service,
        health=_apiserver_proxy_probe,
        ports=("6443/tcp apiserver proxy (127.0.0.1; apiserver_proxy:port)",),
        certs=("apiserver-proxy",),
        unit_type="notify",
        hardening=_SERVER_HARDENING,
        # The old workers of a reload belong to the unit too (they finish their connections).
        service_extra=("KillMode=mixed",),
        reload=True,
        not_with=("master",),
        wanted=kubesalt_core.apiserver_proxy.wanted,
        config_check=("-c", "-f"),
    ),
    # The workers' components after their proxy: the kubelet, kube-proxy and calico-node
    # reach the apiservers through it (calico-node's startup blocks until it can).
    Component(
        "containerd",
        "worker",
        "containerd",
        "containerd",
        "containerd container runtime",
        "https://containerd.io",
        command=_containerd,
        after=("network.target", "local-fs.target"),
        wants=(),
        ports=(f"unix {CONTAINERD_SOCKET} CRI",),
        unit_type="notify",
        # The runtime starts every pod's processes: no sandboxing of its own. Delegate lets
        # it manage the cgroups of its shims (SystemdCgroup); KillMode=process keeps the
        # containers running when containerd itself restarts.
        hardening=(),
        service_extra=(
            "Delegate=yes",
            "KillMode=process",
            "OOMScoreAdjust=-999",
            "LimitNPROC=infinity",
            "LimitCORE=infinity",
            "LimitNOFILE=infinity",
            "TasksMax=infinity",
        ),
    ),
    Component(
        "kubelet",
        "worker",
        "kubernetes",
        "kubelet",
        "Kubernetes node agent",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/",
        command=_kubelet,
        health=_kubelet_probe,
        after=("network-online.target", "containerd.service"),
        wants=("network-online.target", "containerd.service"),
        ports=(
            "10250/tcp kubelet API (TLS, webhook authn/authz)",
            f"{KUBELET_HEALTHZ_PORT}/tcp health (127.0.0.1)",
        ),
        certs=("kubelet-client", "kubelet-server"),
        kubeconfig="kubelet",
        # kubelet mounts volumes, manages cgroups and devices for pods: no sandboxing.
        hardening=(),
    ),
    Component(
        "kube-proxy",
        "worker",
        "kubernetes",
        "kube-proxy",
        "Kubernetes service proxy",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/",
        command=_kube_proxy,
        health=_kube_proxy_probe,
        ports=(f"{KUBE_PROXY_HEALTHZ_PORT}/tcp health", "10249/tcp metrics (127.0.0.1)"),
        certs=("kube-proxy",),
        kubeconfig="kube-proxy",
        # kube-proxy programs IPVS, nftables or iptables and loads no module of its own
        # (kubesalt does): only the base hardening.
    ),
    Component(
        "calico-node",
        "worker",
        "calico_node",
        "calico-node",
        "Calico node startup: the node's BGP address and IPAM, and its CNI config",
        "https://docs.tigera.io/calico/latest/reference/configure-calico-node",
        command=_calico_node,
        environment_files=lambda ctx: (_calico_env_path(ctx),),
        # The kubelet registers the node that startup then annotates; until it has,
        # startup fails and is tried again.
        after=("network-online.target", "kubelet.service"),
        certs=("calico-felix", "calico-cni"),
        kubeconfig="calico-node",
        unit_type="oneshot",
        service_extra=("RemainAfterExit=yes",),
    ),
    Component(
        "calico-felix",
        "worker",
        "calico_node",
        "calico-node",
        "Calico felix, the node's routes and policy",
        "https://docs.tigera.io/calico/latest/reference/felix/configuration",
        command=_felix,
        environment_files=lambda ctx: (_calico_env_path(ctx),),
        health=_felix_probe,
        after=("network-online.target", "calico-node.service"),
        wants=("network-online.target", "calico-node.service"),
        ports=(f"{FELIX_HEALTH_PORT}/tcp health (127.0.0.1)",),
        certs=("calico-felix",),
        kubeconfig="calico-node",
        # kubesalt runs felix's iptables/nftables dataplane: it gets no BPF filesystem and
        # may mount none. (A calico-node built without libbpf, as the lab builds it,
        # panics cleaning up BPF state it could reach: "LIBBPF syscall stub".)
        service_extra=(
            "TemporaryFileSystem=/sys/fs/bpf:ro",
            "SystemCallFilter=~@mount",
            "SystemCallErrorNumber=EPERM",
        ),
    ),
    Component(
        "calico-confd",
        "worker",
        "calico_node",
        "calico-node",
        "Calico confd, BIRD's configuration from the datastore",
        "https://docs.tigera.io/calico/latest/reference/architecture/overview",
        command=_confd,
        environment_files=lambda ctx: (_calico_env_path(ctx),),
        directories=lambda ctx: (f"{confd_dir(ctx)}/config",),
        after=("network-online.target", "calico-node.service"),
        wants=("network-online.target", "calico-node.service"),
        certs=("calico-felix",),
        kubeconfig="calico-node",
        read_write=("calico_dir",),
        hardening=(*_BASE_HARDENING, "ProtectSystem=strict"),
        # BIRD's socket dir (made by calico-bird), if it is there yet.
        service_extra=(f"ReadWritePaths=-{CALICO_RUN_DIR}",),
    ),
    Component(
        "calico-bird",
        "worker",
        "bird",
        "bird",
        "BIRD for Calico (configured by calico-confd)",
        "https://bird.network.cz/",
        command=_bird,
        service_lines=_calico_bird_service,
        # BIRD itself, and confd to configure it.
        needs=("bird", "calico_node"),
        after=("network-online.target", "calico-confd.service"),
        ports=("179/tcp BGP",),
        hardening=(*_BASE_HARDENING, "ProtectSystem=strict"),
        service_extra=(
            # BIRD starts once confd has written its config; until then it retries.
            "RuntimeDirectory=calico",
            "RuntimeDirectoryPreserve=yes",
        ),
    ),
    Component(
        "bird",
        "router",
        "bird",
        "bird",
        "BIRD 2, route reflector for the cluster's nodes",
        "https://bird.network.cz/",
        command=_router_bird,
        service_lines=_router_bird_service,
        ports=("179/tcp BGP",),
        hardening=(*_BASE_HARDENING, "ProtectSystem=strict"),
        service_extra=("RuntimeDirectory=bird",),
        reload=True,
    ),
)

BY_NAME = {component.name: component for component in COMPONENTS}
BY_UNIT = {component.unit_name: component for component in COMPONENTS}


def for_roles(roles):
    return [c for c in COMPONENTS if c.role in roles and not set(c.not_with) & set(roles)]


def is_wanted(component, config):
    """False when the site turned ``component`` off (``Component.wanted``)."""
    return component.wanted is None or bool(component.wanted(config))


def spec(name):
    found = BY_NAME.get(name)
    if found is None:
        raise KeyError(f"{name!r} is not a kubesalt component; known: {', '.join(BY_NAME)}")
    return found


def managed_units(roles):
    """``{unit: artifact}`` for every unit kubesalt manages on a node with ``roles``: what
    the journal beacon watches and the healer may touch."""
    return {c.unit_name: c.artifact for c in for_roles(roles)}


def units_of_binary(binary):
    """The units a changed ``binary`` restarts (catalogue entry of kubesalt_core.artifact)."""
    return tuple(
        c.unit_name for c in COMPONENTS if c.binary == binary.name and c.artifact == binary.artifact
    )


def state_of(unit):
    """The SLS whose re-apply can fix ``unit`` (config drift, a missing or expired cert)."""
    component = BY_UNIT.get(unit)
    if component is None:
        raise KeyError(f"{unit!r} is not a kubesalt unit; known: {', '.join(BY_UNIT)}")
    return component.state


def probe(config, node_id, name):
    """The health :class:`Probe` of component ``name`` on ``node_id``, or None."""
    component = spec(name)
    if component.health is None:
        return None
    return component.health(Context(config, node_id, kubesalt_core.pki.Layout.of(config)))


# --- the unit file ---------------------------------------------------------------------------


def _escape(word):
    # '%' starts a systemd specifier; '\' ends a continued line.
    return word.replace("%", "%%")


def unit_text(unit, executable, argv, environment_files=(), read_write=(), service_lines=()):
    """The unit file: journald logging, restarts with a start limit, ordering, hardening."""
    exec_lines = " \\\n    ".join(_escape(w) for w in [executable, *argv])
    unit_section = [
        "[Unit]",
        f"Description={unit.description}",
        f"Documentation={unit.documentation}",
    ]
    if unit.after:
        unit_section.append(f"After={' '.join(unit.after)}")
    if unit.wants:
        unit_section.append(f"Wants={' '.join(unit.wants)}")
    # Five failed starts within two minutes and systemd gives up: kubesalt's repair takes
    # over from there (a bad config or a missing cert is not fixed by restarting).
    unit_section += ["StartLimitIntervalSec=120", "StartLimitBurst=5"]
    service = [
        "[Service]",
        f"Type={unit.unit_type}",
    ]
    service += [f"EnvironmentFile={path}" for path in environment_files]
    service += [
        *service_lines,
        f"ExecStart={exec_lines}",
        "Restart=on-failure",
        "RestartSec=5",
        "StandardOutput=journal",
        "StandardError=journal",
        f"SyslogIdentifier={unit.name}",
        *unit.service_extra,
    ]
    if unit.hardening:
        service += ["# Hardening the component tolerates.", *unit.hardening]
    service += [f"ReadWritePaths={path}" for path in read_write]
    lines = [
        "# Managed by kubesalt: edits are replaced on the next state run.",
        *unit_section,
        "",
        *service,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render(config, node_id, name):
    """Everything the formula writes for component ``name`` on ``node_id``.

    config
        The validated cluster config with root-resolved paths (``kubesalt.config``).
    """
    unit = spec(name)
    ctx = Context(config, node_id, kubesalt_core.pki.Layout.of(config))
    argv, files = unit.command(ctx)
    executable = kubesalt_core.artifact.executable(config, unit.artifact, unit.binary)
    directories = tuple(config["paths"][key] for key in unit.read_write)
    if unit.directories:
        directories += tuple(unit.directories(ctx))
    text = unit_text(
        unit,
        executable,
        argv,
        unit.environment_files(ctx) if unit.environment_files else (),
        directories,
        unit.service_lines(ctx, executable) if unit.service_lines else (),
    )
    return Rendered(
        unit=unit,
        unit_path=f"{config['paths']['systemd_dir']}/{unit.unit_name}",
        unit_text=text,
        argv=tuple(argv),
        files=files,
        executable=executable,
        directories=directories,
        credentials=credential_files(ctx, unit),
    )


def credential_files(ctx, unit):
    """The files holding ``unit``'s certificates (and its kubeconfig): a unit started before
    one of them was re-issued still holds the old certificate."""
    paths = [ctx.layout.cert(name) for name in unit.certs]
    if unit.kubeconfig:
        paths.append(ctx.layout.kubeconfig(unit.kubeconfig))
    return tuple(paths)


def stale_credentials(started_at, modified):
    """The files of ``modified`` ({path: mtime}, epoch seconds) written after the unit
    started (``started_at``, epoch seconds; None: not running, nothing is stale)."""
    if started_at is None:
        return []
    return sorted(path for path, mtime in modified.items() if mtime > started_at)


def node_units(config, node_id, include_etcd=False):
    """Every unit of ``node_id``'s roles, rendered (etcd's only with ``include_etcd``: its
    own formula writes it, ordered against its membership)."""
    roles = config["nodes"][node_id]["roles"]
    return [
        render(config, node_id, c.name)
        for c in for_roles(roles)
        if (include_etcd or c.state == "kubesalt.units") and is_wanted(c, config)
    ]


def unwanted_units(config, node_id):
    """The units of ``node_id``'s roles the site turned off: stopped and removed."""
    roles = config["nodes"][node_id]["roles"]
    return [c for c in for_roles(roles) if not is_wanted(c, config)]


def idle_binaries(config, roles):
    """Names of the binaries of ``roles`` (artifact catalogue) that would run no unit on a
    node with those roles: every unit that runs them is ruled out by another of its roles
    (``Component.not_with``) or turned off by the site (``Component.wanted``). A binary
    that runs no unit at all (kubectl, the CNI plugins) is never idle."""
    running = {c.unit_name for c in for_roles(roles) if is_wanted(c, config)}
    return [
        b.name
        for b in kubesalt_core.artifact.for_roles(roles)
        if units_of_binary(b) and not set(units_of_binary(b)) & running
    ]
