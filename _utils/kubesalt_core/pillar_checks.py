"""The leaf checks of the pillar model: each takes a value and its colon path and returns
``(parsed value or None, [Problem])``, naming the key and what was expected. The schema
(:mod:`kubesalt_core.pillar_schema`) puts them together.

No Salt dunders and no I/O here.
"""

import difflib
import ipaddress
import re
from dataclasses import dataclass

import kubesalt_core.pillar

ERROR = "error"


WARNING = "warning"


_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")


_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Problem:
    """One finding about the pillar: the key it is about, what is wrong, how bad."""

    key: str
    message: str
    level: str = ERROR

    def __str__(self):
        return f"{self.key}: {self.message}"


def kind_of(value):
    return "nothing" if value is None else type(value).__name__


def missing(key, expected):
    return [Problem(key, f"missing; expected {expected}")]


def minion_ids(value, key):
    """A list of minion ids (each checked against ``nodes`` where it is used); null: []."""
    if value is None:
        return [], []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return None, [Problem(key, f"expected a list of minion ids, got {value!r}")]
    return value, []


def dns_label(value, key):
    expected = "a DNS label (lowercase letters, digits and '-', at most 63 characters)"
    if value is None:
        return None, missing(key, expected)
    if not isinstance(value, str) or not _DNS_LABEL_RE.match(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def is_dns_name(value):
    """An RFC 1123 name: dot-separated DNS labels, at most 253 characters."""
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    return all(_DNS_LABEL_RE.match(label) for label in value.split("."))


def dns_domain(value, key):
    expected = "a DNS domain such as 'cluster.local'"
    if value is None:
        return None, missing(key, expected)
    if not is_dns_name(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def as_number(value, key):
    expected = "an AS number, an integer from 1 to 4294967294 (64512-65534 for a private AS)"
    if value is None:
        return None, missing(key, expected)
    if isinstance(value, bool) or not isinstance(value, int):
        return None, [Problem(key, f"{value!r} is a {kind_of(value)}; expected {expected}")]
    if not 1 <= value <= 4294967294:
        return None, [Problem(key, f"{value} is out of range; expected {expected}")]
    if value in kubesalt_core.pillar.RESERVED_ASNS:
        return None, [Problem(key, f"{value} is a reserved AS number; expected {expected}")]
    return value, []


def cidr(value, key):
    expected = "an IPv4 network in CIDR notation such as '198.18.0.0/24'"
    if value is None:
        return None, missing(key, expected)
    if not isinstance(value, str) or "/" not in value:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return None, [Problem(key, f"{value!r} is not {expected}")]
    if str(net) != value:
        return None, [
            Problem(key, f"{value!r} has host bits set; expected the network address {net}")
        ]
    return net, []


def ip(value, key):
    expected = "an IPv4 address such as '198.18.0.10'"
    if value is None:
        return None, missing(key, expected)
    try:
        return ipaddress.IPv4Address(value), []
    except (ValueError, TypeError):
        return None, [Problem(key, f"{value!r} is not {expected}")]


def dns_upstream(value, key):
    """CoreDNS's upstream resolvers: null (the node's /etc/resolv.conf), or IPv4 addresses
    ([]: none; the cluster answers only its own names)."""
    if value is None:
        return None, []
    if not isinstance(value, list):
        expected = "null or a list of IPv4 addresses"
        return None, [Problem(key, f"expected {expected}, got {kind_of(value)}")]
    found, problems = [], []
    for i, item in enumerate(value):
        address, more = ip(item, f"{key}:{i}")
        problems += more
        found.append(address)
    return found, problems


def version(value, key):
    expected = "a version string such as '1.37.0' (quote it in YAML)"
    if value is None or value == "":
        return None, missing(key, expected)
    if not isinstance(value, str) or not _VERSION_RE.match(value):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def abs_path(value, key):
    expected = "an absolute path"
    if value is None or value == "":
        return None, missing(key, expected)
    if not isinstance(value, str) or not value.startswith("/"):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def boolean(value, key):
    if not isinstance(value, bool):
        return None, [Problem(key, f"{value!r} is not true or false")]
    return value, []


def int_range(low, high, what):
    expected = f"{what}, a whole number from {low} to {high}"

    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return None, [Problem(key, f"{value!r} is not {expected}")]
        return value, []

    return check


pool_block_size = int_range(20, 32, "Calico's IPv4 block size")


node_port_number = int_range(30000, 32767, "a NodePort")


def ip_pools(value, key):
    if value is None or value == []:
        return [], []
    if not isinstance(value, list):
        expected = "a list of {name, cidr, block_size, nat_outgoing}"
        return None, [Problem(key, f"expected {expected}, got {kind_of(value)}")]
    fields = {
        "name": dns_label,
        "cidr": cidr,
        "block_size": optional(pool_block_size),
        "nat_outgoing": optional(boolean),
    }
    parsed, problems = [], []
    for i, pool in enumerate(value):
        found_pool, found = fields_of(pool, f"{key}:{i}", fields)
        parsed.append(found_pool)
        problems += found
    return parsed, problems


def choice(choices):
    def choice(value, key):
        if value not in choices:
            return None, [Problem(key, f"{value!r} is not one of: {', '.join(choices)}")]
        return value, []

    return choice


# A container image reference as containerd parses it (the distribution reference grammar):
# [registry[:port]/]path[:tag][@digest], the path in lowercase components.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"


_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"


_IMAGE_RE = re.compile(
    rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def is_image_reference(value):
    return isinstance(value, str) and len(value) <= 255 and bool(_IMAGE_RE.match(value))


def image(value, key):
    if not is_image_reference(value):
        expected = "a container image reference ([registry/]path[:tag][@digest], lowercase path)"
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


_REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?::[0-9]{{1,5}})?$")


_MIRROR_RE = re.compile(rf"^https?://{_DOMAIN}(?::[0-9]{{1,5}})?(?:/[^\s]*)?$")


def registry_mirrors(value, key):
    """``{registry host: [mirror URL, ...]}``: where containerd pulls each registry's images."""
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        expected = "a mapping of registry host to a list of mirror URLs"
        return None, [Problem(key, f"expected {expected}, got {kind_of(value)}")]
    problems = []
    for registry, mirrors in value.items():
        where = f"{key}:{registry}"
        if not isinstance(registry, str) or not _REGISTRY_RE.match(registry):
            problems.append(Problem(where, "not a registry host (e.g. registry.k8s.io)"))
            continue
        if not isinstance(mirrors, list) or not mirrors:
            problems.append(
                Problem(where, f"expected a list of mirror URLs, got {kind_of(mirrors)}")
            )
            continue
        for i, mirror in enumerate(mirrors):
            if not isinstance(mirror, str) or not _MIRROR_RE.match(mirror):
                problems.append(Problem(f"{where}:{i}", f"{mirror!r} is not an http(s):// URL"))
    return value, problems


def namespaced_name(value, key):
    """``namespace/name`` of an object: a DNS label, then a DNS subdomain name."""
    expected = "namespace/name (a DNS label, '/', a lowercase DNS name)"
    namespace, slash, name = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not (slash and _DNS_LABEL_RE.match(namespace) and is_dns_name(name)):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def string_map(value, key):
    """A mapping of strings to strings (a ConfigMap's data); numbers and booleans are
    written as YAML gives them, so they must be quoted; null: {}."""
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return None, [Problem(key, f"expected a mapping of strings, got {kind_of(value)}")]
    problems = [
        Problem(f"{key}:{name}", f"expected a string (quote it), got {kind_of(item)}")
        for name, item in value.items()
        if not isinstance(name, str) or not isinstance(item, str)
    ]
    return value, problems


def optional(check):
    def optional(value, key):
        return (None, []) if value is None else check(value, key)

    return optional


def endpoint(value, key):
    expected = "a DNS name or IP address, optionally with :port"
    host, port = (
        kubesalt_core.pillar.split_endpoint(value) if isinstance(value, str) else (None, None)
    )
    if (
        host is None
        or not (is_dns_name(host) or kubesalt_core.pillar.is_ip(host))
        or not 0 < port < 65536
    ):
        return None, [Problem(key, f"{value!r} is not {expected}")]
    return value, []


def unknown_key(key, name, allowed):
    expected = ", ".join(sorted(allowed))
    hint = difflib.get_close_matches(str(name), allowed, n=1)
    suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
    return Problem(f"{key}:{name}", f"unknown key; expected one of: {expected}{suffix}")


def fields_of(value, key, fields):
    """Check a mapping with a fixed set of keys; returns ({name: parsed}, [Problem])."""
    if not isinstance(value, dict):
        if value is None:
            return None, missing(key, "a mapping")
        return None, [Problem(key, f"expected a mapping, got {kind_of(value)}")]
    problems = [unknown_key(key, name, fields) for name in value if name not in fields]
    parsed = {}
    for name, check in fields.items():
        parsed[name], found = check(value.get(name), f"{key}:{name}")
        problems += found
    return parsed, problems


def mapping(fields):
    return lambda value, key: fields_of(value, key, fields)


def errors(problems):
    """Only the problems that must stop a run."""
    return [p for p in problems if p.level == ERROR]
