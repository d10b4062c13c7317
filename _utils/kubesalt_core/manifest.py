"""The cluster objects kubesalt applies itself, as data built from the cluster config.

- ``kubesalt:apiserver-kubelet-api-admin``: the apiserver's kubelet-client identity
  (``kube-apiserver-kubelet-client``, from the PKI catalogue) gets
  ``system:kubelet-api-admin``, so it can read pod logs and exec through the kubelets.
- ``kubesalt:kube-proxy``: ``system:kube-proxy`` gets ``system:node-proxier``.
- kubelets need no binding: their client certs say ``system:node:<id>`` in group
  ``system:nodes``, which the Node authorizer (``--authorization-mode=Node,RBAC``) and the
  NodeRestriction admission plugin cover, including the TokenReviews and
  SubjectAccessReviews of their webhook authentication and authorization.
- Calico: ``calico-typha`` (Typha's identity) reads the datastore; ``calico-felix``
  (calico-node's identity: startup, felix, confd) reads it and writes its node's status,
  IPAM blocks and affinities; ``calico-cni`` (the CNI plugin) assigns pods' addresses.
- the ``calico-typha`` Service in ``kube-system`` with an EndpointSlice of every master's
  Typha: felix finds Typha through it (``FELIX_TYPHAK8SSERVICENAME``).

- the add-ons (``kubesalt_core.addons``): CoreDNS and calico-kube-controllers.
- the ingress controller (``kubesalt_core.ingress``): namespace, RBAC, IngressClass, DaemonSet
  and NodePort Service.

Calico's own CRDs are not here: they are a pinned artifact (``artifacts:calico_crds``).
"""

import kubesalt_core.addons
import kubesalt_core.ingress
import kubesalt_core.pillar
from kubesalt_core.ports import TYPHA_PORT

FIELD_MANAGER = "kubesalt"
_LABELS = kubesalt_core.addons.LABELS
_READ = kubesalt_core.addons.READ
_rule = kubesalt_core.addons.rule


def _binding(name, role, user):
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def _role(name, rules):
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": dict(_LABELS)},
        "rules": rules,
    }


_CALICO_GROUP = "crd.projectcalico.org"
# Kubernetes' admin network policies: Calico's CRD bundle ships them and felix's syncer
# (served by Typha) watches them.
_ANP_RULE = _rule(
    ["policy.networking.k8s.io"], ["adminnetworkpolicies", "baselineadminnetworkpolicies"], _READ
)
_CALICO_TYPHA_RULES = [
    _rule(
        [""],
        ["pods", "namespaces", "serviceaccounts", "endpoints", "services", "nodes"],
        _READ,
    ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _ANP_RULE,
    _rule([_CALICO_GROUP], ["*"], _READ),
    # At start Typha initialises the datastore: the ClusterInformation felix waits for
    # (its cluster GUID, the datastore's readiness) and the default tiers.
    _rule([_CALICO_GROUP], ["clusterinformations"], ["create", "update"]),
    _rule([_CALICO_GROUP], ["tiers"], ["create"]),
]
# The Calico CNI plugin's own identity (calico-cni): a pod's address from IPAM, its
# status patched with it.
_CALICO_CNI_RULES = [
    _rule([""], ["pods", "nodes", "namespaces"], ["get"]),
    _rule([""], ["pods/status"], ["patch"]),
    _rule(
        [_CALICO_GROUP],
        [
            "blockaffinities",
            "ipamblocks",
            "ipamhandles",
            "clusterinformations",
            "ippools",
            "ipreservations",
            "ipamconfigs",
        ],
        ["get", "list", "create", "update", "delete"],
    ),
]
_CALICO_NODE_RULES = [
    _rule([""], ["nodes"], [*_READ, "patch"]),
    # calico-node's startup writes its node's BGP address and network (update), felix the
    # node's and its pods' conditions (patch).
    _rule([""], ["nodes/status"], ["patch", "update"]),
    _rule([""], ["pods/status"], ["patch"]),
    _rule([""], ["pods", "namespaces", "serviceaccounts", "endpoints", "services"], _READ),
    _rule([""], ["configmaps"], ["get"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _ANP_RULE,
    _rule([_CALICO_GROUP], ["*"], _READ),
    _rule([_CALICO_GROUP], ["tiers"], ["create"]),
    _rule(
        [_CALICO_GROUP],
        ["ippools", "felixconfigurations", "clusterinformations", "caliconodestatuses"],
        ["create", "update"],
    ),
    _rule(
        [_CALICO_GROUP],
        ["blockaffinities", "ipamblocks", "ipamhandles"],
        ["create", "update", "delete"],
    ),
]


def typha_service(config):
    """The selector-less Service and the EndpointSlice of every master's Typha (felix finds
    Typha through the slices of the Service it names)."""
    masters = kubesalt_core.pillar.masters(config)
    port = {"name": "calico-typha", "port": TYPHA_PORT, "protocol": "TCP"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "calico-typha", "namespace": "kube-system", "labels": dict(_LABELS)},
        "spec": {"ports": [{**port, "targetPort": TYPHA_PORT}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "calico-typha-kubesalt",
            "namespace": "kube-system",
            "labels": {
                **_LABELS,
                "kubernetes.io/service-name": "calico-typha",
                # Not the EndpointSlice controller's: it leaves this slice alone.
                "endpointslice.kubernetes.io/managed-by": "kubesalt",
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "nodeName": name, "conditions": {"ready": True}}
            for name, ip in masters
        ],
        "ports": [port],
    }
    return [service, endpoints]


def cluster_objects(config):
    """Every object kubesalt renders for the cluster, in the order they are applied."""
    return [
        _binding(
            "kubesalt:apiserver-kubelet-api-admin",
            "system:kubelet-api-admin",
            "kube-apiserver-kubelet-client",
        ),
        _binding("kubesalt:kube-proxy", "system:node-proxier", "system:kube-proxy"),
        _role("kubesalt:calico-typha", _CALICO_TYPHA_RULES),
        _binding("kubesalt:calico-typha", "kubesalt:calico-typha", "calico-typha"),
        _role("kubesalt:calico-node", _CALICO_NODE_RULES),
        _binding("kubesalt:calico-node", "kubesalt:calico-node", "calico-felix"),
        _role("kubesalt:calico-cni", _CALICO_CNI_RULES),
        _binding("kubesalt:calico-cni", "kubesalt:calico-cni", "calico-cni"),
        *typha_service(config),
        *kubesalt_core.addons.objects(config),
        *kubesalt_core.ingress.objects(config),
    ]


def describe(obj):
    """``Kind/namespace/name`` of an object, for comments and changes."""
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta.get('name')}"


def applying_master(config):
    """The one master that applies cluster objects: the first by minion id."""
    masters = kubesalt_core.pillar.masters(config)
    return masters[0][0] if masters else None
