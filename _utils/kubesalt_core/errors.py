"""The exceptions of kubesalt's shared code, under one base class.

The loader modules catch :class:`KubesaltError` at their edge and turn it into Salt's own
exceptions (``CommandExecutionError``, ``SaltInvocationError``) there, once; the shared code
never imports Salt.
"""

import kubesalt_core.etcd


class KubesaltError(Exception):
    """Base of every error kubesalt_core raises on purpose."""


class EtcdError(KubesaltError):
    """etcd answered with an error status (see :mod:`kubesalt_core.etcd_client`)."""

    def __init__(self, status, message, path):
        super().__init__(kubesalt_core.etcd.explain(status, message, path))
        self.status = status
        self.message = message

    @property
    def transient(self):
        return kubesalt_core.etcd.transient(self.status, self.message)


class Unreachable(KubesaltError):
    """No endpoint answered."""

    transient = True


class GaveUp(KubesaltError):
    """A retried action failed for good: a permanent error, or its time ran out."""


class SigningRefused(KubesaltError, ValueError):
    """The CA host will not sign what was asked (names the reason)."""


class SystemdError(KubesaltError):
    """systemctl or journalctl failed."""


class InFlight(KubesaltError):
    """Another repair of the same unit holds its lock."""
