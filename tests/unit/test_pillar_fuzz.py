"""Property-based fuzz of the pillar model (hypothesis).

- Any value of any type at any key of the lab's pillar: validation answers with problems that
  name a key under ``kubesalt``, and never raises.
- Whatever validation accepts renders: every unit of every node, and every cluster object,
  each of which the pinned Kubernetes' OpenAPI schema accepts (what the apiserver would
  refuse at apply time must not pass validation).
- Typed keys fuzzed within their own domain: what passes is what the consumer takes (Calico's
  pools inside the pod CIDR with its block sizes, containerd's image references, mirror URLs).
"""

import copy
import ipaddress

import kubernetes_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kubesalt_core.manifest
import kubesalt_core.pillar
import kubesalt_core.pillar_checks
import kubesalt_core.pillar_schema
import kubesalt_core.pki
import kubesalt_core.unit
from kubesalt_lab.pillar import lab_config

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", "0", "true", "198.18.0.300", "10.0.0.0/33", "a:b", "-", "x" * 300])
)
ANY = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=6,
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(tree, prefix=()):
    """Every key path of a pillar tree (mapping keys and list indexes), parents first."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        path = (*prefix, key)
        found.append(path)
        if isinstance(value, (dict, list)):
            found += _paths(value, path)
    return found


PATHS = _paths(lab_config())


def _set(config, path, value):
    node = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _renders(config):
    """Everything a highstate renders from an accepted config: units of every node and the
    cluster objects, each checked against the pinned Kubernetes' schemas."""
    config = copy.deepcopy(config)
    config["paths"] = kubesalt_core.pillar.resolve_paths(config["paths"])
    kubesalt_core.pki.Layout.of(config)
    for node_id in config["nodes"]:
        for rendered in kubesalt_core.unit.node_units(config, node_id):
            assert "\n[Unit]\n" in rendered.unit_text, rendered.unit.name
            assert all(text.strip() for text, _mode in rendered.files.values()), rendered.unit.name
    version = str(config["versions"]["kubernetes"])
    for obj in kubesalt_core.manifest.cluster_objects(config):
        kubernetes_validate.validate(obj, version, strict=True)


def _problem_keys(problems):
    for problem in problems:
        assert isinstance(problem.key, str) and problem.key.startswith("kubesalt"), problem
        assert isinstance(problem.message, str) and problem.message, problem
    return {p.key for p in problems}


@FUZZ
@given(path=st.sampled_from(PATHS), value=ANY)
def test_any_value_at_any_key_gets_a_named_problem_or_renders(path, value):
    config = lab_config()
    _set(config, path, value)
    problems = kubesalt_core.pillar_schema.validate(config)
    _problem_keys(problems)
    if not kubesalt_core.pillar_checks.errors(problems):
        _renders(config)


@FUZZ
@given(section=st.sampled_from(sorted(kubesalt_core.pillar_schema.SCHEMA)), value=ANY)
def test_any_value_for_a_whole_section_is_named_not_crashed_on(section, value):
    config = lab_config()
    config[section] = value
    problems = kubesalt_core.pillar_schema.validate(config)
    keys = _problem_keys(problems)
    if kubesalt_core.pillar_checks.errors(problems):
        assert any(k.startswith(f"kubesalt:{section}") or k == "kubesalt" for k in keys) or keys


@FUZZ
@given(value=st.booleans(), path=st.sampled_from([p for p in PATHS if p[0] in ("network",)]))
def test_a_boolean_is_never_taken_for_a_number_or_an_address(value, path):
    config = lab_config()
    original = config
    for part in path:
        original = original[part]
    if isinstance(original, (bool, dict, list)) or original is None:
        return
    _set(config, path, value)
    assert kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(config)), path


@FUZZ
@given(
    network=st.integers(min_value=0, max_value=2**32 - 1),
    prefix=st.integers(min_value=8, max_value=32),
    block_size=st.none() | st.integers(min_value=0, max_value=40),
)
def test_an_accepted_pool_is_inside_the_pod_cidr_with_a_block_size_calico_takes(
    network, prefix, block_size
):
    config = lab_config()
    cidr = ipaddress.ip_network((network, prefix), strict=False)
    pool = {"name": "fuzzed", "cidr": str(cidr)}
    if block_size is not None:
        pool["block_size"] = block_size
    config["network"]["ip_pools"] = [pool]
    if kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(config)):
        return
    assert cidr.subnet_of(ipaddress.ip_network(config["network"]["pod_cidr"]))
    size = 26 if block_size is None else block_size
    assert 20 <= size <= 32 and size >= cidr.prefixlen


_REFERENCE_PARTS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789._-:/@", max_size=40)


@FUZZ
@given(reference=_REFERENCE_PARTS)
def test_an_accepted_image_reference_splits_as_containerd_splits_it(reference):
    if not kubesalt_core.pillar_checks.is_image_reference(reference):
        return
    name, _, digest = reference.partition("@")
    if digest:
        algorithm, _, hex_part = digest.partition(":")
        assert algorithm and len(hex_part) >= 32
    first, _, rest = name.partition("/")
    # A registry host is only ever the first component, and only when a path follows; as
    # the distribution reference's splitDockerDomain decides it.
    is_host = "." in first or ":" in first or first == "localhost" or first != first.lower()
    path = rest if rest and is_host else name
    repository = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
    assert repository == repository.lower(), reference
    assert all(component for component in repository.split("/")), reference
    assert len(reference) <= 255


@FUZZ
@given(url=st.text(alphabet="abcdefhpst:/.0123456789-", max_size=40))
def test_an_accepted_registry_mirror_is_an_http_url_with_a_host(url):
    config = lab_config()
    config["containerd"]["registry_mirrors"] = {"registry.k8s.io": [url]}
    if kubesalt_core.pillar_checks.errors(kubesalt_core.pillar_schema.validate(config)):
        return
    scheme, _, rest = url.partition("://")
    assert scheme in ("http", "https") and rest and not rest.startswith("/"), url
