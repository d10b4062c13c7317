{#- kubesalt's cluster objects and Calico's CRDs, applied with server-side apply by one
    master (the first by minion id); see k8s_objects. #}
{%- set tplroot = tpldir.split("/")[0] %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.units

kubesalt-cluster-objects-applied:
  k8s_objects.applied:
    - name: kubesalt
    - require:
      - kubesalt: kubesalt-pillar-validated
      - sls: {{ tplroot }}.units

# Calico's BGP side (after the CRDs above): BGPConfiguration, BGPPeers, node addresses,
# IPPools; see calico_bgp.
kubesalt-calico-bgp-configured:
  calico_bgp.configured:
    - name: default
    - require:
      - k8s_objects: kubesalt-cluster-objects-applied
