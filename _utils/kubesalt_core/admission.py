"""The apiservers' admission: the plugins pillar switches on and off
(``apiserver:admission:plugins``), Pod Security's cluster-wide levels
(``apiserver:admission:pod_security``) and EventRateLimit's limits, written as one
AdmissionConfiguration file.

No Salt dunders and no I/O here.
"""

import kubesalt_core.pillar_checks as check

# The plugins kubesalt has a switch for. Kubernetes turns the ones marked True on by
# itself: switched off, they go to --disable-admission-plugins.
PLUGINS = {
    "NodeRestriction": False,
    "PodSecurity": True,
    "EventRateLimit": False,
    "DenyServiceExternalIPs": False,
    "AlwaysPullImages": False,
}

LEVELS = ("privileged", "baseline", "restricted")

MODES = ("enforce", "audit", "warn")

# Events beyond these are refused with 429: the whole apiserver, and each namespace.
EVENT_LIMITS = (
    {"type": "Server", "qps": 5000, "burst": 20000},
    {"type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000},
)


def plugins(value, key):
    """``{plugin: true|false}`` for the plugins of :data:`PLUGINS`."""
    if not isinstance(value, dict):
        return None, [
            check.Problem(key, f"expected a mapping of plugin to true/false, got {value!r}")
        ]
    problems = []
    for name, on in value.items():
        if name not in PLUGINS:
            problems.append(check.unknown_key(key, name, PLUGINS))
        elif not isinstance(on, bool):
            problems.append(check.Problem(f"{key}:{name}", f"{on!r} is not true or false"))
    return value, problems


def namespaces(value, key):
    if value is None:
        return [], []
    if not isinstance(value, list) or not all(check.dns_label(v, key)[0] for v in value):
        return None, [check.Problem(key, f"expected a list of namespace names, got {value!r}")]
    return value, []


POD_SECURITY_FIELDS = {
    **dict.fromkeys(MODES, check.choice(LEVELS)),
    "exempt_namespaces": namespaces,
}


def enabled(config):
    return sorted(n for n, on in config["apiserver"]["admission"]["plugins"].items() if on)


def disabled(config):
    """The plugins Kubernetes turns on by itself that pillar turns off."""
    switches = config["apiserver"]["admission"]["plugins"]
    return sorted(n for n, on in switches.items() if not on and PLUGINS[n])


def pod_security_configuration(pod_security):
    defaults = {}
    for mode in MODES:
        defaults[mode] = pod_security[mode]
        defaults[f"{mode}-version"] = "latest"
    return {
        "apiVersion": "pod-security.admission.config.k8s.io/v1",
        "kind": "PodSecurityConfiguration",
        "defaults": defaults,
        "exemptions": {
            "usernames": [],
            "runtimeClasses": [],
            "namespaces": sorted(pod_security.get("exempt_namespaces") or []),
        },
    }


def configuration(config):
    """The AdmissionConfiguration (apiserver.config.k8s.io/v1) of the plugins that take
    one, or None when none of them is on."""
    admission = config["apiserver"]["admission"]
    on_by_default = {n for n, default in PLUGINS.items() if default}
    on = (set(enabled(config)) | on_by_default) - set(disabled(config))
    entries = []
    if "PodSecurity" in on:
        entries.append(
            {
                "name": "PodSecurity",
                "configuration": pod_security_configuration(admission["pod_security"]),
            }
        )
    if "EventRateLimit" in on:
        entries.append(
            {
                "name": "EventRateLimit",
                "configuration": {
                    "apiVersion": "eventratelimit.admission.k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "limits": [dict(limit) for limit in EVENT_LIMITS],
                },
            }
        )
    if not entries:
        return None
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": entries,
    }
