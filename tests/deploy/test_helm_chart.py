"""The Helm chart (deploy/helm/driftline) and the plain manifests (deploy/k8s):
helm lint and template, Kubernetes schemas, and what the sidecar needs from its pod."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from pipeline.config import Settings, parse_settings
from tests.deploy.conftest import CHART, REPO

K8S_VERSION = "1.33"
PLAIN = REPO / "deploy" / "k8s" / "driftline-sidecar.yaml"
SECURE_VALUES = {
    "kafka": {
        "sasl": {"enabled": True, "existingSecret": "kafka-creds", "mechanism": "SCRAM-SHA-256"},
        "tls": {
            "enabled": True,
            "existingSecret": "kafka-ca",
            "certKey": "tls.crt",
            "keyKey": "tls.key",
        },
    },
    "config": {
        "kafka": {"bootstrap_servers": "kafka:9093", "security": {"protocol": "SASL_SSL"}},
        "default_model": {"features": ["amount"]},
    },
    "serviceMonitor": {"labels": {"release": "prometheus"}},
}


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


def render(helm: str, tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    args = ["template", "fraud", str(CHART), "--namespace", "ml"]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    proc = run_helm(helm, *args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = [d["kind"] for d in docs]
    assert len(kinds) == len(set(kinds)), kinds
    return {d["kind"]: d for d in docs}


def sidecar(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 2, "the inference container and the sidecar"
    (container,) = [c for c in containers if c["name"] == "driftline"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def config_of(configmap: dict[str, Any], environ: dict[str, str]) -> Settings:
    return parse_settings(yaml.safe_load(configmap["data"]["driftline.yaml"]), environ=environ)


def check_pod(deployment: dict[str, Any], configmap: dict[str, Any]) -> Settings:
    """What every rendering must give the sidecar; returns its parsed config."""
    container = sidecar(deployment)
    pod = deployment["spec"]["template"]["spec"]
    env = env_of(container)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["args"][:3] == ["run", "--config", "/etc/driftline/driftline.yaml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert "cpu" not in container["resources"].get("limits", {}), "CPU throttling stalls heartbeats"
    assert pod["terminationGracePeriodSeconds"] >= 30
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    config_volume = next(
        v for v in pod["volumes"] if v["name"] == mounts["driftline-config"]["name"]
    )
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    environ = {"POD_NAME": "fraud-7d9c-x2k4p"}
    environ.update({name: "from-secret" for name in env if name.startswith("DRIFTLINE_")})
    # The transactional id's default reads the process environment (POD_NAME).
    with mock.patch.dict(os.environ, {"POD_NAME": environ["POD_NAME"]}):
        settings = config_of(configmap, environ)
    assert settings.runtime.http_port == ports["metrics"]
    assert settings.kafka.transactional_id == "driftline-fraud-7d9c-x2k4p"
    return settings


CHART_VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def check_sizing(docs: dict[str, dict[str, Any]], sizing: dict[str, int]) -> None:
    """Memory request and limit, and limits.max_keys, as the chart derives them from
    ``sizing`` (README "Sizing")."""
    join_kib = sizing["models"] * sizing["pendingPerModel"] * sizing["pendingBytes"] // 1024
    request = sizing["baseMiB"] + (sizing["models"] * sizing["modelKiB"] + join_kib) // 1024
    limit = sizing["baseMiB"] + (sizing["models"] * sizing["peakModelKiB"] + join_kib) // 1024
    assert sidecar(docs["Deployment"])["resources"] == {
        "requests": {**CHART_VALUES["resources"]["requests"], "memory": f"{request}Mi"},
        "limits": {"memory": f"{limit}Mi"},
    }
    config = yaml.safe_load(docs["ConfigMap"]["data"]["driftline.yaml"])
    assert config["limits"]["max_keys"] == (limit - sizing["baseMiB"]) * 1024 // sizing["keyKiB"]


class TestHelm:
    def test_memory_and_caps_follow_the_sizing(self, helm: str, tmp_path: Path) -> None:
        check_sizing(by_kind(render(helm, tmp_path)), CHART_VALUES["sizing"])
        sizing = {**CHART_VALUES["sizing"], "models": 2000}
        check_sizing(by_kind(render(helm, tmp_path, {"sizing": sizing})), sizing)
        no_labels = {**CHART_VALUES["sizing"], "pendingPerModel": 0}
        check_sizing(by_kind(render(helm, tmp_path, {"sizing": no_labels})), no_labels)

    def test_explicit_memory_and_caps_win(self, helm: str, tmp_path: Path) -> None:
        values = {
            "resources": {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"memory": "4Gi"}},
            "config": {**CHART_VALUES["config"], "limits": {"max_keys": 777}},
        }
        docs = by_kind(render(helm, tmp_path, values))
        assert sidecar(docs["Deployment"])["resources"] == values["resources"]
        config = yaml.safe_load(docs["ConfigMap"]["data"]["driftline.yaml"])
        assert config["limits"] == {"max_keys": 777}

    def test_lint_strict(self, helm: str, tmp_path: Path) -> None:
        for values in (None, SECURE_VALUES):
            args = ["lint", str(CHART), "--strict"]
            if values is not None:
                (tmp_path / "v.yaml").write_text(yaml.safe_dump(values))
                args += ["-f", str(tmp_path / "v.yaml")]
            proc = run_helm(helm, *args)
            assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_default_rendering(self, helm: str, tmp_path: Path) -> None:
        docs = by_kind(render(helm, tmp_path))
        assert set(docs) == {"ConfigMap", "Deployment", "Service", "ServiceMonitor"}
        settings = check_pod(docs["Deployment"], docs["ConfigMap"])
        assert settings.kafka.security.protocol == "PLAINTEXT"
        assert not any(n.startswith("DRIFTLINE_") for n in env_of(sidecar(docs["Deployment"])))
        monitor = docs["ServiceMonitor"]["spec"]
        assert monitor["endpoints"][0]["port"] == "metrics"
        assert monitor["endpoints"][0]["path"] == "/metrics"
        assert (
            monitor["selector"]["matchLabels"].items()
            <= docs["Service"]["metadata"]["labels"].items()
        )
        service_ports = {p["name"] for p in docs["Service"]["spec"]["ports"]}
        assert service_ports == {"http", "metrics"}

    def test_sasl_and_tls_reach_the_kafka_client(self, helm: str, tmp_path: Path) -> None:
        docs = by_kind(render(helm, tmp_path, SECURE_VALUES))
        assert "Secret" not in docs, "an existing Secret is used, none is created"
        container = sidecar(docs["Deployment"])
        env = env_of(container)
        for name, key in (("USERNAME", "username"), ("PASSWORD", "password")):
            ref = env[f"DRIFTLINE_KAFKA__SECURITY__SASL_{name}"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "kafka-creds", "key": key}
        settings = check_pod(docs["Deployment"], docs["ConfigMap"])
        options = settings.kafka.client_options()
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-256"
        assert options["sasl_plain_password"] == "from-secret"
        assert options["ssl_cafile"] == "/etc/driftline/tls/ca.crt"
        assert options["ssl_certfile"] == "/etc/driftline/tls/tls.crt"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/etc/driftline/tls" in mounts
        volumes = {v["name"]: v for v in docs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
        assert volumes["driftline-kafka-tls"]["secret"]["secretName"] == "kafka-ca"
        assert "sasl_password" not in docs["ConfigMap"]["data"]["driftline.yaml"]
        assert docs["ServiceMonitor"]["metadata"]["labels"]["release"] == "prometheus"

    def test_chart_made_secret(self, helm: str, tmp_path: Path) -> None:
        values = {"kafka": {"sasl": {"enabled": True, "username": "u", "password": "p"}}}
        docs = by_kind(render(helm, tmp_path, values))
        secret = docs["Secret"]
        ref = env_of(sidecar(docs["Deployment"]))["DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD"]
        assert ref["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert secret["stringData"] == {"username": "u", "password": "p"}

    def test_config_change_rolls_the_pods(self, helm: str, tmp_path: Path) -> None:
        def checksum(values: dict[str, Any] | None) -> str:
            deployment = by_kind(render(helm, tmp_path, values))["Deployment"]
            return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

        assert checksum(None) != checksum(
            {"config": {"kafka": {"bootstrap_servers": "other:9092"}}}
        )

    @pytest.mark.parametrize(
        ("values", "error"),
        [
            ({"image": {"repositry": "x"}}, "additional properties 'repositry'"),
            (
                {"config": {"kafka": {"bootstrap_servers": "k", "transactional_id": "x"}}},
                "transactional_id",
            ),
            (
                {
                    "config": {
                        "kafka": {"bootstrap_servers": "k", "security": {"sasl_password": "p"}}
                    }
                },
                "sasl_password",
            ),
            (
                {"config": {"kafka": {"bootstrap_servers": "k", "extra": {"ssl_password": "p"}}}},
                "ssl_password",
            ),
            (
                {
                    "config": {
                        "kafka": {"bootstrap_servers": "k"},
                        "models": {"m": {"x": {"db_passwd": "p"}}},
                    }
                },
                "db_passwd: a secret may not go into the ConfigMap",
            ),
            (
                {
                    "kafka": {"sasl": {"enabled": True, "existingSecret": "c"}},
                    "config": {
                        "kafka": {"bootstrap_servers": "k", "security": {"protocol": "SSL"}}
                    },
                },
                "config.kafka.security.protocol: SSL contradicts",
            ),
            ({"networkPolicy": {"enabled": True}}, "networkPolicy.metricsFrom"),
            ({"kafka": {"sasl": {"enabled": True}}}, "kafka.sasl.existingSecret"),
            ({"kafka": {"tls": {"enabled": True}}}, "kafka.tls.existingSecret"),
            ({"serviceMonitor": {"interval": "often"}}, "interval"),
        ],
    )
    def test_bad_values_are_refused(
        self, helm: str, tmp_path: Path, values: dict[str, Any], error: str
    ) -> None:
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(values))
        proc = run_helm(helm, "template", "fraud", str(CHART), "-f", str(tmp_path / "bad.yaml"))
        assert proc.returncode != 0
        assert error in proc.stderr

    @pytest.mark.parametrize(
        ("sasl", "tls", "protocol"),
        [
            (False, False, "PLAINTEXT"),
            (False, True, "SSL"),
            (True, False, "SASL_PLAINTEXT"),
            (True, True, "SASL_SSL"),
        ],
    )
    def test_protocol_follows_sasl_and_tls(
        self, helm: str, tmp_path: Path, sasl: bool, tls: bool, protocol: str
    ) -> None:
        values = {
            "kafka": {
                "sasl": {"enabled": sasl, "existingSecret": "creds"},
                "tls": {"enabled": tls, "existingSecret": "ca"},
            }
        }
        docs = by_kind(render(helm, tmp_path, values))
        config = yaml.safe_load(docs["ConfigMap"]["data"]["driftline.yaml"])
        assert config["kafka"]["security"]["protocol"] == protocol

    def test_hardened_pod(self, helm: str, tmp_path: Path) -> None:
        values = {
            "kafka": {
                "tls": {
                    "enabled": True,
                    "existingSecret": "kafka-ca",
                    "keyKey": "tls.key",
                    "certKey": "tls.crt",
                    "keyPassword": {"existingSecret": "kafka-key", "key": "pass"},
                }
            },
            "httpHost": "10.0.0.0",
        }
        docs = by_kind(render(helm, tmp_path, values))
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (tls,) = [v for v in pod["volumes"] if v["name"] == "driftline-kafka-tls"]
        assert tls["secret"]["defaultMode"] == 0o400
        env = env_of(sidecar(docs["Deployment"]))
        ref = env["DRIFTLINE_KAFKA__SECURITY__SSL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "kafka-key", "key": "pass"}
        settings = config_of(docs["ConfigMap"], {"DRIFTLINE_KAFKA__SECURITY__SSL_PASSWORD": "s"})
        assert settings.kafka.client_options()["ssl_password"] == "s"
        assert settings.runtime.http_host == "10.0.0.0"
        assert "password" not in docs["ConfigMap"]["data"]["driftline.yaml"]

    def test_network_policy(self, helm: str, k8s_validate: Any, tmp_path: Path) -> None:
        prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
        values = {"networkPolicy": {"enabled": True, "metricsFrom": [prometheus]}}
        docs = by_kind(render(helm, tmp_path, values))
        policy = docs["NetworkPolicy"]
        k8s_validate.validate(policy, K8S_VERSION, strict=True)
        assert (
            policy["spec"]["podSelector"]["matchLabels"]
            == (docs["Deployment"]["spec"]["selector"]["matchLabels"])
        )
        metrics, inference = policy["spec"]["ingress"]
        assert metrics == {"ports": [{"port": 8080, "protocol": "TCP"}], "from": [prometheus]}
        assert inference == {"ports": [{"port": 8000, "protocol": "TCP"}]}
        assert "NetworkPolicy" not in by_kind(render(helm, tmp_path))

    def test_pod_security_restricted(self, helm: str, podsecurity: str, tmp_path: Path) -> None:
        def check(manifests: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [podsecurity, "-level", "restricted"],
                input=manifests,
                capture_output=True,
                text=True,
                check=False,
            )

        for values in (None, SECURE_VALUES):
            docs = render(helm, tmp_path, values)
            proc = check(yaml.safe_dump_all(docs))
            assert proc.returncode == 0, proc.stdout + proc.stderr
        proc = check(PLAIN.read_text())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # The evaluator does judge: without the seccomp profile the same pod fails.
        loose = {"podSecurityContext": {"seccompProfile": None}}  # null deletes a default
        proc = check(yaml.safe_dump_all(render(helm, tmp_path, loose)))
        assert proc.returncode == 1 and "seccompProfile" in proc.stdout

    def test_rendered_manifests_match_the_kubernetes_schemas(
        self, helm: str, k8s_validate: Any, tmp_path: Path
    ) -> None:
        for values in (None, SECURE_VALUES):
            for doc in render(helm, tmp_path, values):
                if doc["kind"] == "ServiceMonitor":  # a CRD: not in the core schemas
                    continue
                k8s_validate.validate(doc, K8S_VERSION, strict=True)


class TestPlainManifests:
    def docs(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(PLAIN.read_text()) if d]

    def test_the_same_pod_as_the_chart(self) -> None:
        docs = by_kind(self.docs())
        assert set(docs) == {"ConfigMap", "Secret", "Deployment", "Service", "ServiceMonitor"}
        settings = check_pod(docs["Deployment"], docs["ConfigMap"])
        env = env_of(sidecar(docs["Deployment"]))
        ref = env["DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == docs["Secret"]["metadata"]["name"]
        options = settings.kafka.client_options()
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_plain_username"] == "from-secret"
        assert settings.is_configured("fraud")

    def test_kubernetes_schemas(self, k8s_validate: Any) -> None:
        for doc in self.docs():
            if doc["kind"] != "ServiceMonitor":
                k8s_validate.validate(doc, K8S_VERSION, strict=True)

    def test_resources_and_caps_are_the_charts_defaults(self) -> None:
        docs = by_kind(self.docs())
        check_sizing(docs, CHART_VALUES["sizing"])
        assert (
            sidecar(docs["Deployment"])["livenessProbe"]["periodSeconds"]
            == CHART_VALUES["livenessProbe"]["periodSeconds"]
        )


class TestDockerfile:
    DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"

    def test_hadolint(self, hadolint: str) -> None:
        proc = subprocess.run(
            [hadolint, str(self.DOCKERFILE)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_content(self) -> None:
        text = self.DOCKERFILE.read_text()
        lines = [line.strip() for line in text.splitlines()]
        assert any(line.startswith("USER 10001") for line in lines), "runs as the chart's uid"
        assert 'ENTRYPOINT ["driftline"' in text
        assert "EXPOSE 8080" in text
        for path in ("pyproject.toml", "detectors", "pipeline", "schemas"):
            assert path in text
        # Every path the image copies exists (the build context is the repository root).
        for line in lines:
            if line.startswith("COPY") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), source
        ignore = (self.DOCKERFILE.parent / "Dockerfile.dockerignore").read_text()
        assert "!pipeline/" in ignore and "!detectors/" in ignore
