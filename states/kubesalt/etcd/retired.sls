{#- Take this host's etcd member out of the cluster (refused if quorum would not hold
    without it), stop etcd and move its data dir aside. Applied by kubesalt/orch/remove_master;
    it needs no master role in pillar, so it also runs after the node left pillar. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt with context %}

kubesalt-etcd-member-absent:
  kubesalt_etcd.member_absent:
    - name: {{ opts["id"] }}
    - data_dir: {{ kubesalt.paths.etcd_data_dir }}
    - env_file: {{ kubesalt.paths.etcd_config_dir }}/cluster.env
