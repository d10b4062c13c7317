{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt, node with context %}

include:
  - {{ tplroot }}.validate

kubesalt-node-config-dir-managed:
  file.directory:
    - name: {{ kubesalt.paths.config_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated

kubesalt-node-identity-file-managed:
  file.managed:
    - name: {{ kubesalt.paths.config_dir }}/node.yaml
    - source: salt://{{ tplroot }}/node/files/node.yaml.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        cluster: {{ kubesalt.cluster | json }}
        node: {{ node | json }}
    - require:
      - file: kubesalt-node-config-dir-managed
