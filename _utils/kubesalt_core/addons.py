"""The cluster's add-ons that run as pods, rendered by kubesalt (no upstream manifest):

- **CoreDNS**, the cluster DNS: the Deployment ``coredns`` in ``kube-system`` (as upstream
  names it), its ServiceAccount and RBAC, its Corefile, and the Service ``kube-dns`` at
  ``network:cluster_dns_ip`` (the address every kubelet hands its pods).
- **calico-kube-controllers**: cleans up after deleted nodes (their IPAM blocks and
  affinities) and serves LoadBalancer IPs; its ServiceAccount and RBAC as upstream's
  manifest for the Kubernetes datastore.

Images come from ``kubesalt_core.images`` (pillar ``images:``, else upstream's at the pinned
version). No Salt dunders and no I/O here.
"""

import kubesalt_core.images

NAMESPACE = "kube-system"
LABELS = {"app.kubernetes.io/managed-by": "kubesalt"}
READ = ["get", "list", "watch"]


def rule(groups, resources, verbs):
    """One RBAC policy rule."""
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def _meta(name, namespace=NAMESPACE, **labels):
    meta = {"name": name, "labels": {**LABELS, **labels}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _service_account_rbac(name, role_name, rules):
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(role_name, namespace=None),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(role_name, namespace=None),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role_name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}],
        },
    ]


# --- CoreDNS ------------------------------------------------------------------------------


def _deployment(name, labels, replicas, strategy, pod):
    """A critical add-on's Deployment in kube-system, run by its own ServiceAccount."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, **labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": name,
                    "priorityClassName": "system-cluster-critical",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                    **pod,
                },
            },
        },
    }


DNS_LABELS = {"k8s-app": "kube-dns"}


def _forward(config):
    """Where names outside the cluster go: the node's resolv.conf, the pillar's resolvers,
    or nowhere (``network:dns_upstream: []``; ``loop`` checks upstreams, so it goes too)."""
    upstream = config["network"].get("dns_upstream")
    if upstream == []:
        return []
    target = "/etc/resolv.conf" if upstream is None else " ".join(str(a) for a in upstream)
    return [f"    forward . {target} {{", "        max_concurrent 1000", "    }"]


def corefile(config):
    domain = config["cluster"]["domain"]
    forward = _forward(config)
    return (
        "\n".join(
            [
                ".:53 {",
                "    errors",
                "    health {",
                "        lameduck 5s",
                "    }",
                "    ready",
                f"    kubernetes {domain} in-addr.arpa ip6.arpa {{",
                "        pods insecure",
                "        fallthrough in-addr.arpa ip6.arpa",
                "        ttl 30",
                "    }",
                "    prometheus :9153",
                *forward,
                "    cache 30",
                *(["    loop"] if forward else []),
                "    reload",
                "    loadbalance",
                "}",
            ]
        )
        + "\n"
    )


def coredns(config):
    """CoreDNS's objects, in the order they are applied."""
    rules = [
        rule([""], ["endpoints", "services", "pods", "namespaces"], ["list", "watch"]),
        rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch"]),
    ]
    container = {
        "name": "coredns",
        "image": kubesalt_core.images.image(config, "coredns"),
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}},
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": 8080},
            "initialDelaySeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 5,
        },
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    deployment = _deployment(
        "coredns",
        DNS_LABELS,
        replicas=2,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        pod={
            # The node's resolver, not the cluster's own (that would be itself).
            "dnsPolicy": "Default",
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": dict(DNS_LABELS)},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            },
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
        },
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("kube-dns", **DNS_LABELS, **{"kubernetes.io/name": "CoreDNS"}),
        "spec": {
            "selector": dict(DNS_LABELS),
            "clusterIP": str(config["network"]["cluster_dns_ip"]),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                {"name": "metrics", "port": 9153, "protocol": "TCP"},
            ],
        },
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("coredns"),
        "data": {"Corefile": corefile(config)},
    }
    return [
        *_service_account_rbac("coredns", "system:coredns", rules),
        configmap,
        deployment,
        service,
    ]


# --- calico-kube-controllers --------------------------------------------------------------

_CALICO = "crd.projectcalico.org"
_KUBE_CONTROLLERS_RULES = [
    rule([""], ["nodes", "pods", "namespaces"], READ),
    rule([""], ["services", "services/status"], ["get", "list", "update", "watch"]),
    rule([_CALICO], ["ipreservations"], ["list"]),
    rule(
        [_CALICO],
        ["blockaffinities", "ipamblocks", "ipamhandles", "ipamconfigs", "tiers"],
        ["get", "list", "create", "update", "delete", "watch"],
    ),
    rule([_CALICO], ["ippools"], ["list", "watch"]),
    rule([_CALICO], ["hostendpoints"], ["get", "list", "create", "update", "delete", "watch"]),
    rule(
        [_CALICO],
        ["clusterinformations", "kubecontrollersconfigurations"],
        ["get", "list", "create", "update", "watch"],
    ),
]
KUBE_CONTROLLERS_LABELS = {"k8s-app": "calico-kube-controllers"}


def calico_kube_controllers(config):
    """calico-kube-controllers' objects, in the order they are applied."""
    probe = ["/usr/bin/check-status"]
    container = {
        "name": "calico-kube-controllers",
        "image": kubesalt_core.images.image(config, "calico_kube_controllers"),
        "env": [
            {"name": "ENABLED_CONTROLLERS", "value": "node,loadbalancer"},
            {"name": "DATASTORE_TYPE", "value": "kubernetes"},
        ],
        "livenessProbe": {
            "exec": {"command": [*probe, "-l"]},
            "periodSeconds": 10,
            "initialDelaySeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 10,
        },
        "readinessProbe": {"exec": {"command": [*probe, "-r"]}, "periodSeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 999,
            "capabilities": {"drop": ["ALL"]},
        },
        # Where kube-controllers writes the status check-status reads.
        "volumeMounts": [{"name": "status", "mountPath": "/status"}],
    }
    deployment = _deployment(
        "calico-kube-controllers",
        KUBE_CONTROLLERS_LABELS,
        replicas=1,
        strategy={"type": "Recreate"},
        pod={"containers": [container], "volumes": [{"name": "status", "emptyDir": {}}]},
    )
    return [
        *_service_account_rbac(
            "calico-kube-controllers", "kubesalt:calico-kube-controllers", _KUBE_CONTROLLERS_RULES
        ),
        deployment,
    ]


def objects(config):
    """Every add-on object, in the order they are applied."""
    return [*coredns(config), *calico_kube_controllers(config)]
