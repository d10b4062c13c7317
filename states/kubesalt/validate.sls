{#- Runs first in every kubesalt highstate; stops the run when pillar is invalid. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- import_yaml tplroot ~ "/defaults.yaml" as defaults %}

kubesalt-pillar-validated:
  kubesalt.validated:
    - name: kubesalt
    - defaults: {{ defaults | json }}
    - order: 1
    - failhard: True
