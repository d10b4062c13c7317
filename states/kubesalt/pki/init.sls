{#- Certificates: the CAs on the CA host, each node's catalogue certificates, kubeconfigs.
    The kubesalt_pki module docstring explains who signs what, and why a node cannot obtain
    another node's identity. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt, node with context %}

include:
  - {{ tplroot }}.validate

{%- if salt["kubesalt_pki.is_ca_host"]() %}

kubesalt-pki-cas-present:
  kubesalt_pki.cas_present:
    - name: {{ kubesalt.paths.ca_dir }}
    - require:
      - kubesalt: kubesalt-pillar-validated
    - require_in:
      - kubesalt_pki: kubesalt-pki-certificates-present
{%- endif %}

kubesalt-pki-certificates-present:
  kubesalt_pki.certificates_present:
    - name: {{ kubesalt.paths.pki_dir }}
    - require:
      - kubesalt: kubesalt-pillar-validated

{%- for name, kubeconfig in salt["kubesalt_pki.kubeconfigs"]() | dictsort %}

kubesalt-pki-kubeconfig-{{ name }}-managed:
  file.managed:
    - name: {{ kubeconfig.path }}
    - contents: {{ kubeconfig.contents | json }}
    - user: root
    - group: root
    - mode: "0600"
    - makedirs: True
    - require:
      - kubesalt_pki: kubesalt-pki-certificates-present
{%- endfor %}
{%- if "master" in node.get("roles", []) %}

{#- The apiservers' keys for Secrets at rest, sealed to this master by the CA host. #}
kubesalt-encryption-config-current:
  kubesalt_encryption.config_current:
    - name: {{ kubesalt.paths.kubernetes_dir }}/encryption-config.yaml
    - require:
      - kubesalt_pki: kubesalt-pki-certificates-present
{%- endif %}
