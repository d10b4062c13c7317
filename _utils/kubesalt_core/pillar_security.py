"""The pillar schema of the cluster's security settings: the apiservers' admission and
encryption at rest (``apiserver``), the TLS policy of every Go server (``tls``) and the
kubelets' (``kubelet``). :mod:`kubesalt_core.pillar_schema` merges :data:`SCHEMA` into its
own.

No Salt dunders and no I/O here.
"""

import kubesalt_core.admission
import kubesalt_core.encryption
import kubesalt_core.pillar
import kubesalt_core.tls_policy
from kubesalt_core import pillar_checks as check

SCHEMA = {
    "apiserver": check.mapping(
        {
            "service_routing": check.choice(kubesalt_core.pillar.APISERVER_SERVICE_ROUTING),
            "encryption": check.mapping({"provider": kubesalt_core.encryption.provider}),
            "admission": check.mapping(
                {
                    "plugins": kubesalt_core.admission.plugins,
                    "pod_security": check.mapping(kubesalt_core.admission.POD_SECURITY_FIELDS),
                }
            ),
        }
    ),
    "tls": check.mapping(
        {
            "min_version": kubesalt_core.tls_policy.min_version,
            "cipher_suites": kubesalt_core.tls_policy.cipher_suites,
        }
    ),
    "kubelet": check.mapping(
        {
            "fail_cgroup_v1": check.boolean,
            "seccomp_default": check.boolean,
            "pod_pids_limit": check.int_range(-1, 1 << 22, "a number of processes (-1: none)"),
            "protect_kernel_defaults": check.boolean,
        }
    ),
}
