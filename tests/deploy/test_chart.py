"""The Helm chart deploy/helm/vitals: deploy/check/kubernetes.sh (helm lint and
kubeconform, offline), and what its manifests must hold, rendered with helm template
for the default values and for ci/all-on-values.yaml."""

from __future__ import annotations

import base64
import copy
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic_settings import BaseSettings

from services.alerts.delivery.channels import parse_channels_file
from services.alerts.rules.ruleset import parse_rules
from services.alerts.settings import AlertsSettings
from services.console.settings import ConsoleSettings
from services.ingest.settings import IngestSettings
from services.scoring.scorecard import load_scorecards
from services.scoring.settings import ScoringSettings
from tests.deploy.promql import ROOT
from tests.support.infra import missing_tool

CHART = ROOT / "deploy" / "helm" / "vitals"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
TOOLS = ROOT / "deploy" / "local" / "tools.sh"
CHECK = ROOT / "deploy" / "check" / "kubernetes.sh"
RELEASE = "vitals"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
RULES_FILE = CHART / "files" / "vitals.rules.yml"
EXAMPLE_RUNBOOKS = "https://vitals.example.com/docs/"
SILENCE = "source:vitals_ingest_silence_threshold_seconds:max"

Manifest = dict[str, Any]

# What each container runs, so which settings classes its VITALS_* variables belong to;
# `vitals migrate` reads the settings of the three services with a database.
CONTAINER_SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "ingest": (IngestSettings,),
    "scoring": (ScoringSettings,),
    "alerts": (AlertsSettings,),
    "console": (ConsoleSettings,),
    "migrate": (IngestSettings, ScoringSettings, AlertsSettings),
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")
JOB_NAMES = {"vitals-ingest", "vitals-scoring", "vitals-alerts", "vitals-console"}

# Settings the chart sets itself (from its own values, the Secret, the pod) or does not
# offer (the console's backtest files), so values.schema.json keeps them out of the
# settings maps. Every other field of a settings class must be settable there.
SET_BY_THE_CHART = {
    "VITALS_ENVIRONMENT",
    "VITALS_LOG_LEVEL",
    "VITALS_KAFKA_BOOTSTRAP_SERVERS",
    "VITALS_TOPIC_PARTITIONS",
    "VITALS_TOPIC_REPLICATION_FACTOR",
    "VITALS_API_KEYS_FILE",
    "VITALS_TRUSTED_PROXIES",
    "VITALS_INGEST_DATABASE_URL",
    "VITALS_INGEST_RAW_TOPICS",
    "VITALS_INGEST_STRIPE_WEBHOOK_SECRETS",
    "VITALS_SCORING_DATABASE_URL",
    "VITALS_SCORING_INSTANCE_ID",
    "VITALS_SCORING_SCORECARDS_PATH",
    "VITALS_ALERTS_DATABASE_URL",
    "VITALS_ALERTS_ROLE",
    "VITALS_ALERTS_RULES_FILE",
    "VITALS_ALERTS_CHANNELS_FILE",
    "VITALS_ALERTS_CERTIFICATES_DIR",
    "VITALS_ALERTS_CONSOLE_URL",
    "VITALS_ALERTS_SECRETS_KEY",
    "VITALS_ALERTS_ADMIN_TOKEN",
    "VITALS_ALERTS_WEBHOOK_URL",
    "VITALS_ALERTS_WEBHOOK_SECRET",
    "VITALS_CONSOLE_SCORING_URL",
    "VITALS_CONSOLE_ALERTS_URL",
    "VITALS_CONSOLE_INGEST_URL",
    "VITALS_CONSOLE_SESSION_KEY",
    "VITALS_CONSOLE_OIDC_ISSUER",
    "VITALS_CONSOLE_OIDC_CLIENT_ID",
    "VITALS_CONSOLE_OIDC_CLIENT_SECRET",
    "VITALS_CONSOLE_OIDC_ACT_GROUP",
    "VITALS_CONSOLE_API_KEY",
    "VITALS_CONSOLE_BACKTEST_REPORT",
    "VITALS_CONSOLE_BACKTEST_CHART",
}

