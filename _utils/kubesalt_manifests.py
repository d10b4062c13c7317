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
  (calico-node's identity: felix, confd, the CNI plugin's IPAM) reads it and writes its
  node's status, IPAM blocks and affinities.
- the ``calico-typha`` Service in ``kube-system`` with Endpoints for every master's Typha:
  felix finds Typha through it (``FELIX_TYPHAK8SSERVICENAME``).

- the ingress controller (``kubesalt_ingress``): namespace, RBAC, IngressClass, DaemonSet
  and NodePort Service.

Calico's own CRDs are not here: they are a pinned artifact (``artifacts:calico_crds``).
"""

try:  # synced from file_roots: the synced _utils directory is on sys.path
    import kubesalt_ingress
    import kubesalt_pillar
    from kubesalt_units import TYPHA_PORT
except ImportError:  # installed with pip
    from kubesalt_ext.utils import kubesalt_ingress, kubesalt_pillar
    from kubesalt_ext.utils.kubesalt_units import TYPHA_PORT

FIELD_MANAGER = "kubesalt"
_LABELS = {"app.kubernetes.io/managed-by": "kubesalt"}
_READ = ["get", "list", "watch"]


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


def _rule(groups, resources, verbs):
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


_CALICO_GROUP = "crd.projectcalico.org"
_CALICO_TYPHA_RULES = [
    _rule(
        [""],
        ["pods", "namespaces", "serviceaccounts", "endpoints", "services", "nodes"],
        _READ,
    ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _rule([_CALICO_GROUP], ["*"], _READ),
]
_CALICO_NODE_RULES = [
    _rule([""], ["nodes"], [*_READ, "patch"]),
    _rule([""], ["nodes/status", "pods/status"], ["patch"]),
    _rule([""], ["pods", "namespaces", "serviceaccounts", "endpoints", "services"], _READ),
    _rule([""], ["configmaps"], ["get"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["networking.k8s.io"], ["networkpolicies"], _READ),
    _rule([_CALICO_GROUP], ["*"], _READ),
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
    """The selector-less Service and the Endpoints of every master's Typha."""
    masters = kubesalt_pillar.masters(config)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "calico-typha", "namespace": "kube-system", "labels": dict(_LABELS)},
        "spec": {
            "ports": [
                {
                    "name": "calico-typha",
                    "port": TYPHA_PORT,
                    "protocol": "TCP",
                    "targetPort": TYPHA_PORT,
                }
            ]
        },
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "calico-typha", "namespace": "kube-system", "labels": dict(_LABELS)},
        "subsets": [
            {
                "addresses": [{"ip": ip, "nodeName": name} for name, ip in masters],
                "ports": [{"name": "calico-typha", "port": TYPHA_PORT, "protocol": "TCP"}],
            }
        ],
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
        *typha_service(config),
        *kubesalt_ingress.objects(config),
    ]


def describe(obj):
    """``Kind/namespace/name`` of an object, for comments and changes."""
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta.get('name')}"


def applying_master(config):
    """The one master that applies cluster objects: the first by minion id."""
    masters = kubesalt_pillar.masters(config)
    return masters[0][0] if masters else None
