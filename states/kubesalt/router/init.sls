{#- The router role: BIRD 2 as the route reflector of the cluster's nodes, its config
    rendered from the same pillar as Calico's BGP resources (kubesalt_core.calico). A changed
    config reloads BIRD (birdc configure) instead of restarting it. #}
{%- set tplroot = tpldir.split("/")[0] %}
include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.node
  - {{ tplroot }}.units
