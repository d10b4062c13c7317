"""The cluster's ingress controller, rendered by kubesalt itself (no upstream manifest).

Two NGINX-based controllers are selectable with ``ingress:controller``:

``nginx`` (default)
    NGINX's own Ingress Controller (``nginx.org/ingress-controller``), maintained. Its
    custom resources are turned off (``-enable-custom-resources=false``), so plain
    Ingress objects are all it needs; telemetry reporting is off; it writes the Service's
    address into each Ingress's status; ``ingress:default_tls_secret`` (``namespace/name``
    of a ``kubernetes.io/tls`` Secret) is its default server's certificate, else that
    server refuses TLS handshakes for unknown names.
``ingress-nginx``
    The Kubernetes project's ingress-nginx (``k8s.io/ingress-nginx``). Upstream retired it
    (no fixes since March 2026); it stays selectable for clusters that depend on its
    annotations, at the operator's own risk.

Both run as a DaemonSet on the workers behind a Service: of type LoadBalancer when
``network:load_balancer_cidr`` gives addresses (``ingress:address`` picks one of them, else
Calico's IPAM does; ``externalTrafficPolicy: Local``, so the workers announce it and the
routers send only where a controller answers), else NodePort; its node ports are
``ingress:http_node_port`` and ``ingress:https_node_port``. Each has its own
ServiceAccount and RBAC, an IngressClass (``ingress:class_name``, the cluster default) and
a ConfigMap whose data is ``ingress:config`` (the controller's own keys, e.g.
``main-snippets``). The image is ``ingress:image`` when given, else the controller's image
at the pinned version (``versions:nginx_ingress`` / ``versions:ingress_nginx``).

The controller runs as user 101 with every capability dropped: the pod's
``net.ipv4.ip_unprivileged_port_start`` sysctl (a safe, namespaced one) lets it bind
ports 80 and 443, so no file capability in the image is needed.
"""

import kubesalt_core.calico
import kubesalt_core.pillar

CONTROLLERS = ("nginx", "ingress-nginx")
_LABELS = {"app.kubernetes.io/managed-by": "kubesalt", "app.kubernetes.io/name": "ingress"}

_SPECS = {
    "nginx": {
        "controller": "nginx.org/ingress-controller",
        "version_key": "nginx_ingress",
        "image": "nginx/nginx-ingress:{version}",
        "args": lambda s: [
            f"-nginx-configmaps=$(POD_NAMESPACE)/{s['configmap']}",
            f"-ingress-class={s['class_name']}",
            "-enable-custom-resources=false",
            "-enable-telemetry-reporting=false",
            # nginx -t before every reload; a config nginx rejects is rolled back.
            "-enable-config-safety",
            "-report-ingress-status",
            f"-external-service={s['name']}",
            f"-leader-election-lock-name={s['name']}-leader",
            "-health-status",
            "-ready-status",
            *(
                [f"-default-server-tls-secret={s['default_tls_secret']}"]
                if s["default_tls_secret"]
                else []
            ),
        ],
        "ready_path": "/nginx-ready",
        "ready_port": 8081,
    },
    "ingress-nginx": {
        "controller": "k8s.io/ingress-nginx",
        "version_key": "ingress_nginx",
        "image": "ingress-nginx/controller:v{version}",
        "args": lambda s: [
            "/nginx-ingress-controller",
            f"--configmap=$(POD_NAMESPACE)/{s['configmap']}",
            f"--ingress-class={s['class_name']}",
            "--controller-class=k8s.io/ingress-nginx",
            f"--election-id={s['name']}-leader",
            f"--publish-service=$(POD_NAMESPACE)/{s['name']}",
            *(
                [f"--default-ssl-certificate={s['default_tls_secret']}"]
                if s["default_tls_secret"]
                else []
            ),
        ],
        "ready_path": "/healthz",
        "ready_port": 10254,
    },
}


def settings(config):
    """The ingress settings with their defaults filled in."""
    given = config.get("ingress") or {}
    controller = given.get("controller") or "nginx"
    spec = _SPECS[controller]
    version = str(config["versions"][spec["version_key"]]).lstrip("v")
    return {
        "controller": controller,
        "name": "kubesalt-ingress",
        "namespace": given.get("namespace") or "kubesalt-ingress",
        "class_name": given.get("class_name") or "nginx",
        "configmap": "kubesalt-ingress",
        "image": given.get("image") or spec["image"].format(version=version),
        "http_node_port": int(given.get("http_node_port") or 30080),
        "https_node_port": int(given.get("https_node_port") or 30443),
        "address": str(given["address"]) if given.get("address") else None,
        "load_balancer": bool(kubesalt_core.calico.load_balancer_cidr(config)),
        "config": {str(k): str(v) for k, v in (given.get("config") or {}).items()},
        "default_tls_secret": given.get("default_tls_secret") or None,
    }


DEFAULT_TLS_SECRET_KEY = "ingress:default_tls_secret"


