{#- Runs first in every kubesalt highstate; stops the run when pillar is invalid, or when
    it would change this node's Kubernetes version (that is kubesalt.orch.upgrade's work). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- import_yaml tplroot ~ "/defaults.yaml" as defaults %}

kubesalt-pillar-validated:
  kubesalt.validated:
    - name: kubesalt
    - defaults: {{ defaults | json }}
    - order: 1
    - failhard: True

kubesalt-kubernetes-version-held:
  kubesalt_upgrade.version_held:
    - order: 2
    - failhard: True
    - require:
      - kubesalt: kubesalt-pillar-validated
