"""Salt beacons; shipped as a subpackage of kubesalt_ext (see setup.cfg)."""