# Credentials the services accept, for loading the rendered settings: what a Secret
# made beforehand would hold.
VALID_CREDENTIALS = {
    "VITALS_INGEST_DATABASE_URL": "postgresql+asyncpg://ingest:pw@postgres:5432/vitals",
    "VITALS_SCORING_DATABASE_URL": "postgresql+asyncpg://scoring:pw@postgres:5432/vitals",
    "VITALS_ALERTS_DATABASE_URL": "postgresql+asyncpg://alerts:pw@postgres:5432/vitals",
    "VITALS_ALERTS_SECRETS_KEY": Fernet.generate_key().decode(),
    "VITALS_ALERTS_ADMIN_TOKEN": "k3Vq9Zr2Lm8Xw4Ty7Pn1Hs6Jd0Gf5Ca2",
    "VITALS_ALERTS_WEBHOOK_URL": "https://hooks.example.com/vitals",
    "VITALS_ALERTS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "VITALS_INGEST_STRIPE_WEBHOOK_SECRETS": "whsec_one,whsec_two",
    "VITALS_CONSOLE_SESSION_KEY": Fernet.generate_key().decode(),
    "VITALS_CONSOLE_OIDC_CLIENT_SECRET": "oidc-client-secret",
    "VITALS_CONSOLE_API_KEY": "vk_abcdefgh_0123456789",
}
# What the CI values' channels file names with ${NAME}.
CHANNEL_ENVIRONMENT = {
    "SLACK_CS_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "CRM_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


@dataclass(frozen=True)
class ChartTools:
    helm: str
    kubeconform: str
    schema_location: str
    kubernetes_versions: list[str]
    env: dict[str, str]


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> ChartTools:
    """helm, kubeconform and the schemas from deploy/local/tools.sh."""
    found = subprocess.run([TOOLS, "check"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        missing_tool(f"the chart tools are missing (make deploy-tools): {found.stderr.strip()}")
    printed = subprocess.run([TOOLS, "env"], capture_output=True, text=True, check=True).stdout
    values = dict(word.split("=", 1) for word in shlex.split(printed))
    # Helm's own folders (repositories, plugins): none is needed, the user's stay untouched.
    helm_home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update({f"HELM_{kind}_HOME": str(helm_home / kind) for kind in ("CACHE", "CONFIG", "DATA")})
    return ChartTools(
        helm=values["HELM"],
        kubeconform=values["KUBECONFORM"],
        schema_location=values["KUBERNETES_SCHEMAS"]
        + "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}"
        + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        kubernetes_versions=values["KUBERNETES_VERSIONS"].split(),
        env=env,
    )


def helm_template(tools: ChartTools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tools.helm, "template", RELEASE, str(CHART), "--namespace", "vitals", *args],
        capture_output=True,
        text=True,
        env=tools.env,
        check=False,
    )


def render(tools: ChartTools, *args: str) -> list[Manifest]:
    rendered = helm_template(tools, *args)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.fixture(scope="module")
def default_manifests(tools: ChartTools) -> list[Manifest]:
    return render(tools)


@pytest.fixture(scope="module")
def all_on_manifests(tools: ChartTools) -> list[Manifest]:
    return render(
        tools,
        "--values",
        str(ALL_ON),
        "--api-versions",
        SERVICE_MONITOR_API,
        "--api-versions",
        PROMETHEUS_RULE_API,
    )


@pytest.fixture(params=["default", "all-on"])
def manifests(
    request: pytest.FixtureRequest,
    default_manifests: list[Manifest],
    all_on_manifests: list[Manifest],
) -> list[Manifest]:
    return default_manifests if request.param == "default" else all_on_manifests


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    return found


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(manifests: list[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    for workload in manifests:
        if workload["kind"] in WORKLOADS:
            for container in pod_spec(workload)["containers"]:
                yield workload, container


def is_hook(manifest: Manifest) -> bool:
    return "helm.sh/hook" in manifest["metadata"].get("annotations", {})


def environment(container: dict[str, Any], manifests: list[Manifest]) -> dict[str, Any]:
    """The container's variables: its env entries (value or valueFrom as given) after the
    ConfigMaps it takes whole."""
    variables: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = named(manifests, "ConfigMap", source["configMapRef"]["name"])["data"]
            variables.update(data)
    for entry in container.get("env", []):
        variables[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return variables


# --- the offline checks --------------------------------------------------------------


def test_check_script_passes_lint_and_kubeconform(tools: ChartTools) -> None:
    checked = subprocess.run([CHECK], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    summaries = [line for line in checked.stdout.splitlines() if line.startswith("Summary:")]
    # Default values and every ci/*-values.yaml, each for every pinned Kubernetes version.
    value_sets = 1 + len(list((CHART / "ci").glob("*-values.yaml")))
    assert len(summaries) == value_sets * len(tools.kubernetes_versions), checked.stdout
    for summary in summaries:
        found = re.search(
            r"(\d+) resources found .* Valid: (\d+), Invalid: 0, Errors: 0, Skipped: 0$", summary
        )
        assert found, summary
        assert int(found[1]) == int(found[2]) > 0, summary


def test_kubeconform_refuses_unknown_fields_and_kinds(
    tools: ChartTools, all_on_manifests: list[Manifest]
) -> None:
    """The schemas are offline and strict: a misspelt field of a pod spec or of a
    ServiceMonitor, and a kind nobody has a schema for, fail the check."""
    deployment = copy.deepcopy(named(all_on_manifests, "Deployment", "vitals-ingest"))
    pod_spec(deployment)["containers"][0]["livenessProbe"]["periodSecond"] = 3
    monitor = copy.deepcopy(named(all_on_manifests, "ServiceMonitor", "vitals"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    for version in tools.kubernetes_versions:
        checked = subprocess.run(
            [
                tools.kubeconform,
                "-strict",
                "-summary",
                "-kubernetes-version",
                version,
                "-schema-location",
                tools.schema_location,
            ],
            input=yaml.safe_dump_all([deployment, monitor, unknown]),
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 1, checked.stdout
        assert "additional properties 'periodSecond' not allowed" in checked.stdout
        assert "additional properties 'intervall' not allowed" in checked.stdout
        assert "could not find schema for Widget" in checked.stdout


# --- what the manifests hold ---------------------------------------------------------


def test_chart_deploys_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]


def test_scoring_is_a_statefulset_whose_pods_are_their_group_members(
    manifests: list[Manifest],
) -> None:
    assert not [m for m in of_kind(manifests, "Deployment") if "scoring" in m["metadata"]["name"]]
    scoring = named(manifests, "StatefulSet", "vitals-scoring")
    [container] = pod_spec(scoring)["containers"]
    [instance_id] = [e for e in container["env"] if e["name"] == "VITALS_SCORING_INSTANCE_ID"]
    assert instance_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    headless = named(manifests, "Service", scoring["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == scoring["spec"]["selector"]["matchLabels"]
    assert named(manifests, "Service", "vitals-scoring")["spec"].get("clusterIP") != "None"


def test_alerts_run_as_a_consume_and_a_dispatch_deployment(manifests: list[Manifest]) -> None:
    roles = {}
    for role in ("consume", "dispatch"):
        deployment = named(manifests, "Deployment", f"vitals-alerts-{role}")
        [container] = pod_spec(deployment)["containers"]
        roles[role] = environment(container, manifests)
        assert roles[role]["VITALS_ALERTS_ROLE"] == role
    # Only the consumer talks to the broker.
    assert "VITALS_KAFKA_BOOTSTRAP_SERVERS" in roles["consume"]
    assert "VITALS_KAFKA_BOOTSTRAP_SERVERS" not in roles["dispatch"]


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(manifests: list[Manifest]) -> None:
    job = named(manifests, "Job", "vitals-migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "helm.sh/hook-weight" in annotations
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    [container] = pod_spec(job)["containers"]
    assert container["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_the_migration_hook_needs_nothing_the_release_makes_after_it(
    manifests: list[Manifest],
) -> None:
    """On a first install the hooks run before the release's own objects exist: whatever
    the Job reads is a hook of lower weight or was made beforehand."""
    job = named(manifests, "Job", "vitals-migrate")
    spec = pod_spec(job)
    made_later = {
        (m["kind"], m["metadata"]["name"])
        for m in manifests
        if m["kind"] in ("Secret", "ConfigMap", "ServiceAccount") and not is_hook(m)
    }
    [container] = spec["containers"]
    read: set[tuple[str, str]] = set()
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            read.add(("Secret", ref["name"]))
    for source in container.get("envFrom", []):
        read |= {("ConfigMap", s["name"]) for k, s in source.items() if k == "configMapRef"}
        read |= {("Secret", s["name"]) for k, s in source.items() if k == "secretRef"}
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            read.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume:
            read.add(("ConfigMap", volume["configMap"]["name"]))
    read.add(("ServiceAccount", spec.get("serviceAccountName", "default")))
    assert any(kind == "Secret" for kind, _ in read)
    assert not read & made_later
    job_weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    for kind, name in read:
        hooks = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
        for hook in hooks:
            assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight
            assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_every_service_container_probes_health_and_readiness(manifests: list[Manifest]) -> None:
    checked = 0
    for workload, container in containers(manifests):
        if workload["kind"] == "Job":
            continue
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http = container[probe]["httpGet"]
            assert http["path"] == path, (workload["metadata"]["name"], probe)
            assert http["port"] in ports, (workload["metadata"]["name"], probe)
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        checked += 1
    assert checked == 5  # ingest, scoring, alerts consume and dispatch, console


def test_every_container_runs_as_non_root_on_a_read_only_root(manifests: list[Manifest]) -> None:
    for workload, container in containers(manifests):
        name = workload["metadata"]["name"]
        pod_security = pod_spec(workload)["securityContext"]
        security = container["securityContext"]
        assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, name
        assert pod_security["runAsUser"] != 0, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", name
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], name
        assert set(container["resources"]) == {"requests", "limits"}, name


def test_every_setting_variable_is_a_field_of_its_service(manifests: list[Manifest]) -> None:
    for workload, container in containers(manifests):
        fields = {
            f"VITALS_{field.upper()}"
            for settings in CONTAINER_SETTINGS[container["name"]]
            for field in settings.model_fields
        }
        names = {name for name in environment(container, manifests) if name.startswith("VITALS_")}
        assert names, workload["metadata"]["name"]
        unknown = names - fields
        assert not unknown, f"{workload['metadata']['name']}: not settings: {sorted(unknown)}"


@pytest.mark.parametrize("values", ["default", "all-on"])
def test_each_service_accepts_its_rendered_settings(
    values: str,
    tools: ChartTools,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each container's variables, as rendered, load into its service's settings (in
    production): the files they name are the ConfigMaps and Secret mounted where they
    point, the credentials what a Secret would hold."""
    args = ["--values", str(ALL_ON)] if values == "all-on" else []
    manifests = render(tools, *args)
    for name in [n for n in os.environ if n.startswith("VITALS_")]:
        monkeypatch.delenv(name)
    for workload, container in containers(manifests):
        root = tmp_path / workload["metadata"]["name"]
        mounted = mount_files(workload, container, manifests, root)
        with monkeypatch.context() as patch:
            for name, value in environment(container, manifests).items():
                patch.setenv(name, resolved(name, value, mounted))
            for settings in CONTAINER_SETTINGS[container["name"]]:
                loaded = settings()
                assert getattr(loaded, "environment", None) == "production"


def mount_files(
    workload: Manifest, container: dict[str, Any], manifests: list[Manifest], root: Path
) -> dict[str, Path]:
    """Writes the container's ConfigMap and Secret volumes under ``root``; mount path ->
    where it is. Secrets made outside the chart are stood in for."""
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    mounted = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True)
        files: dict[str, str] = {}
        if "configMap" in volume:
            files = named(manifests, "ConfigMap", volume["configMap"]["name"])["data"]
        elif "secret" in volume:
            files = secret_files(volume["secret"], manifests)
        for file, content in files.items():
            (folder / file).write_text(content)
        mounted[mount["mountPath"]] = folder
    return mounted


def secret_files(source: dict[str, Any], manifests: list[Manifest]) -> dict[str, str]:
    """A Secret volume's files from the chart's Secret; a Secret made beforehand stands
    for an API keys file without keys (the certificates' holds no items)."""
    made = [
        m for m in of_kind(manifests, "Secret") if m["metadata"]["name"] == source["secretName"]
    ]
    data = {k: base64.b64decode(v).decode() for k, v in made[0]["data"].items()} if made else {}
    return {item["path"]: data.get(item["key"], "keys: []\n") for item in source.get("items", [])}


def resolved(name: str, value: Any, mounted: dict[str, Path]) -> str:
    if isinstance(value, dict):
        if "secretKeyRef" in value:
            return VALID_CREDENTIALS[value["secretKeyRef"]["key"]]
        assert value == {"fieldRef": {"fieldPath": "metadata.name"}}, name
        return "vitals-scoring-0"
    text = str(value)
    for mount_path, folder in mounted.items():
        if text == mount_path or text.startswith(mount_path + "/"):
            return str(folder) + text[len(mount_path) :]
    return text


@pytest.mark.parametrize(
    ("values", "expected"), [("default", ""), ("all-on", "10.0.0.0/8,fd00:10::/64")]
)
def test_every_service_with_an_api_trusts_the_proxies_in_trusted_proxies_alone(
    values: str, expected: str, default_manifests: list[Manifest], all_on_manifests: list[Manifest]
) -> None:
    """VITALS_TRUSTED_PROXIES, never uvicorn's FORWARDED_ALLOW_IPS, on every container
    serving HTTP; the services refuse an entry that is no address or network (see
    test_each_service_accepts_its_rendered_settings)."""
    manifests = default_manifests if values == "default" else all_on_manifests
    trusted = {}
    for workload, container in containers(manifests):
        variables = environment(container, manifests)
        assert "FORWARDED_ALLOW_IPS" not in variables, workload["metadata"]["name"]
        if "ports" in container:
            trusted[workload["metadata"]["name"]] = variables.get("VITALS_TRUSTED_PROXIES")
    assert trusted == {
        name: expected
        for name in (
            "vitals-ingest",
            "vitals-scoring",
            "vitals-alerts-consume",
            "vitals-alerts-dispatch",
            "vitals-console",
        )
    }


def test_files_given_as_values_reach_the_services_as_given(
    all_on_manifests: list[Manifest], tmp_path: Path
) -> None:
    values = yaml.safe_load(ALL_ON.read_text())
    files = named(all_on_manifests, "ConfigMap", "vitals-alerts-files")["data"]
    assert yaml.safe_load(files["rules.yaml"]) == yaml.safe_load(values["alerts"]["rules"])
    assert parse_rules(yaml.safe_load(files["rules.yaml"])).rules
    channels, _ = parse_channels_file(
        yaml.safe_load(files["channels.yaml"]), "channels.yaml", CHANNEL_ENVIRONMENT
    )
    assert {channel.id for channel in channels} == {"cs-slack", "crm"}
    scorecards = named(all_on_manifests, "ConfigMap", "vitals-scorecards")["data"]
    for file, content in scorecards.items():
        (tmp_path / file).write_text(content)
    assert [card.id for card in load_scorecards(tmp_path).all] == ["usage_only"]


def test_the_hpa_scales_the_ingest_deployment(manifests: list[Manifest]) -> None:
    [hpa] = of_kind(manifests, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "vitals-ingest",
    )
    assert named(manifests, "Deployment", "vitals-ingest")
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # The HPA owns the replica count: the Deployment states none to fight it with.
    assert "replicas" not in named(manifests, "Deployment", "vitals-ingest")["spec"]


def test_secret_values_reach_pods_only_through_secrets(all_on_manifests: list[Manifest]) -> None:
    secrets = yaml.safe_load(ALL_ON.read_text())["secrets"]["values"]
    plain = [m for m in all_on_manifests if m["kind"] != "Secret"]
    rendered = yaml.safe_dump_all(plain)
    for key, value in secrets.items():
        assert value, key
        for line in value.splitlines():
            assert line.strip() not in rendered, f"secrets.values.{key} outside a Secret"
    for workload, container in containers(all_on_manifests):
        for entry in container.get("env", []):
            if entry["name"] in VALID_CREDENTIALS:
                assert "value" not in entry, (workload["metadata"]["name"], entry["name"])
                assert entry["valueFrom"]["secretKeyRef"]["key"] == entry["name"]
    made = {k for m in of_kind(all_on_manifests, "Secret") for k in m.get("data", {})}
    assert set(VALID_CREDENTIALS) <= made


def test_the_service_monitor_names_the_jobs_the_dashboards_use(
    tools: ChartTools, all_on_manifests: list[Manifest], default_manifests: list[Manifest]
) -> None:
    monitor = named(all_on_manifests, "ServiceMonitor", "vitals")
    selector = monitor["spec"]["selector"]
    job_label = monitor["spec"]["jobLabel"]
    endpoint_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}

    def selected(service: Manifest) -> bool:
        labels = service["metadata"]["labels"]
        return selector["matchLabels"].items() <= labels.items() and all(
            expression["operator"] == "Exists" and expression["key"] in labels
            for expression in selector["matchExpressions"]
        )

    services = [s for s in of_kind(all_on_manifests, "Service") if selected(s)]
    assert {s["metadata"]["labels"][job_label] for s in services} == JOB_NAMES
    assert len(services) == len(JOB_NAMES)  # each pod scraped once: no headless Service
    for service in services:
        assert endpoint_ports <= {port["name"] for port in service["spec"]["ports"]}
    # Made only where the cluster serves the API (metrics.serviceMonitor.enabled is on).
    assert not of_kind(render(tools, "--values", str(ALL_ON)), "ServiceMonitor")
    assert not of_kind(default_manifests, "ServiceMonitor")


def _rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def test_the_prometheus_rule_is_the_rules_file_with_the_values_runbooks_and_thresholds(
    tools: ChartTools, all_on_manifests: list[Manifest], promtool: str, tmp_path: Path
) -> None:
    groups = named(all_on_manifests, "PrometheusRule", "vitals")["spec"]["groups"]
    shipped = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    base = "https://git.example.com/acme/vitals/-/blob/main/docs/"

    assert [g["name"] for g in groups] == [g["name"] for g in shipped]
    expected_alerts = [rule for rule in _rules(shipped) if "alert" in rule]
    for rule in expected_alerts:
        rule["annotations"]["runbook_url"] = rule["annotations"]["runbook_url"].replace(
            EXAMPLE_RUNBOOKS, base
        )
    assert [rule for rule in _rules(groups) if "alert" in rule] == expected_alerts
    assert all(base in rule["annotations"]["runbook_url"] for rule in expected_alerts)
    thresholds = {
        rule["labels"]["source"]: rule["expr"]
        for rule in _rules(groups)
        if rule.get("record") == SILENCE
    }
    assert thresholds == {"*": "vector(7200)", "stripe": "vector(86400)", "segment": "vector(3600)"}
    rendered = tmp_path / "rendered.rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_without_a_runbook_base_url_the_alerts_carry_no_runbook_url(tools: ChartTools) -> None:
    args = ["--api-versions", PROMETHEUS_RULE_API, "--set", "metrics.prometheusRule.enabled=true"]
    manifests = render(tools, *args)
    groups = named(manifests, "PrometheusRule", "vitals")["spec"]["groups"]
    alerts = [rule for rule in _rules(groups) if "alert" in rule]

    assert alerts
    assert not [rule["alert"] for rule in alerts if "runbook_url" in rule["annotations"]]
    thresholds = [rule for rule in _rules(groups) if rule.get("record") == SILENCE]
    assert thresholds == [{"record": SILENCE, "expr": "vector(21600)", "labels": {"source": "*"}}]
    # Made only where the cluster serves the API, and when asked for.
    assert not of_kind(
        render(tools, "--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule"
    )
    assert not of_kind(render(tools, "--api-versions", PROMETHEUS_RULE_API), "PrometheusRule")


def test_a_changed_setting_rolls_only_the_pods_that_read_it(tools: ChartTools) -> None:
    before = render(tools)
    after = render(tools, "--set", "ingest.settings.VITALS_INGEST_MAX_BATCH_EVENTS=100")

    def annotations(manifests: list[Manifest], kind: str, name: str) -> dict[str, str]:
        found: dict[str, str] = named(manifests, kind, name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        return found

    ingest = annotations(before, "Deployment", "vitals-ingest")
    assert ingest != annotations(after, "Deployment", "vitals-ingest")
    assert any(key.startswith("checksum/") for key in ingest)
    scoring = annotations(before, "StatefulSet", "vitals-scoring")
    assert scoring == annotations(after, "StatefulSet", "vitals-scoring")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "secrets.create=true"], "secrets.values.ingestDatabaseUrl is required"),
        (["--set", "secrets.values.alertsSecretsKey=x"], "set secrets.create: true"),
        (["--set", "ingest.settings.VITALS_INGEST_MAX_BATCH_EVENT=5"], "MAX_BATCH_EVENT"),
        (["--set", "scoring.settings.VITALS_SCORING_INSTANCE_ID=x"], "SCORING_INSTANCE_ID"),
        (["--set", "ingest.extraEnv[0].name=VITALS_LOG_LEVEL"], "extraEnv"),
        (["--set", "podSecurityContext.runAsNonRoot=false"], "runAsNonRoot"),
        (["--set", "console.oidc.issuer=https://login.example.com"], "clientId"),
        (["--set", "ingest.forwardedAllowIps=10.0.0.0/8"], "set trustedProxies: [10.0.0.0/8]"),
        (["--set", "trustedProxies={*}"], "trustedProxies"),
        (["--set", "alerts.consume.extraEnv[0].name=FORWARDED_ALLOW_IPS"], "extraEnv"),
    ],
)
def test_the_chart_refuses_values_it_cannot_deploy(
    tools: ChartTools, args: list[str], message: str
) -> None:
    refused = helm_template(tools, *args)
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def test_the_values_schema_offers_exactly_the_settings_the_chart_does_not_set() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    properties = schema["properties"]
    offered = {
        "every service": properties["settings"],
        "ingest": properties["ingest"]["properties"]["settings"],
        "scoring": properties["scoring"]["properties"]["settings"],
        "alerts": properties["alerts"]["properties"]["settings"],
        "alerts consume": properties["alerts"]["properties"]["consume"]["properties"]["settings"],
        "alerts dispatch": properties["alerts"]["properties"]["dispatch"]["properties"]["settings"],
        "console": properties["console"]["properties"]["settings"],
    }
    classes: dict[str, tuple[type[BaseSettings], ...]] = {
        "every service": (IngestSettings, ScoringSettings, AlertsSettings, ConsoleSettings),
        "ingest": (IngestSettings,),
        "scoring": (ScoringSettings,),
        "alerts": (AlertsSettings,),
        "alerts consume": (AlertsSettings,),
        "alerts dispatch": (AlertsSettings,),
        "console": (ConsoleSettings,),
    }
    for where, settings_map in offered.items():
        assert settings_map["additionalProperties"] is False, where
        names = set(settings_map["properties"])
        fields = [{f"VITALS_{f.upper()}" for f in c.model_fields} for c in classes[where]]
        # "every service": a field of each class; a service's map: a field of that class.
        expected = set.intersection(*fields) - SET_BY_THE_CHART
        assert names == expected, f"{where}: missing {expected - names}, unknown {names - expected}"
