"""Every component kubesalt runs as a systemd unit: one record each (:class:`Component`).

A record says which role runs the component, which artifact and binary it runs, the SLS
that (re)applies it, its ordering, ports, certificates and hardening, and, as functions of
the cluster config and the node (values known only at run time, like kubeadm's certlist):
its ``ExecStart`` argv and config files (:mod:`kubesalt_core.control_plane_config`,
:mod:`kubesalt_core.node_config`), its environment files, extra service lines and its
health probe (:mod:`kubesalt_core.probes`). The units each role manages
(:func:`managed_units`, which the journal beacon and the healer trust), the units each
binary restarts (:func:`units_of_binary`) and the state a repair re-applies
(:func:`state_of`) are derived from :data:`COMPONENTS`; :mod:`kubesalt_core.unit` renders
the unit files.

No Salt dunders and no I/O here.
"""

from dataclasses import dataclass

import kubesalt_core.apiserver_proxy
import kubesalt_core.artifact
import kubesalt_core.component_context
import kubesalt_core.pki
import kubesalt_core.ports
from kubesalt_core import control_plane_config, node_config, probes

# Hardening that every component here tolerates: none of them needs /home, a shared /tmp,
# new privileges through setuid, or a personality change.
BASE_HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
)


# For the control plane and Typha: they only read their config and talk over the network.
SERVER_HARDENING = (
    *BASE_HARDENING,
    "ProtectSystem=strict",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
)


