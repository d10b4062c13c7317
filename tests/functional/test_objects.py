"""The decision logic of ``k8s_objects.applied`` (diff first, apply only on a difference,
test=True shows the diff, a failing kubectl fails the state) with a stand-in for kubectl.

kubectl and an apiserver cannot be had here, so this checks kubesalt's side only: the
arguments and the YAML stream it hands kubectl, and what it does with kubectl's exit codes.
The stand-in answers ``diff`` with exit 1 and a diff until ``apply`` was called with the
same stream, then with exit 0, as ``kubectl diff`` does; each applied stream is kept under
its checksum (``applied/``) and appended to ``applied.log``.
"""

import functools
import json
import stat

import pytest
import yaml

from kubesalt_ext.utils import kubesalt_manifests
from tests.support.bad_pillars import lab_config, lab_pillar

STAND_IN = """#!/bin/sh
# kubectl stand-in: records its arguments and stdin; see the test module's docstring.
dir=$(dirname "$0")
echo "$@" >> "$dir/calls"
cat > "$dir/stdin"
case "$3" in
  diff)
    if [ -f "$dir/fail" ]; then echo "connection refused" >&2; exit 2; fi
    if [ -f "$dir/applied/$(md5sum < "$dir/stdin" | cut -d' ' -f1)" ]; then exit 0; fi
    echo "+ $(head -c 60 "$dir/stdin")"; exit 1 ;;
  apply)
    mkdir -p "$dir/applied"
    cp "$dir/stdin" "$dir/applied/$(md5sum < "$dir/stdin" | cut -d' ' -f1)"
    { echo "---"; cat "$dir/stdin"; } >> "$dir/applied.log"
    echo "serverside-applied"; exit 0 ;;
esac
exit 3
"""


@pytest.fixture
def kubectl_dir(tmp_path):
    bin_dir = tmp_path / "k8s-bin"
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(STAND_IN)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _pillar(tmp_path, kubectl_dir):
    pillar = lab_pillar()
    pillar["paths"] = {"root": str(tmp_path / "root")}
    pillar["artifacts"]["kubernetes"] = {"source": "path", "path": str(kubectl_dir)}
    return {"kubesalt": pillar}


def _applied(loaders, pillar, test=False, **kwargs):
    high = {
        "kubesalt-cluster-objects-applied": {
            "k8s_objects": ["applied", {"name": "kubesalt"}, *({k: v} for k, v in kwargs.items())],
            "__sls__": "test_objects",
            "__env__": "base",
        }
    }
    ret = loaders.modules.state.high(high, pillar=pillar, test=test).raw
    (result,) = ret.values()
    return result


def test_diff_decides_test_mode_shows_and_a_second_run_changes_nothing(
    loaders, tmp_path, kubectl_dir
):
    pillar = _pillar(tmp_path, kubectl_dir)
    dry = _applied(loaders, pillar, test=True)
    # A new namespace (the ingress's) comes first: the rest cannot be diffed before it.
    assert dry["result"] is None and "kind: Namespace" in dry["changes"]["diff"]
    assert not (kubectl_dir / "applied").exists()

    done = _applied(loaders, pillar)
    assert done["result"] is True and done["changes"]["applied"]
    calls = [c.split(" ", 2)[2] for c in (kubectl_dir / "calls").read_text().splitlines()]
    admin = f"{tmp_path}/root/etc/kubernetes/admin.conf"
    assert (kubectl_dir / "calls").read_text().startswith(f"--kubeconfig {admin} ")
    diff = "diff --server-side --field-manager=kubesalt -f -"
    apply = "apply --server-side --field-manager=kubesalt -f -"
    # test=True: the namespaces' diff; then namespaces diffed and applied, the rest too.
    assert calls == [diff, diff, apply, diff, apply]
    sent = [d for d in yaml.safe_load_all((kubectl_dir / "applied.log").read_text()) if d]
    expected = kubesalt_manifests.cluster_objects(lab_config())
    canonical = functools.partial(json.dumps, sort_keys=True)
    assert sorted(map(canonical, sent)) == sorted(map(canonical, expected))
    assert sent[0]["kind"] == "Namespace"

    again = _applied(loaders, pillar)
    assert (again["result"], again["changes"]) == (True, {})
    assert "apply" not in (kubectl_dir / "calls").read_text().splitlines()[-1]
    assert "apply" not in (kubectl_dir / "calls").read_text().splitlines()[-2]


def test_a_failing_kubectl_fails_the_state_with_its_message(loaders, tmp_path, kubectl_dir):
    (kubectl_dir / "fail").touch()
    pillar = _pillar(tmp_path, kubectl_dir)
    failed = _applied(loaders, pillar, wait=0)
    assert failed["result"] is False
    assert "kubectl diff failed: connection refused" in failed["comment"]
    assert not (kubectl_dir / "applied").exists()


def test_calico_bgp_resources_go_through_the_same_diff_and_apply(loaders, tmp_path, kubectl_dir):
    from kubesalt_ext.utils import kubesalt_calico

    pillar = _pillar(tmp_path, kubectl_dir)
    high = {
        "kubesalt-calico-bgp-configured": {
            "calico_bgp": ["configured", {"name": "default"}],
            "__sls__": "test_objects",
            "__env__": "base",
        }
    }
    dry = loaders.modules.state.high(high, pillar=pillar, test=True).raw
    (dry,) = dry.values()
    assert dry["result"] is None and dry["changes"]["diff"]
    done = loaders.modules.state.high(high, pillar=pillar).raw
    (done,) = done.values()
    assert done["result"] is True and done["changes"]["applied"]
    sent = [d for d in yaml.safe_load_all((kubectl_dir / "applied.log").read_text()) if d]
    assert sent == kubesalt_calico.resources(lab_config())
    again = loaders.modules.state.high(high, pillar=pillar).raw
    (again,) = again.values()
    assert (again["result"], again["changes"]) == (True, {})
