"""A real validating admission webhook in the lab: a TLS server in a pod (upstream's agnhost
``webhook``, from the image the lab makes for the conformance suite), behind a Service, that
the apiservers call for every ConfigMap created in its namespace. The masters run no
kube-proxy: they reach the webhook at its pod address (``apiserver:service_routing:
endpoints``), routed through the router.
"""

import base64
import json

import pytest

from kubesalt_lab import conformance, containers, e2e_images, master, self_signed, workloads

NAMESPACE = "webhook-demo"
SERVICE = "deny-configmaps"
# What agnhost's /configmaps handler refuses (test/images/agnhost/webhook/configmap.go).
DISALLOWED = ("webhook-e2e-test", "webhook-disallow")


def _b64(data):
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def webhook(lab_up, first_apply):
    lab, _ = lab_up
    for node_id, summary in first_apply.items():
        assert (summary["failed"], summary["errors"]) == (0, []), (node_id, summary)
    tools = conformance.build_tools(lab, lambda _m: None, master.lab_pillar(lab).versions())
    conformance.publish_images(lab, tools, lambda _m: None)
    agnhost = e2e_images.manifest(tools.kubernetes_dir)["Agnhost"]
    cert, key = self_signed.pair(f"{SERVICE}.{NAMESPACE}.svc")
    labels = {"app": SERVICE}
    workloads.apply(lab, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    workloads.apply(
        lab,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64(cert), "tls.key": _b64(key)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "webhook",
                                "image": agnhost,
                                "args": [
                                    "webhook",
                                    "--tls-cert-file=/certs/tls.crt",
                                    "--tls-private-key-file=/certs/tls.key",
                                    "--port=8443",
                                ],
                                "ports": [{"containerPort": 8443}],
                                "readinessProbe": {
                                    "httpGet": {"scheme": "HTTPS", "port": 8443, "path": "/readyz"},
                                    "periodSeconds": 1,
                                },
                                "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
                            }
                        ],
                        "volumes": [{"name": "certs", "secret": {"secretName": SERVICE}}],
                        "terminationGracePeriodSeconds": 1,
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 443, "targetPort": 8443}]},
        },
    )
    (server,) = workloads.wait_ready(lab, f"app={SERVICE}", 1, namespace=NAMESPACE)
    workloads.apply(
        lab,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "kubesalt-lab-deny-configmaps"},
            "webhooks": [
                {
                    "name": "deny-configmaps.kubesalt.test",
                    "clientConfig": {
                        "service": {
                            "namespace": NAMESPACE,
                            "name": SERVICE,
                            "path": "/configmaps",
                            "port": 443,
                        },
                        "caBundle": _b64(cert),
                    },
                    "rules": [
                        {
                            "operations": ["CREATE", "UPDATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
                    },
                    # A webhook that cannot be called refuses: an allowed object proves the
                    # apiserver reached it.
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "timeoutSeconds": 5,
                }
            ],
        },
    )
    yield lab, server
    workloads.kubectl(
        lab, "delete", "validatingwebhookconfiguration", "kubesalt-lab-deny-configmaps"
    )
    workloads.kubectl(lab, "delete", "namespace", NAMESPACE, "--wait=false")


def _configmap(name, data):
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "data": data,
        }
    )


def _create(lab, name, data, server=None):
    """``kubectl create`` of a ConfigMap, through ``server`` (an apiserver's URL) or the
    admin kubeconfig's."""
    through = ["--server", server] if server else []
    return workloads.kubectl(
        lab, *through, "create", "-f", "-", stdin=_configmap(name, data), check=False, timeout=30
    )


def test_the_webhook_lets_an_ordinary_object_through(webhook):
    lab, _server = webhook
    # The configuration takes a moment to reach every apiserver's webhook informer.
    created = None
    for attempt in range(20):
        created = _create(lab, f"ordinary-{attempt}", {"colour": "blue"})
        if created.returncode == 0:
            break
    assert created.returncode == 0, created.stderr


def test_the_webhook_refuses_what_it_disallows_with_its_own_reason(webhook):
    lab, _server = webhook
    key, value = DISALLOWED
    refused = _create(lab, "forbidden", {key: value})
    assert refused.returncode != 0
    assert 'admission webhook "deny-configmaps.kubesalt.test" denied the request' in (
        refused.stderr
    ), refused.stderr
    assert "the configmap contains unwanted key and value" in refused.stderr, refused.stderr
    got = workloads.kubectl(lab, "get", "configmap", "-n", NAMESPACE, "forbidden", check=False)
    assert got.returncode != 0


def test_every_apiserver_reaches_the_webhook_though_no_master_reaches_its_cluster_ip(webhook):
    lab, server = webhook
    masters = [n for n in lab.ordered_nodes() if "master" in n.roles]
    cluster_ip = workloads.get(lab, "service", "-n", NAMESPACE, SERVICE)["spec"]["clusterIP"]
    probe = (
        "import socket, sys\n"
        "s = socket.socket(); s.settimeout(2)\n"
        "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
        "except OSError as err:\n    print(type(err).__name__, err)\n"
    )
    for node in masters:
        # No kube-proxy and no route: the Service address is out of a master's reach ...
        said = containers.inside(lab, node, ["python3", "-c", probe, cluster_ip, "443"]).stdout
        assert "connected" not in said, (node.id, said)
        # ... its pod address is routed (through the router) ...
        said = containers.inside(lab, node, ["python3", "-c", probe, server["ip"], "8443"]).stdout
        assert said.strip() == "connected", (node.id, said)
        # ... and that is where this master's apiserver calls the webhook.
        server_url = f"https://{node.ip}:6443"
        refused = _create(lab, f"via-{node.id}", dict([DISALLOWED]), server_url)
        assert "the configmap contains unwanted key and value" in refused.stderr, (
            node.id,
            refused.stderr,
        )
        allowed = _create(lab, f"via-{node.id}", {"colour": "green"}, server_url)
        assert allowed.returncode == 0, (node.id, allowed.stderr)
