"""Third-party test data kept beside the repo (never copied into it).

Calico's CRD schemas live in ``../shared/data/calico-crds/<version>/`` next to the
repository (with their provenance and licence); ``KUBESALT_CALICO_CRDS`` points elsewhere.
Tests that need them skip, naming the folder, where it is absent.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def calico_crds_dir(version="v3.32.1"):
    chosen = os.environ.get("KUBESALT_CALICO_CRDS")
    if chosen:
        return Path(chosen)
    return REPO.parent / "shared" / "data" / "calico-crds" / version


def calico_crds_or_skip(version="v3.32.1"):
    """The folder of Calico's CRD files. Where the default place beside the repo lacks them,
    the test skips, naming where it looked and how to point elsewhere (the data is never
    copied into the repo); a folder named by KUBESALT_CALICO_CRDS that lacks them fails."""
    folder = calico_crds_dir(version)
    if any(folder.glob("crd.projectcalico.org_*.yaml")):
        return folder
    if os.environ.get("KUBESALT_CALICO_CRDS"):
        # Pointed at on purpose: a wrong folder must not pass for "data not here".
        pytest.fail(f"KUBESALT_CALICO_CRDS={folder} holds no crd.projectcalico.org_*.yaml")
    pytest.skip(
        f"Calico's CRD schemas ({version}) are not at {folder}: they are third-party "
        "test data kept beside the repo; set KUBESALT_CALICO_CRDS to their folder"
    )