def no_extras(_ctx):
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
    command: object = no_extras  # ctx -> (argv after the binary, {path: (text, mode)})
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
    hardening: tuple = BASE_HARDENING
    read_write: tuple = ()  # paths: keys it writes under ProtectSystem=strict
    directories: object = None  # ctx -> further directories it writes in, made for it
    service_extra: tuple = ()
    # A changed config reloads the unit (ExecReload) instead of restarting it.
    reload: bool = False
    # Not on a node that also has one of these roles.
    not_with: tuple = ()
    # config -> False: the site turned the component off (its unit is removed).
    wanted: object = None
    # The component's own check of its config files: (ctx, executable) -> {path: command},
    # the file's path appended to the command (file.managed's check_cmd). A file it rejects
    # never replaces the running one.
    config_check: object = None
    # It reads the encryption config kubesalt_encryption writes: that state comes first
    # (the apiserver then reloads the file by itself when it changes).
    encryption_config: bool = False

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
        command=control_plane_config.etcd,
        environment_files=control_plane_config.etcd_environment_files,
        service_lines=control_plane_config.etcd_service,
        health=probes.etcd_probe,
        # etcd's own formula: membership (found, join as a learner, promote) with the unit.
        state="kubesalt.etcd",
        ports=("2379/tcp clients (mutual TLS)", "2380/tcp peers (mutual TLS)"),
        certs=("etcd-server", "etcd-peer"),
        # etcd notifies systemd once it has joined a cluster with a leader; a founder waits
        # for a majority of founders before it reports ready.
        unit_type="notify",
        hardening=SERVER_HARDENING,
        service_extra=("NotifyAccess=main", "TimeoutStartSec=300", "LimitNOFILE=65536"),
    ),
    Component(
        "kube-apiserver",
        "master",
        "kubernetes",
        "kube-apiserver",
        "Kubernetes API server",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/",
        command=control_plane_config.apiserver,
        encryption_config=True,
        health=probes.apiserver_probe,
        after=("network-online.target", "etcd.service"),
        wants=("network-online.target", "etcd.service"),
        ports=("6443/tcp API (TLS)",),
        certs=(
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "front-proxy-client",
        ),
        hardening=SERVER_HARDENING,
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
        command=control_plane_config.scheduler,
        health=probes.local_tls_probe(10259, "readyz"),
        after=("network-online.target", "kube-apiserver.service"),
        ports=("10259/tcp health and metrics (TLS, 127.0.0.1)",),
        certs=("kube-scheduler",),
        kubeconfig="scheduler",
        hardening=SERVER_HARDENING,
    ),
    Component(
        "kube-controller-manager",
        "master",
        "kubernetes",
        "kube-controller-manager",
        "Kubernetes controller manager",
        "https://kubernetes.io/docs/reference/command-line-tools-reference/"
        "kube-controller-manager/",
        command=control_plane_config.controller_manager,
        health=probes.local_tls_probe(10257),
        after=("network-online.target", "kube-apiserver.service"),
        ports=("10257/tcp health and metrics (TLS, 127.0.0.1)",),
        certs=("kube-controller-manager",),
        kubeconfig="controller-manager",
        hardening=SERVER_HARDENING,
    ),
    Component(
        "calico-typha",
        "master",
        "calico_typha",
        "calico-typha",
        "Calico Typha, the datastore fan-out for felix",
        "https://docs.tigera.io/calico/latest/reference/typha/configuration",
        command=control_plane_config.typha,
        environment_files=lambda ctx: (control_plane_config.typha_env_path(ctx),),
        health=probes.typha_probe,
        after=("network-online.target", "kube-apiserver.service"),
        ports=(
            f"{kubesalt_core.ports.TYPHA_PORT}/tcp felix connections (mutual TLS)",
            f"{kubesalt_core.ports.TYPHA_HEALTH_PORT}/tcp health (127.0.0.1)",
        ),
        certs=("calico-typha", "calico-typha-client"),
        kubeconfig="calico-typha",
        hardening=SERVER_HARDENING,
    ),
    Component(
        "kube-apiserver-proxy",
        "worker",
        "haproxy",
        "haproxy",
        "Node-local apiserver proxy (HAProxy): every master's apiserver on the loopback",
        "https://docs.haproxy.org/2.6/configuration.html",
        command=node_config.apiserver_proxy,
        service_lines=node_config.apiserver_proxy_service,
        health=probes.apiserver_proxy_probe,
        ports=("6443/tcp apiserver proxy (127.0.0.1; apiserver_proxy:port)",),
        certs=("apiserver-proxy",),
        unit_type="notify",
        hardening=SERVER_HARDENING,
        # The old workers of a reload belong to the unit too (they finish their connections).
        service_extra=("KillMode=mixed",),
        reload=True,
        not_with=("master",),
        wanted=kubesalt_core.apiserver_proxy.wanted,
        config_check=node_config.apiserver_proxy_check,
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
        command=node_config.containerd,
        after=("network.target", "local-fs.target"),
        wants=(),
        ports=(f"unix {kubesalt_core.component_context.CONTAINERD_SOCKET} CRI",),
        unit_type="notify",
        # The runtime starts every pod's processes: no sandboxing of its own. Delegate lets
        # it manage the cgroups of its shims (SystemdCgroup); KillMode=process keeps the
        # containers running when containerd itself restarts.
        hardening=(),
        config_check=node_config.containerd_check,
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
        command=node_config.kubelet,
        health=probes.kubelet_probe,
        after=("network-online.target", "containerd.service"),
        wants=("network-online.target", "containerd.service"),
        ports=(
            "10250/tcp kubelet API (TLS, webhook authn/authz)",
            f"{kubesalt_core.ports.KUBELET_HEALTHZ_PORT}/tcp health (127.0.0.1)",
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
        command=node_config.kube_proxy,
        health=probes.kube_proxy_probe,
        ports=(
            f"{kubesalt_core.ports.KUBE_PROXY_HEALTHZ_PORT}/tcp health",
            "10249/tcp metrics (127.0.0.1)",
        ),
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
        command=node_config.calico_node,
        environment_files=lambda ctx: (node_config.calico_env_path(ctx),),
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
        command=node_config.felix,
        environment_files=lambda ctx: (node_config.calico_env_path(ctx),),
        health=probes.felix_probe,
        after=("network-online.target", "calico-node.service"),
        wants=("network-online.target", "calico-node.service"),
        ports=(f"{kubesalt_core.ports.FELIX_HEALTH_PORT}/tcp health (127.0.0.1)",),
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
        command=node_config.confd,
        environment_files=lambda ctx: (node_config.calico_env_path(ctx),),
        directories=lambda ctx: (f"{node_config.confd_dir(ctx)}/config",),
        after=("network-online.target", "calico-node.service"),
        wants=("network-online.target", "calico-node.service"),
        certs=("calico-felix",),
        kubeconfig="calico-node",
        read_write=("calico_dir",),
        hardening=(*BASE_HARDENING, "ProtectSystem=strict"),
        # BIRD's socket dir (made by calico-bird), if it is there yet.
        service_extra=(f"ReadWritePaths=-{kubesalt_core.component_context.CALICO_RUN_DIR}",),
    ),
    Component(
        "calico-bird",
        "worker",
        "bird",
        "bird",
        "BIRD for Calico (configured by calico-confd)",
        "https://bird.network.cz/",
        command=node_config.bird,
        service_lines=node_config.calico_bird_service,
        # BIRD itself, and confd to configure it.
        needs=("bird", "calico_node"),
        after=("network-online.target", "calico-confd.service"),
        ports=("179/tcp BGP",),
        hardening=(*BASE_HARDENING, "ProtectSystem=strict"),
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
        command=node_config.router_bird,
        service_lines=node_config.router_bird_service,
        ports=("179/tcp BGP",),
        hardening=(*BASE_HARDENING, "ProtectSystem=strict"),
        service_extra=("RuntimeDirectory=bird",),
        reload=True,
        config_check=node_config.router_bird_check,
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
    return component.health(
        kubesalt_core.component_context.Context(
            config, node_id, kubesalt_core.pki.Layout.of(config)
        )
    )


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
