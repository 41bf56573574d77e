"""The static stack files: docker-compose.yml, the Dockerfile, the Kubernetes manifests and
the Grafana dashboards. Fast, no network, no Docker engine: `docker-compose config` and
`promtool check rules` run only on the files (skipped with the reason when not installed)."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from authload import cli
from authload import metric_names as names
from tests.helpers.tools import tool_path

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
GRAFANA = ROOT / "dashboards" / "grafana"
PROVISIONING = GRAFANA / "provisioning"
RULES = ROOT / "dashboards" / "prometheus" / "rules.yml"
TARGETS = ROOT / "deploy" / "targets.yaml"
DASHBOARDS = ["authload-run.json", "authload-mock.json", "authload-soak-trends.json"]
K8S_VERSION = "1.31.0"  # the Kubernetes the manifests must validate against (strict)

AUTHLOAD_SERVICES = {"mock", "master", "worker"}
COMPOSE_SERVICES = AUTHLOAD_SERVICES | {"redis", "prometheus", "pushgateway", "grafana"}
# what a refused command line most likely lacks: the distributed verbs and flags
DISTRIBUTED_CLI = "`authload worker`, `authload run --expect-workers/--master-bind-host`"


# -- helpers ---------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR} with the environment unset."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = _load_yaml(COMPOSE)
    return data


def _service_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "write commands as lists: no shell splitting"
    return [_interpolate(str(part)) for part in command]


def _parse_cli(argv: list[str], where: str) -> argparse.Namespace:
    """Parse a command line with authload's own parser; a failure names the command."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return cli.build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(
            f"{where}: `authload {' '.join(argv)}` is refused by the CLI parser "
            f"(needs {DISTRIBUTED_CLI}?):\n{err.getvalue()}"
        )


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to the repo) of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            out[target] = source
    return out