def referenced_secrets(config):
    """The Secrets the ingress needs to exist before it is applied:
    ``[(pillar key, namespace, name)]``."""
    chosen = settings(config)["default_tls_secret"]
    if not chosen:
        return []
    namespace, _, name = chosen.partition("/")
    return [(DEFAULT_TLS_SECRET_KEY, namespace, name)]


TLS_SECRET_TYPE = "kubernetes.io/tls"


def secret_problems(secret, key, namespace, name):
    """What is wrong with the Secret ``secret`` (its JSON as the apiserver gives it; None
    when it does not exist) that pillar ``key`` names: ``[]`` when it is a TLS Secret with
    a certificate and a key."""
    where = f"{kubesalt_core.pillar.PILLAR_KEY}:{key}"
    if secret is None:
        return [
            f"{where}: Secret {namespace}/{name} does not exist; expected a {TLS_SECRET_TYPE} "
            f"Secret (kubectl create secret tls {name} -n {namespace} --cert=... --key=...), "
            "or no value"
        ]
    data = secret.get("data") or {}
    if secret.get("type") != TLS_SECRET_TYPE or not data.get("tls.crt") or not data.get("tls.key"):
        return [
            f"{where}: Secret {namespace}/{name} is of type {secret.get('type')!r}; expected "
            f"a {TLS_SECRET_TYPE} Secret with tls.crt and tls.key"
        ]
    return []


def _meta(s, name=None, namespaced=True):
    meta = {"name": name or s["name"], "labels": dict(_LABELS)}
    if namespaced:
        meta["namespace"] = s["namespace"]
    return meta


def _rules(controller):
    def rule(groups, resources, verbs):
        return {"apiGroups": groups, "resources": resources, "verbs": verbs}

    read = ["get", "list", "watch"]
    rules = [
        rule([""], ["services", "endpoints", "pods", "secrets", "configmaps", "namespaces"], read),
        rule([""], ["nodes"], ["list", "watch", "get"]),
        rule([""], ["events"], ["create", "patch", "list"]),
        rule(["discovery.k8s.io"], ["endpointslices"], read),
        rule(["networking.k8s.io"], ["ingresses", "ingressclasses"], read),
        rule(["networking.k8s.io"], ["ingresses/status"], ["update"]),
        rule(["coordination.k8s.io"], ["leases"], ["get", "list", "watch", "create", "update"]),
    ]
    if controller == "nginx":
        # It labels its own pod with nginx's version and looks up its owner (upstream's RBAC).
        rules += [
            rule([""], ["pods"], ["update"]),
            rule(["apps"], ["replicasets", "daemonsets", "statefulsets"], ["get"]),
        ]
    return rules


def _field_env(name, path):
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def objects(config):
    """Every object of the ingress controller, in the order they are applied."""
    s = settings(config)
    spec = _SPECS[s["controller"]]
    selector = {"app.kubernetes.io/name": "ingress", "app.kubernetes.io/instance": s["name"]}
    container = {
        "name": "controller",
        "image": s["image"],
        "args": spec["args"](s),
        "env": [
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [
            {"name": "http", "containerPort": 80, "protocol": "TCP"},
            {"name": "https", "containerPort": 443, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": spec["ready_path"], "port": spec["ready_port"]},
            "periodSeconds": 5,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsUser": 101,
            "runAsNonRoot": True,
        },
    }
    pod_security = {
        "seccompProfile": {"type": "RuntimeDefault"},
        # Ports 80 and 443 without CAP_NET_BIND_SERVICE (a namespaced, safe sysctl).
        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(s, s["namespace"], False)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(s)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(s, f"kubesalt:{s['name']}", False),
            "rules": _rules(s["controller"]),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(s, f"kubesalt:{s['name']}", False),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"kubesalt:{s['name']}",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": s["name"], "namespace": s["namespace"]}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(s, s["configmap"]),
            "data": dict(s["config"]),
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                **_meta(s, s["class_name"], False),
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": spec["controller"]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta(s),
            "spec": {
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": {**_LABELS, **selector}},
                    "spec": {
                        "serviceAccountName": s["name"],
                        "securityContext": pod_security,
                        "containers": [container],
                        "terminationGracePeriodSeconds": 30,
                    },
                },
            },
        },
        _service(s, selector),
    ]


# Calico's kube-controllers gives a LoadBalancer Service the address this annotation names.
CALICO_ADDRESS_ANNOTATION = "projectcalico.org/loadBalancerIPs"


def _service(s, selector):
    meta = _meta(s)
    spec = {"type": "NodePort"}
    if s["load_balancer"]:
        spec = {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
        if s["address"]:
            meta["annotations"] = {CALICO_ADDRESS_ANNOTATION: f'["{s["address"]}"]'}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            **spec,
            "selector": selector,
            "ports": [
                {
                    "name": "http",
                    "port": 80,
                    "targetPort": "http",
                    "nodePort": s["http_node_port"],
                },
                {
                    "name": "https",
                    "port": 443,
                    "targetPort": "https",
                    "nodePort": s["https_node_port"],
                },
            ],
        },
    }
