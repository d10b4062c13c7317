"""Third-party test data kept beside the repo (never copied into it).

Calico's CRD schemas live in ``../shared/data/calico-crds/<version>/`` next to the
repository (with their provenance and licence); ``KUBESALT_CALICO_CRDS`` points elsewhere.
Tests that need them skip, naming the folder, where it is absent.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def calico_crds_dir(version="v3.32.1"):
    chosen = os.environ.get("KUBESALT_CALICO_CRDS")
    if chosen:
        return Path(chosen)
    return REPO.parent / "shared" / "data" / "calico-crds" / version
