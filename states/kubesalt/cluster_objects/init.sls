{#- kubesalt's cluster objects and Calico's CRDs, applied with server-side apply by one
    master (the first by minion id); see kubesalt_manifest. #}
{%- set tplroot = tpldir.split("/")[0] %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.units

kubesalt-cluster-objects-applied:
  kubesalt_manifest.applied:
    - name: kubesalt
    - require:
      - kubesalt: kubesalt-pillar-validated
      - sls: {{ tplroot }}.units

# Calico's BGP side (after the CRDs above): BGPConfiguration, BGPPeers, node addresses,
# IPPools; see kubesalt_calico.
kubesalt-calico-bgp-configured:
  kubesalt_calico.configured:
    - name: default
    - require:
      - kubesalt_manifest: kubesalt-cluster-objects-applied
