"""Salt loader modules; shipped as a subpackage of kubesalt_ext (see setup.cfg)."""
