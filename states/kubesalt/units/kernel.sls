{#- What kube-proxy's mode and pod routing need from a worker's kernel and host: the
    sysctl.d file (and for IPVS the modules-load.d file) always; the host packages of the
    mode (nftables, iptables, ipset, conntrack), loading the modules and applying the
    sysctls only where kube-proxy really runs (its artifact is available). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import kubesalt, node with context %}
{%- set kernel = salt["kubesalt_unit.kernel"]() %}

include:
  - {{ tplroot }}.validate

{%- if kernel %}
{%- for path, file in kernel.files | dictsort %}

kubesalt-kernel-{{ path }}-managed:
  file.managed:
    - name: {{ path }}
    - contents: {{ file.text | json }}
    - mode: "{{ file.mode }}"
    - makedirs: True
    - require:
      - kubesalt: kubesalt-pillar-validated
{%- endfor %}
{%- if kernel.apply %}

kubesalt-kernel-packages-installed:
  pkg.installed:
    - pkgs: {{ kernel.packages | json }}
    - require:
      - kubesalt: kubesalt-pillar-validated
    # kube-proxy and felix call these programs (nft, iptables, ipset, conntrack).
    - require_in:
      - sls: {{ tplroot }}.units
{%- for module in kernel.modules %}

kubesalt-kernel-module-{{ module }}-loaded:
  kmod.present:
    - name: {{ module }}
{%- endfor %}

kubesalt-kernel-sysctls-applied:
  cmd.run:
    - name: sysctl -p {{ kernel.sysctl_file }}
    - onchanges:
      - file: kubesalt-kernel-{{ kernel.sysctl_file }}-managed
    - require:
      - pkg: kubesalt-kernel-packages-installed
{%- for module in kernel.modules %}
      - kmod: kubesalt-kernel-module-{{ module }}-loaded
{%- endfor %}
{%- endif %}
{%- endif %}
