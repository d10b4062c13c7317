{#- The master role. Its components are added by their own SLS as they land. #}
{%- set tplroot = tpldir.split("/")[0] %}
include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.node
  - {{ tplroot }}.pki
  - {{ tplroot }}.etcd
