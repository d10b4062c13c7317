"""A node's command lines and config files: containerd, kubelet, kube-proxy, Calico's
node (felix, confd, BIRD, the CNI config), the routers' BIRD, the node-local apiserver
proxy, and the kernel settings they need. Each builder is ``(ctx) -> (argv after the
binary, {path: (text, mode)})``; :mod:`kubesalt_core.components` names them per component.

No Salt dunders and no I/O here.
"""

import json

import kubesalt_core.apiserver_proxy
import kubesalt_core.artifact
import kubesalt_core.calico
import kubesalt_core.component_context
import kubesalt_core.confd
import kubesalt_core.images
import kubesalt_core.pillar
import kubesalt_core.ports
import kubesalt_core.tls_policy

IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")


# Calico routes pods' traffic (no bridge): forwarding is all the kernel must allow.
SYSCTLS = {"net.ipv4.ip_forward": "1"}


# What a kubelet with protectKernelDefaults requires of the kernel (it refuses to start
# otherwise): Kubernetes' own values (component-helpers/node/util/sysctl).
KUBELET_SYSCTLS = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}


# The host packages kube-proxy's mode and felix use (Debian's names).
# procps: kubesalt's own `sysctl -p`.
ROUTER_PACKAGES = ("procps",)


MODE_PACKAGES = {
    # IPVS mode still writes iptables rules (masquerade, marks), and felix runs its iptables
    # dataplane beside it (FELIX_NFTABLESMODE Disabled): both exec the iptables programs.
    "ipvs": ("iptables", "ipset", "ipvsadm", "conntrack", "procps"),
    "nftables": ("nftables", "conntrack", "procps"),
    "iptables": ("iptables", "ipset", "conntrack", "procps"),
}


def registries_dir(ctx):
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
            f'  config_path = "{registries_dir(ctx)}"',
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
            f'  config_path = "{registries_dir(ctx)}"',
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
        f'  address = "{kubesalt_core.component_context.CONTAINERD_SOCKET}"',
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
        files[f"{registries_dir(ctx)}/{registry}/hosts.toml"] = ("\n".join(lines) + "\n", 0o644)
    return files


def containerd_config_path(ctx):
    return f"{ctx.paths['containerd_dir']}/config.toml"


def containerd_check(ctx, executable):
    """containerd reads the file as it would at start (TOML, the schema version's
    migration) and prints the config it would run with; only config.toml, not the
    registries' hosts.toml files."""
    command = f'{executable} --config "$0" config dump >/dev/null'
    return {containerd_config_path(ctx): f"sh -c '{command}'"}


def containerd(ctx):
    path = containerd_config_path(ctx)
    files = {path: (containerd_config(ctx), 0o644), **registry_hosts(ctx)}
    return kubesalt_core.component_context.flags([("config", path)]), files


def kubelet_configuration(ctx):
    """The KubeletConfiguration (kubelet.config.k8s.io/v1beta1) of one worker.

    kubesalt owns the kubelet's certificates: the serving pair comes from kubesalt's PKI
    (SANs: node name and IP) and is renewed by the state run, so the kubelet's own rotation
    (rotateCertificates, serverTLSBootstrap) is off.
    """
    pki = ctx.layout
    kubelet = ctx.config["kubelet"]
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
        "containerRuntimeEndpoint": f"unix://{kubesalt_core.component_context.CONTAINERD_SOCKET}",
        "clusterDNS": [ctx.network["cluster_dns_ip"]],
        "clusterDomain": ctx.config["cluster"]["domain"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": kubesalt_core.ports.KUBELET_HEALTHZ_PORT,
        "failSwapOn": True,
        # Upstream's default (true): a cgroup v1 host is refused unless pillar says
        # kubelet:fail_cgroup_v1: false.
        "failCgroupV1": bool(kubelet["fail_cgroup_v1"]),
        "seccompDefault": bool(kubelet["seccomp_default"]),
        "podPidsLimit": int(kubelet["pod_pids_limit"]),
        "protectKernelDefaults": bool(kubelet["protect_kernel_defaults"]),
        **kubesalt_core.tls_policy.kubelet_settings(ctx.config),
    }


def kubelet_config_path(ctx):
    return f"{ctx.paths['kubelet_dir']}/config.yaml"


def kubelet(ctx):
    path = kubelet_config_path(ctx)
    flags = [
        ("config", path),
        ("kubeconfig", ctx.kubeconfig("kubelet")),
        ("hostname-override", ctx.node_id),
        ("node-ip", ctx.ip),
    ]
    return kubesalt_core.component_context.flags(flags), {
        path: (kubesalt_core.component_context.yaml_text(kubelet_configuration(ctx)), 0o600)
    }


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
        "healthzBindAddress": f"{ctx.ip}:{kubesalt_core.ports.KUBE_PROXY_HEALTHZ_PORT}",
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


def kube_proxy_config_path(ctx):
    return f"{ctx.paths['kube_proxy_dir']}/config.yaml"


def sysctl_path(ctx):
    return f"{ctx.paths['sysctl_dir']}/90-kubesalt.conf"


def kernel_modules(config):
    """The modules kube-proxy's mode needs loaded (nftables and iptables: none beyond what
    the kernel loads on use)."""
    return IPVS_MODULES if kube_proxy_mode(config) == "ipvs" else ()


# A router spreads flows to an address several nodes announce (a service or load balancer
# range) over all of them by addresses and ports; Linux's default hashes addresses only, so
# every flow between two hosts would take one path.
ROUTER_SYSCTLS = {"net.ipv4.fib_multipath_hash_policy": "1"}


