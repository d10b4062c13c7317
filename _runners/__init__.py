"""Salt runners, run on the salt-master; shipped in kubesalt_ext (see setup.cfg)."""