def _host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repo path a container path of a service is bind-mounted from, if any."""
    path = PurePosixPath(container_path)
    for target, source in _mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return ROOT / source / path.relative_to(target)
    return None


# -- docker-compose.yml ----------------------------------------------------------------------


@pytest.mark.tools("docker-compose")
def test_compose_config_is_valid() -> None:
    result = subprocess.run(
        [tool_path("docker-compose"), "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_has_the_stack() -> None:
    services = _compose()["services"]
    assert set(services) == COMPOSE_SERVICES
    for name in AUTHLOAD_SERVICES:
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == "authload:local", name
    # scalable with --scale worker=N: no fixed name, no host port
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]
    # a worker exits 0 after each run and is restarted for the next; a restarted master
    # would run the scenario again
    assert services["worker"]["restart"] == "unless-stopped"
    assert "restart" not in services["master"]
    for name in ("master", "worker"):
        assert "runs:/runs" in services[name]["volumes"], name
    assert "runs" in _compose()["volumes"]
    worker_env = services["worker"]["environment"]
    assert worker_env["AUTHLOAD_METRICS_PORT"] == "9647"
    assert worker_env["AUTHLOAD_METRICS_PORT_MODE"] == "fixed"
    assert services["master"]["environment"]["AUTHLOAD_METRICS_PORT"] == "9646"
    # the variables are those the code reads
    for name in ("master", "worker"):
        for variable in services[name]["environment"]:
            if variable.startswith("AUTHLOAD_METRICS_"):
                assert variable in _metrics_variables(), variable
    from authload.run.pushgateway import PUSHGATEWAY_ENV

    assert services["master"]["environment"][PUSHGATEWAY_ENV] == "http://pushgateway:9091"
    # host ports only on the loopback interface
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_compose_mock_command() -> None:
    argv = _service_command(_compose()["services"]["mock"])
    args = _parse_cli(argv, "docker-compose.yml mock")
    assert args.command == "mock"
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 8080, 4)
    assert args.store == "redis://redis:6379/0"


def test_compose_master_command() -> None:
    argv = _service_command(_compose()["services"]["master"])
    args = _parse_cli(argv, "docker-compose.yml master")
    assert args.command == "run"
    assert (ROOT / args.scenario).is_file(), args.scenario
    assert args.targets == "deploy/targets.yaml"
    assert args.target == "compose-mock"
    assert args.out == "/runs"
    assert int(args.expect_workers) == 2
    assert args.master_bind_host == "0.0.0.0"


def test_compose_worker_command() -> None:
    argv = _service_command(_compose()["services"]["worker"])
    args = _parse_cli(argv, "docker-compose.yml worker")
    assert args.command == "worker"
    assert args.master_host == "master"


def _target_hosts(name: str) -> set[tuple[str, int]]:
    """(host, port) of every URL of a target of deploy/targets.yaml; it must be a mock."""
    from authload.run.targets import resolve_target

    target = resolve_target(name, TARGETS)
    assert target.mock and not target.embedded, f"{name}: a running mock"
    urls = {*target.urls(), target.control_url()}
    hosts = set()
    for url in urls:
        parsed = urlsplit(url)
        assert parsed.scheme == "http" and parsed.hostname and parsed.port, url
        hosts.add((parsed.hostname, parsed.port))
    return hosts


def test_compose_target_calls_the_mock_service() -> None:
    argv = _service_command(_compose()["services"]["master"])
    target = argv[argv.index("--target") + 1]
    mock = _parse_cli(_service_command(_compose()["services"]["mock"]), "mock")
    assert _target_hosts(target) == {("mock", mock.port)}


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for target, source in _mounts(service).items():
            assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target})"


def test_compose_prometheus_config_exists() -> None:
    """Prometheus reads dashboards/prometheus/prometheus-compose.yml (same issue)."""
    service = _compose()["services"]["prometheus"]
    flags = dict(str(f).split("=", 1) for f in service["command"] if "=" in str(f))
    config = _host_path(service, flags["--config.file"])
    assert config is not None and config.is_file(), f"{flags['--config.file']} -> {config}"


def test_grafana_provisioning_points_at_existing_paths() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    assert _host_path(grafana, "/etc/grafana/provisioning") == ROOT / (
        "./dashboards/grafana/provisioning"
    )
    datasources = _load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [d["url"] for d in datasources] == ["http://prometheus:9090"]
    assert "prometheus" in services
    providers = _load_yaml(PROVISIONING / "dashboards" / "authload.yml")["providers"]
    for provider in providers:
        host = _host_path(grafana, provider["options"]["path"])
        assert host is not None and host.resolve() == GRAFANA.resolve(), provider
        for name in DASHBOARDS:
            assert (host / name).is_file(), name
    home = _host_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


# -- Dockerfile ------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [
        line
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def test_dockerfile_base_image_is_pinned() -> None:
    stages: set[str] = set()
    bases = []
    for instruction, rest in _dockerfile():
        if instruction == "FROM":
            image, *alias = rest.split()
            if image not in stages:
                bases.append(image)
            if alias:
                stages.add(alias[-1])
    assert bases
    for image in bases:
        # a Python 3.11 slim image with its Debian release (or a digest), never `latest`
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), (
            image
        )


def test_dockerfile_installs_from_the_lock() -> None:
    instructions = _dockerfile()
    copies = " ".join(rest for i, rest in instructions if i == "COPY")
    assert "uv.lock" in copies
    syncs = [rest for i, rest in instructions if i == "RUN" and "uv sync" in rest]
    assert syncs and all("--frozen" in s or "--locked" in s for s in syncs), syncs
    assert all("--no-dev" in s for s in syncs), "the image has no dev dependencies"
    assert any(re.search(r"uv==\d+\.\d+\.\d+", rest) for i, rest in instructions if i == "RUN")


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = PurePosixPath(path.rstrip("/")).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for pattern in patterns for prefix in prefixes)


def test_dockerfile_copies_only_existing_paths() -> None:
    ignore = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for instruction, rest in _dockerfile():
        if instruction in {"COPY", "ADD"}:
            words = [w for w in rest.split() if not w.startswith("--")]
            if "--from=" in rest:
                continue  # from a build stage
            sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not _ignored(source, ignore), f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_runs_as_non_root_with_the_authload_entrypoint() -> None:
    instructions = _dockerfile()
    users = [rest for i, rest in instructions if i == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # the USER comes after the last FROM: it applies to the final image
    last_from = max(n for n, (i, _) in enumerate(instructions) if i == "FROM")
    assert any(i == "USER" for i, _ in instructions[last_from:])
    entrypoints = [rest for i, rest in instructions if i == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["authload"]


# -- Kubernetes ------------------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _resources() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield path.name, doc


def _pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, doc in _resources():
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind in {"Deployment", "Job"}:
            yield f"{kind}/{doc['metadata']['name']}", spec["template"]
        elif kind == "CronJob":
            yield f"{kind}/{doc['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]


def _authload_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, template in _pod_templates():
        for container in template["spec"]["containers"]:
            if container["image"].split(":")[0].endswith("authload"):
                yield f"{where}/{container['name']}", container


@pytest.mark.parametrize("name", [p.name for p in _manifest_files()])
def test_manifest_validates(name: str) -> None:
    text = (K8S / name).read_text(encoding="utf-8")
    assert text.startswith("#") and "kubectl apply" in text.split("\napiVersion", 1)[0], (
        "start with a comment saying how to apply"
    )
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs
    for doc in docs:
        assert "namespace" not in doc["metadata"], "manifests are namespace-less"
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_kustomization_lists_every_manifest() -> None:
    text = (K8S / "kustomization.yaml").read_text(encoding="utf-8")
    assert text.startswith("#") and "kubectl apply -k deploy/k8s" in text
    kustomization = yaml.safe_load(text)
    assert sorted(kustomization["resources"]) == [p.name for p in _manifest_files()]


def test_k8s_has_the_stack() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _resources()}
    assert {
        ("Deployment", "authload-redis"),
        ("Service", "authload-redis"),
        ("Deployment", "authload-mock"),
        ("Service", "authload-mock"),
        ("Job", "authload-master"),
        ("Service", "authload-master"),
        ("Deployment", "authload-worker"),
        ("ConfigMap", "authload-scenarios"),
        ("PersistentVolumeClaim", "authload-runs"),
        ("CronJob", "authload-soak"),
    } <= kinds
    pvc = next(d for _, d in _resources() if d["kind"] == "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert _service_ports("authload-master") == {5557, 9646}


def _service_ports(name: str) -> set[int]:
    """The ports of the Service called `name` in the manifests (empty: no such Service)."""
    for _, doc in _resources():
        if (doc["kind"], doc["metadata"]["name"]) == ("Service", name):
            return {int(p["port"]) for p in doc["spec"]["ports"]}
    return set()


def test_k8s_commands_parse() -> None:
    seen = {}
    for where, container in _authload_containers():
        assert "command" not in container, f"{where}: the image's entrypoint is authload"
        args = _parse_cli([str(a) for a in container["args"]], where)
        seen[args.command] = args
        if args.command == "mock":
            store = urlsplit(args.store)
            assert store.port in _service_ports(str(store.hostname)), args.store
        if args.command == "run":
            assert (ROOT / args.scenario).is_file(), args.scenario
            assert args.out == "/runs"
            assert args.targets == "deploy/targets.yaml"
            # the target's URLs are the mock's Service
            for host, port in _target_hosts(args.target):
                assert port in _service_ports(host), (args.target, host, port)
        if args.command == "worker":
            assert args.master_port in _service_ports(args.master_host), args.master_host
    assert {"mock", "run", "worker"} <= set(seen)


def test_k8s_master_and_workers_agree() -> None:
    job = next(c for w, c in _authload_containers() if w.startswith("Job/"))
    args = _parse_cli([str(a) for a in job["args"]], "Job/authload-master")
    workers = next(
        d
        for _, d in _resources()
        if (d["kind"], d["metadata"]["name"]) == ("Deployment", "authload-worker")
    )
    assert int(args.expect_workers) == workers["spec"]["replicas"]
    assert args.master_bind_host == "0.0.0.0"


def test_k8s_pods_carry_scrape_annotations() -> None:
    for where, template in _pod_templates():
        if where == "Deployment/authload-redis":
            continue
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", where
        assert annotations["prometheus.io/path"] == "/metrics", where
        ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, where


def test_k8s_services_select_pods() -> None:
    templates = dict(_pod_templates())
    for _, doc in _resources():
        if doc["kind"] != "Service":
            continue
        selector = doc["spec"]["selector"].items()
        matching = [t for t in templates.values() if selector <= t["metadata"]["labels"].items()]
        assert len(matching) == 1, doc["metadata"]["name"]
        port_names = {p["name"] for c in matching[0]["spec"]["containers"] for p in c["ports"]}
        for port in doc["spec"]["ports"]:
            assert port["targetPort"] in port_names, (doc["metadata"]["name"], port)


def test_k8s_run_directories_on_the_shared_volume() -> None:
    for where, template in _pod_templates():
        if not where.startswith(("Job/", "CronJob/", "Deployment/authload-worker")):
            continue
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {
            m["mountPath"]: m["name"]
            for c in template["spec"]["containers"]
            for m in c["volumeMounts"]
        }
        assert volumes[mounts["/runs"]]["persistentVolumeClaim"]["claimName"] == "authload-runs"
        assert volumes[mounts["/app/scenarios"]]["configMap"]["name"] == "authload-scenarios"


def test_k8s_soak_cronjob() -> None:
    cronjob = next(d for _, d in _resources() if d["kind"] == "CronJob")
    assert cronjob["metadata"]["name"] == "authload-soak"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    container = next(c for w, c in _authload_containers() if w.startswith("CronJob/"))
    args = [str(a) for a in container["args"]]
    assert args[:4] == ["run", "scenarios/soak.yaml", "--duration", "28800"]
    deadline = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert deadline > 28800


def test_k8s_scenarios_configmap_is_scenarios_dir() -> None:
    configmap = next(d for _, d in _resources() if d["kind"] == "ConfigMap")
    files = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "scenarios").glob("*.yaml")}
    assert configmap["data"] == files, (
        "deploy/k8s/scenarios-configmap.yaml differs from scenarios/: regenerate it (see its "
        "header)"
    )


# -- Grafana dashboards ----------------------------------------------------------------------

ALLOWED_VARIABLES = {"scenario", "run", "endpoint", "__rate_interval", "__interval", "__range"}
SELECTION_VARIABLES = {"scenario", "run", "endpoint"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"offset", "and", "or", "unless", "inf", "nan"}
# what Grafana puts in place of its variables, for promtool
SUBSTITUTES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def _known_metrics() -> set[str]:
    """Every series name the exporters expose, from metric_names.py (by its type comment),
    and the recording rules of rules.yml."""
    source = Path(names.__file__).read_text(encoding="utf-8")
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    known = set()
    for constant, kind in re.findall(
        r"^([A-Z_]+) = \"authload_\w+\"\s*#\s*(counter|gauge|histogram)", source, re.M
    ):
        known |= {getattr(names, constant) + suffix for suffix in suffixes[kind]}
    for group in _load_yaml(RULES)["groups"]:
        known |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return known


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    s = re.sub(r"\{[^{}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\w+", "", s)
    found = set()
    for match in re.finditer(r"(?<![\w.:$])[a-zA-Z_:][\w:]*", s):
        word = match.group(0)
        if s[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_WORDS:
            continue  # a function or an aggregation, or a keyword
        found.add(word)
    return found


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (endpoint, le) (rate(a_bucket{run=~"$run"}[5m]))) '
        "/ on (endpoint) group_left b offset 1h > bool 1e-9 and c:rule:x"
    )
    assert metric_names_in(expr) == {"a_bucket", "b", "c:rule:x"}


def _dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / name).read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def _variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    out = {}
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        out[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return out


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_structure(name: str) -> None:
    dashboard = _dashboard(name)
    assert dashboard["uid"] == name.removesuffix(".json")
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    boxes = []
    for panel in panels:
        if panel["type"] != "row":
            assert panel.get("description", "").strip(), f"panel {panel['title']!r}"
            assert panel["targets"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        boxes.append((pos["x"], pos["y"], pos["x"] + pos["w"], pos["y"] + pos["h"]))
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_dashboards_use_the_provisioned_datasource() -> None:
    uids = {
        d["uid"] for d in _load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    }
    for name in DASHBOARDS:
        for variable in _dashboard(name)["templating"]["list"]:
            assert variable["datasource"]["uid"] in uids
        for annotation in _dashboard(name)["annotations"]["list"]:
            if "expr" in annotation:
                assert annotation["datasource"]["uid"] in uids


@pytest.mark.parametrize(
    ("name", "variables"),
    [
        ("authload-run.json", {"scenario", "run", "endpoint"}),
        ("authload-soak-trends.json", {"scenario", "run", "endpoint"}),
        # the mock's metrics carry no scenario or run: one mock serves many runs
        ("authload-mock.json", {"endpoint"}),
    ],
)
def test_dashboard_variables(name: str, variables: set[str]) -> None:
    queries = _variable_queries(_dashboard(name))
    assert set(queries) == variables
    for variable, query in queries.items():
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match and match.group(2) == variable, query
        assert metric_names_in(match.group(1)) <= _known_metrics(), query


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_exprs_use_known_metrics(name: str) -> None:
    known = _known_metrics()
    for where, expr in _exprs(_dashboard(name)):
        used = metric_names_in(expr)
        assert used, f"{where}: no metric in {expr!r}"
        assert used <= known, f"{where}: unknown {sorted(used - known)} in {expr!r}"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_exprs_use_only_known_variables(name: str) -> None:
    for where, expr in _exprs(_dashboard(name)):
        assert "${" not in expr and "[[" not in expr, f"{where}: write $name"
        variables = set(re.findall(r"\$(\w+)", expr))
        assert variables <= ALLOWED_VARIABLES, f"{where}: {variables - ALLOWED_VARIABLES}"
        for variable in variables & SELECTION_VARIABLES:
            for match in re.finditer(rf"(\w+)\s*(=~|!~|!=|=)\s*\"[^\"]*\${variable}\b", expr):
                assert match.group(2) == "=~", f"{where}: {match.group(0)} (use =~)"
            assert len(re.findall(rf"=~\s*\"\${variable}\"", expr)) == expr.count(f"${variable}"), (
                f'{where}: ${variable} only as label=~"${variable}"'
            )


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_latency_percentiles_come_from_histograms(name: str) -> None:
    """Client and mock latency are read only through their buckets (histogram_quantile or
    the heatmap), never as exported percentiles."""
    for where, expr in _exprs(_dashboard(name)):
        for metric in metric_names_in(expr):
            if metric.startswith((names.LATENCY, names.MOCK_LATENCY)):
                assert metric.endswith("_bucket"), f"{where}: {metric}"


@pytest.mark.tools("promtool")
def test_dashboard_exprs_parse() -> None:
    """Every expression, with Grafana's variables filled in, is PromQL promtool accepts."""
    rules = []
    for name in DASHBOARDS:
        stem = name.removesuffix(".json").replace("-", "_")
        for n, (_, expr) in enumerate(_exprs(_dashboard(name))):
            filled = re.sub(r"\$(\w+)", lambda m: SUBSTITUTES.get(m.group(1), ".*"), expr)
            rules.append({"record": f"dashboard:{stem}:{n}", "expr": filled})
        for variable, query in _variable_queries(_dashboard(name)).items():
            selector = re.fullmatch(r"label_values\((.+), \w+\)", query)
            assert selector, query
            filled = selector.group(1).replace('"$scenario"', '".*"').replace('"$run"', '".*"')
            rules.append({"record": f"dashboard:{stem}:var_{variable}", "expr": filled})
    assert rules
    result = subprocess.run(
        [tool_path("promtool"), "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_explains_every_panel() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Watch it live\n", 1)[1].split("\n## ", 1)[0]
    for name in DASHBOARDS:
        assert f"`{name}`" in section or f"/{name}`" in section, name
        for panel in _panels(_dashboard(name)):
            if panel["type"] != "row":
                assert panel["title"] in section, f"{name}: panel {panel['title']!r}"
    assert "--scale worker=" in section and "127.0.0.1:3000" in section
    assert "\n## Kubernetes\n" in readme


def _metrics_variables() -> set[str]:
    """The metrics settings a Locust process reads from its environment."""
    from authload.load import metrics_endpoint as endpoint

    return {endpoint.PORT_ENV, endpoint.PORT_MODE_ENV, endpoint.HOST_ENV, endpoint.LINGER_ENV}


def test_k8s_env_is_what_the_code_reads() -> None:
    from authload.run.pushgateway import PUSHGATEWAY_ENV

    for where, container in _authload_containers():
        for variable in container.get("env", []):
            name = variable["name"]
            if name.startswith("AUTHLOAD_METRICS_"):
                assert name in _metrics_variables(), (where, name)
    # the Pushgateway is commented out (the cluster's own, if any) under its real name
    for path in ("master.yaml", "soak-cronjob.yaml"):
        assert f"name: {PUSHGATEWAY_ENV}," in (K8S / path).read_text(encoding="utf-8"), path