def kernel_files(ctx, routing_only=False):
    """The sysctl.d file pod routing needs, and for IPVS the modules-load.d file (not with
    ``routing_only``: a router forwards, spreads flows over equal paths, and runs no
    kube-proxy)."""
    wanted = {**SYSCTLS, **(ROUTER_SYSCTLS if routing_only else {})}
    if not routing_only and ctx.config["kubelet"]["protect_kernel_defaults"]:
        wanted.update(KUBELET_SYSCTLS)
    sysctls = "\n".join(
        ["# Managed by kubesalt: routing for pods and services."]
        + [f"{key} = {value}" for key, value in wanted.items()]
    )
    files = {sysctl_path(ctx): (sysctls + "\n", 0o644)}
    if routing_only:
        return files
    modules = kernel_modules(ctx.config)
    if modules:
        text = "\n".join(["# Managed by kubesalt: IPVS for kube-proxy.", *modules]) + "\n"
        files[f"{ctx.paths['modules_load_dir']}/kubesalt-ipvs.conf"] = (text, 0o644)
    return files


def kube_proxy(ctx):
    path = kube_proxy_config_path(ctx)
    files = {
        path: (kubesalt_core.component_context.yaml_text(kube_proxy_configuration(ctx)), 0o600)
    }
    return kubesalt_core.component_context.flags([("config", path)]), files


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
        "FELIX_HEALTHPORT": str(kubesalt_core.ports.FELIX_HEALTH_PORT),
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


def calico_env_path(ctx):
    return f"{ctx.paths['calico_dir']}/calico-node.env"


def calico_env(ctx):
    return {
        calico_env_path(ctx): (
            kubesalt_core.component_context.env_file(calico_node_environment(ctx)),
            0o600,
        )
    }


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
                # Empty: the plugin logs to stderr only, which containerd puts in the
                # journal. Any other value is a file name to the plugin ("none" was one).
                "log_file_path": "",
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


def calico_node(ctx):
    """calico-node's startup: the node's BGP address and IPAM, then the CNI config."""
    cni = (json.dumps(cni_configuration(ctx), indent=2, sort_keys=True) + "\n", 0o600)
    return ["-startup"], {**calico_env(ctx), cni_config_path(ctx): cni}


def felix(ctx):
    return ["-felix"], calico_env(ctx)


def confd_dir(ctx):
    return f"{ctx.paths['calico_dir']}/confd"


def confd(ctx):
    bird = kubesalt_core.artifact.executable(ctx.config, "bird", "bird")
    birdc = kubesalt_core.artifact.executable(ctx.config, "bird", "birdc")
    templates = kubesalt_core.confd.files(
        confd_dir(ctx), bird, birdc, f"{kubesalt_core.component_context.CALICO_RUN_DIR}/bird.ctl"
    )
    argv = ["-confd", f"-confd-confdir={confd_dir(ctx)}"]
    return argv, {**calico_env(ctx), **templates}


def bird_config_path(ctx):
    return f"{ctx.paths['calico_dir']}/confd/config/bird.cfg"


def bird(ctx):
    argv = [
        "-f",
        "-R",
        "-s",
        f"{kubesalt_core.component_context.CALICO_RUN_DIR}/bird.ctl",
        "-c",
        bird_config_path(ctx),
    ]
    return argv, {}


def calico_bird_service(ctx, _executable):
    """BIRD starts once confd has written its config (a fresh node: within a minute)."""
    wait = (
        f"for i in $(seq 90); do [ -s {bird_config_path(ctx)} ] && exit 0; sleep 1; done; "
        "echo 'no BIRD config from calico-confd' >&2; exit 1"
    )
    return [f"ExecStartPre=/bin/sh -c '{wait}'", "TimeoutStartSec=120"]


def router_bird_config_path(ctx):
    return f"{ctx.paths['bird_dir']}/bird.conf"


def router_bird(ctx):
    path = router_bird_config_path(ctx)
    argv = ["-f", "-s", kubesalt_core.component_context.BIRD_SOCKET, "-c", path]
    return argv, {path: (kubesalt_core.calico.bird_config(ctx.config, ctx.node_id), 0o640)}


def router_bird_check(ctx, executable):
    """BIRD parses the file and exits (``bird -p``)."""
    return {router_bird_config_path(ctx): f"{executable} -p -c"}


def router_bird_service(ctx, executable):
    """Check the config before every start; a reload is `birdc configure`, which keeps the
    running config when the new one does not parse."""
    birdc = kubesalt_core.artifact.executable(ctx.config, "bird", "birdc")
    path = router_bird_config_path(ctx)
    return [
        f"ExecStartPre={executable} -p -c {path}",
        f"ExecReload={birdc} -s {kubesalt_core.component_context.BIRD_SOCKET} configure",
    ]


def apiserver_proxy_config_path(ctx):
    return f"{ctx.paths['kubernetes_dir']}/apiserver-proxy.cfg"


def apiserver_proxy_check(ctx, executable):
    """HAProxy's check mode (``haproxy -c``): the file parses and the certificates it
    names load."""
    return {apiserver_proxy_config_path(ctx): f"{executable} -c -f"}


def apiserver_proxy(ctx):
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


def apiserver_proxy_service(ctx, executable):
    """A reload checks the config first and keeps the running one when it does not load."""
    path = apiserver_proxy_config_path(ctx)
    return [
        f"ExecReload={executable} -Ws -f {path} -c -q",
        "ExecReload=/bin/kill -USR2 $MAINPID",
    ]
