"""The bad-pillar cases of the security settings (``apiserver:admission``,
``apiserver:encryption``, ``tls``, ``kubelet``), part of :data:`bad_pillars.CASES`."""

import kubesalt_core.tls_policy
from tests.support.bad_pillar_case import BadPillar
from tests.support.bad_pillar_case import set_key as _set

SECURITY_CASES = [
    BadPillar(
        "pod-security-level-unknown",
        _set("apiserver:admission:pod_security:enforce", "strict"),
        "kubesalt:apiserver:admission:pod_security:enforce: 'strict' is not one of: "
        "privileged, baseline, restricted",
    ),
    BadPillar(
        "admission-plugin-unknown",
        _set("apiserver:admission:plugins:PodSecurityPolicy", True),
        "kubesalt:apiserver:admission:plugins:PodSecurityPolicy: unknown key; expected one of: "
        "AlwaysPullImages, DenyServiceExternalIPs, EventRateLimit, NodeRestriction, PodSecurity "
        "(did you mean 'PodSecurity'?)",
    ),
    BadPillar(
        "cipher-suite-unknown-to-go",
        _set("tls:cipher_suites", ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128"]),
        "kubesalt:tls:cipher_suites:1: 'ECDHE-RSA-AES128' is not a cipher suite Go's crypto/tls "
        "knows; valid: " + ", ".join(kubesalt_core.tls_policy.GO_TLS12_SUITES),
    ),
    BadPillar(
        "cipher-suite-insecure",
        _set("tls:cipher_suites", ["TLS_RSA_WITH_AES_128_CBC_SHA"]),
        "kubesalt:tls:cipher_suites:0: 'TLS_RSA_WITH_AES_128_CBC_SHA' is one of Go's insecure "
        "cipher suites (crypto/tls InsecureCipherSuites); valid: "
        + ", ".join(kubesalt_core.tls_policy.GO_TLS12_SUITES),
    ),
    BadPillar(
        "tls-min-version-unknown",
        _set("tls:min_version", "TLS1.2"),
        "kubesalt:tls:min_version: 'TLS1.2' is not one of: VersionTLS12, VersionTLS13",
    ),
    BadPillar(
        "encryption-provider-unsupported",
        _set("apiserver:encryption:provider", "aesgcm"),
        "kubesalt:apiserver:encryption:provider: 'aesgcm' is not one of: aescbc, secretbox, "
        "identity (kubesalt does not support it)",
    ),
    BadPillar(
        "pod-pids-limit-not-a-number",
        _set("kubelet:pod_pids_limit", "4096"),
        "kubesalt:kubelet:pod_pids_limit: '4096' is not a number of processes (-1: none), a "
        "whole number from -1 to 4194304",
    ),
]
