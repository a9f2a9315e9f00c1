"""The deploy/ configurations: TLS everywhere, authenticated routes, nothing listening wide.

Parses the compose NATS node configuration and the compose file, and has
``nats-server -t`` check the node configuration with the secrets
``deploy/make_secrets.py`` makes. For Kubernetes, NATS comes from the official
Helm chart: the values are rendered into a NATS configuration the way the
chart's templates do for the keys troupe sets, and ``nats-server -t`` checks
that too; the actor manifests are checked against the CLI (commands, flags,
environment variables the code reads, ports, health checks, TLS URLs), and so
is compose, whose Prometheus must scrape the gateway's port and path with a
token file, load the checked alert rules (``promtool check config`` when
installed), and whose Grafana must provision the checked dashboard.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest
import yaml

from actors.runtime.server import find_server_binary

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CONFS = {"compose": DEPLOY / "nats-cluster.conf"}
ETC = PurePosixPath("/etc/nats")


def _strip(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _block(text: str, name: str) -> str:
    """Return the body of the first ``name { ... }`` block of ``text`` (braces balanced)."""
    match = re.search(rf"(?m)^\s*{re.escape(name)}\s*[:=]?\s*\{{", text)
    assert match, f"no {name} block"
    depth, start = 1, match.end()
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    raise AssertionError(f"unbalanced {name} block")


def _includes(text: str) -> list[str]:
    return re.findall(r"(?m)^\s*include\s+\"?([^\s\"]+)", text)


def assert_cli_accepts(args: list[str], actor: str) -> None:
    """``args`` is ``troupe run ACTOR [flags]`` with flags the real CLI parser accepts."""
    from actors.cli import build_parser

    assert args[:3] == ["troupe", "run", actor]
    assert build_parser().parse_args(args[1:]).actor == actor


def known_variables() -> set[str]:
    """Every TROUPE_* and OTEL_* variable read somewhere in actors/."""
    from tests.test_docs import code_variables

    code = "\n".join(p.read_text() for p in (REPO / "actors").rglob("*.py"))
    return code_variables() | set(re.findall(r"\bOTEL_[A-Z_]+[A-Z]\b", code))


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The secrets deploy/make_secrets.py writes."""
    out = tmp_path_factory.mktemp("deploy-secrets")
    subprocess.run([sys.executable, str(DEPLOY / "make_secrets.py"), "--out", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/compose.yaml."""
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


@pytest.mark.parametrize("kind", sorted(CONFS))
def test_node_config_requires_tls_from_clients_and_routes(kind: str) -> None:
    """A tls block for clients and a mutual-TLS block (verify: true) in the cluster block."""
    text = _strip(CONFS[kind].read_text())
    assert re.search(r"(?m)^tls\s*\{", text), "no client tls block at the top level"
    assert "cert_file" in _block(text, "tls")  # the first tls block is the top-level one
    cluster = _block(text, "cluster")
    route_tls = _block(cluster, "tls")
    assert re.search(r"verify\s*:\s*true", route_tls)
    for key in ("cert_file", "key_file", "ca_file"):
        assert key in route_tls


@pytest.mark.parametrize("kind", sorted(CONFS))
def test_routes_are_authenticated_and_carry_no_password_in_the_repository(
    kind: str, made: Path
) -> None:
    """Routes come from the generated secret, which holds a hashed route login."""
    cluster = _block(_strip(CONFS[kind].read_text()), "cluster")
    assert "nats-route://" not in cluster, "route URLs (with their login) belong in the secret"
    assert "./secrets/cluster-auth.conf" in _includes(cluster)
    auth = (made / "cluster-auth.conf").read_text()
    assert re.search(r'authorization\s*\{\s*user:\s*route,\s*password:\s*"\$2a\$', auth)
    routes = re.findall(r"nats-route://route:[^@\s]+@([\w.-]+):6222", auth)
    assert len(routes) == 3


@pytest.mark.parametrize("kind", sorted(CONFS))
def test_monitoring_listens_on_loopback_only(kind: str) -> None:
    """http monitoring binds 127.0.0.1; nothing but the client and route ports binds wide."""
    text = _strip(CONFS[kind].read_text())
    assert re.search(r"(?m)^\s*http\s*:\s*127\.0\.0\.1:\d+", text)
    assert not re.search(
        r"(?m)^\s*(https?_port|monitor_port|https?)\s*:\s*(0\.0\.0\.0|\d+\s*$)", text
    )
    wide = re.findall(r"(?m)^\s*(\w+)\s*:\s*0\.0\.0\.0", text)
    assert sorted(wide) == ["listen", "listen"]  # client port (top level) and route port


def test_compose_mounts_every_included_and_tls_file(compose: dict[str, Any], made: Path) -> None:
    """Every include and certificate path of the node config is mounted from a real file."""
    text = _strip(CONFS["compose"].read_text())
    wanted = {ETC / p for p in _includes(text) + _includes(_block(text, "cluster"))}
    wanted |= {PurePosixPath(p) for p in re.findall(r"(?:cert|key|ca)_file:\s*(\S+)", text)}
    for name in ("nats-1", "nats-2", "nats-3"):
        mounts = {}
        for volume in compose["services"][name]["volumes"]:
            host, container = volume.split(":")[:2]
            mounts[PurePosixPath(container)] = host
        assert ETC / "cluster.conf" in mounts
        for path in wanted:
            assert path in mounts, f"{name}: {path} not mounted"
            host = mounts[path]
            source = (
                made / host.removeprefix("./secrets/")
                if host.startswith("./secrets/")
                else DEPLOY / host
            )
            assert source.is_file(), f"{name}: {host} does not exist"
            assert not host.endswith("ca.key")


def test_compose_publishes_on_loopback_and_actors_use_tls_and_password_files(
    compose: dict[str, Any], made: Path
) -> None:
    """Published ports bind 127.0.0.1; each actor: tls:// URLs, the CA, its own password file."""
    services = compose["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert not re.search(r"TROUPE_NATS_PASSWORD\s*:", (DEPLOY / "compose.yaml").read_text())
    for name, service in _compose_actors(compose).items():
        env = service["environment"]
        assert all(u.startswith("tls://") for u in env["TROUPE_NATS_URL"].split(","))
        assert env["TROUPE_NATS_CA"]
        assert env["TROUPE_NATS_USER"] == name
        assert service["secrets"] == [name]
        assert env["TROUPE_NATS_PASSWORD_FILE"] == f"/run/secrets/{name}"
        source = compose["secrets"][name]["file"]
        assert (made / source.removeprefix("./secrets/")).is_file()


def _compose_actors(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run ``troupe``."""
    services: dict[str, dict[str, Any]] = compose["services"]
    return {n: s for n, s in services.items() if s.get("command", [""])[0] == "troupe"}


def _host_file(host: str, made: Path) -> Path:
    """The file a compose bind mount or secret names (``./secrets/`` from ``made``)."""
    if host.startswith("./secrets/"):
        return made / host.removeprefix("./secrets/")
    return (DEPLOY / host).resolve()


def _bind_mounts(service: dict[str, Any], made: Path) -> dict[PurePosixPath, Path]:
    """Container path -> host file or directory of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("."):
            mounts[PurePosixPath(container)] = _host_file(host, made)
    return mounts


def _secret_files(
    compose: dict[str, Any], service: dict[str, Any], made: Path
) -> dict[PurePosixPath, Path]:
    """Container path -> host file of a service's secrets (``/run/secrets/NAME``)."""
    return {
        PurePosixPath("/run/secrets") / name: _host_file(compose["secrets"][name]["file"], made)
        for name in service.get("secrets", [])
    }


def _published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> ``host_ip:host_port`` of a service's published ports."""
    found = {}
    for port in service.get("ports", []):
        address, host_port, container = str(port).rsplit(":", 2)
        found[int(container)] = f"{address}:{host_port}"
    return found


def _provisioned(directory: Path, kind: str) -> list[dict[str, Any]]:
    """Every entry of ``kind`` (``datasources``, ``providers``) in Grafana's YAML files there."""
    return [
        entry
        for f in sorted(directory.glob("*.yml"))
        for entry in yaml.safe_load(f.read_text())[kind]
    ]


def _server_check(config: Path, made: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``nats-server -c config -t`` with ``env`` and the variables of ``server-k8s.env``."""
    environment = {"PATH": os.environ.get("PATH", ""), **env}
    for line in (made / "server-k8s.env").read_text().splitlines():
        key, _, value = line.partition("=")
        environment[key] = value
    return subprocess.run(
        [find_server_binary(), "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def _version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2].split("-")[0].removeprefix("v")
    return tuple(int(part) for part in tag.split("."))


def test_compose_runs_every_builtin_actor_with_a_command_the_cli_accepts(
    compose: dict[str, Any],
) -> None:
    """One service per built-in actor (the gateway included), each ``troupe run ACTOR``."""
    from actors.roster import ACTORS

    actors = _compose_actors(compose)
    assert sorted(actors) == sorted(ACTORS)
    for name, service in actors.items():
        assert_cli_accepts(service["command"], name)


def test_compose_environment_variables_are_ones_the_code_reads(compose: dict[str, Any]) -> None:
    """Every TROUPE_* and OTEL_* variable an actor service sets is read somewhere in actors/."""
    known = known_variables()
    for name, service in _compose_actors(compose).items():
        unknown = sorted(set(service["environment"]) - known)
        assert not unknown, f"{name} sets variables troupe does not read: {unknown}"


def test_compose_gateway_port_and_health_check_match_the_gateway(compose: dict[str, Any]) -> None:
    """The gateway listens where its env says, published on loopback; the check hits a route."""
    from actors.gateway.openapi import openapi_document

    paths = openapi_document()["paths"]
    actors = _compose_actors(compose)
    service = actors.pop("gateway")
    for name, other in actors.items():
        assert "ports" not in other, name
        assert "healthcheck" not in other, name
    env = service["environment"]
    assert env["TROUPE_GATEWAY_HOST"] == "0.0.0.0"  # reachable through the published port
    port = int(env["TROUPE_GATEWAY_PORT"])
    assert _published(service) == {port: f"127.0.0.1:{port}"}
    check = service["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]  # the image has Python, not curl
    compile(check[3], "healthcheck", "exec")
    (url,) = re.findall(r"https?://[^'\"\s]+", " ".join(check))
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url)
    assert match, url
    assert int(match[1]) == port
    assert "get" in paths[match[2]]


def test_compose_nats_image_has_message_schedules(compose: dict[str, Any]) -> None:
    """The nodes run a released nats-server 2.14 or newer (interval and cron schedules)."""
    images = {compose["services"][n]["image"] for n in ("nats-1", "nats-2", "nats-3")}
    (image,) = images
    assert image.startswith("nats:")
    assert _version(image) >= (2, 14)


def _prometheus_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return data


def test_prometheus_scrapes_the_gateway_metrics_with_a_token_file(
    compose: dict[str, Any], made: Path
) -> None:
    """The scrape hits the gateway's /metrics port with a bearer token file compose mounts."""
    from actors.gateway.metrics import GatewayMetrics, metrics_route
    from actors.gateway.services import Services

    services = compose["services"]
    prometheus = services["prometheus"]
    mounts = _bind_mounts(prometheus, made)
    assert mounts[PurePosixPath("/etc/prometheus/prometheus.yml")] == (
        DEPLOY / "prometheus" / "prometheus.yml"
    )
    (job,) = _prometheus_config()["scrape_configs"]
    route = metrics_route(cast("Services", None), cast("GatewayMetrics", None))
    assert job.get("scheme", "http") == "http"
    assert job.get("metrics_path", "/metrics") == route.path
    port = services["gateway"]["environment"]["TROUPE_GATEWAY_PORT"]
    (targets,) = job["static_configs"]
    assert targets["targets"] == [f"gateway:{port}"]
    auth = job["authorization"]
    assert auth.get("type", "Bearer") == "Bearer"
    token = _secret_files(compose, prometheus, made)[PurePosixPath(auth["credentials_file"])]
    assert token.is_file(), "deploy/make_secrets.py makes the token file"
    assert token.stat().st_mode & 0o004, "the Prometheus container's user must read it"


def test_readme_issues_the_scrape_token_with_a_command_the_cli_accepts(
    compose: dict[str, Any], made: Path
) -> None:
    """deploy/README.md's token command parses, reads workflows, and writes the mounted file."""
    from actors.cli import build_parser
    from protocols.gateway import BUILTIN_ROLES

    readme = (DEPLOY / "README.md").read_text()
    (line,) = re.findall(r"troupe token create [^\n]+", readme)
    command, _, target = line.partition(" > ")
    args = build_parser().parse_args(command.split()[1:])
    assert "workflows:read" in BUILTIN_ROLES[args.role]
    token = _secret_files(compose, compose["services"]["prometheus"], made)
    assert list(token.values()) == [made / Path(target.strip()).relative_to("deploy/secrets")]
    unknown = set(re.findall(r"\b(TROUPE_\w+)=", readme)) - known_variables()
    assert not unknown


def test_prometheus_loads_the_checked_alert_rules(compose: dict[str, Any], made: Path) -> None:
    """The rule file Prometheus loads is deploy/prometheus/alerts.yml (tests/test_monitoring.py)."""
    mounts = _bind_mounts(compose["services"]["prometheus"], made)
    rules = [mounts[PurePosixPath(path)] for path in _prometheus_config()["rule_files"]]
    assert rules == [DEPLOY / "prometheus" / "alerts.yml"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_prometheus_config(
    compose: dict[str, Any], made: Path, tmp_path: Path
) -> None:
    """promtool check config passes with the mounted files at their host paths."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    prometheus = compose["services"]["prometheus"]
    files = _bind_mounts(prometheus, made) | _secret_files(compose, prometheus, made)
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for container, host in files.items():
        text = text.replace(str(container), str(host))
    (tmp_path / "prometheus.yml").write_text(text)
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisions_the_prometheus_source_and_the_checked_dashboard(
    compose: dict[str, Any], made: Path
) -> None:
    """The data source is the compose Prometheus; the provider loads deploy/grafana/troupe.json."""
    services = compose["services"]
    grafana = services["grafana"]
    mounts = _bind_mounts(grafana, made)
    provisioning = mounts[PurePosixPath("/etc/grafana/provisioning")]
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    (source,) = _provisioned(provisioning / "datasources", "datasources")
    assert source["isDefault"] is True
    match = re.fullmatch(r"http://([\w-]+):(\d+)", source["url"])
    assert match, source["url"]
    assert int(match[2]) in _published(services[match[1]])
    assert services[match[1]]["image"].startswith("prom/prometheus:")
    dashboard = json.loads((DEPLOY / "grafana" / "troupe.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == source["type"] == "prometheus"
    (provider,) = _provisioned(provisioning / "dashboards", "providers")
    assert provider["type"] == "file"
    folder = PurePosixPath(provider["options"]["path"])
    loaded = {mounts[path] for path in mounts if path.parent == folder}
    assert loaded == {DEPLOY / "grafana" / "troupe.json"}


def test_compose_monitoring_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    """Prometheus, Grafana and the trace UI answer on 127.0.0.1 of the host only."""
    for name in ("prometheus", "grafana", "otel"):
        published = _published(compose["services"][name])
        assert published, name
        assert all(a.startswith("127.0.0.1:") for a in published.values()), name


@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(CONFS))
def test_nats_server_accepts_the_node_config(kind: str, made: Path, tmp_path: Path) -> None:
    """nats-server -t validates the node config with the generated secrets in place."""
    etc = tmp_path / "etc" / "nats"
    (etc / "secrets").mkdir(parents=True)
    (etc / "tls").mkdir()
    text = CONFS[kind].read_text().replace(str(ETC) + "/", f"{etc}/")
    (etc / "cluster.conf").write_text(text)
    (etc / "nats.conf").write_text((REPO / "actors" / "runtime" / "nats.conf").read_text())
    (etc / "secrets" / "cluster-auth.conf").write_text((made / "cluster-auth.conf").read_text())
    for name in ("ca.pem", "server.pem", "server.key"):
        (etc / "tls" / name).write_bytes((made / "tls" / name).read_bytes())
    check = _server_check(etc / "cluster.conf", made, NATS_NAME="nats-1")
    assert check.returncode == 0, check.stderr + check.stdout


# -- Kubernetes -----------------------------------------------------------------------

K8S = DEPLOY / "k8s"
RELEASE = "nats"
"""The Helm release name the values and the actor manifests assume."""

CHART_CONFIG_DIR = PurePosixPath("/etc/nats-config")
"""Where the chart mounts its generated ``nats.conf`` (includes are relative to it)."""


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    """deploy/k8s/nats-values.yaml."""
    data: dict[str, Any] = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    """Every document of the Kubernetes manifests (every file but the Helm values)."""
    return [
        d
        for f in sorted(K8S.glob("*.yaml"))
        if f.name != "nats-values.yaml"
        for d in yaml.safe_load_all(f.read_text())
    ]


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, ``extra`` winning (the chart's ``mergeOverwrite``)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the ``add``/``remove`` JSON Patch operations the values use."""
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        target: Any = doc
        for part in parents:
            target = target[part]
        if op["op"] == "remove":
            del target[last]
        elif op["op"] == "add" and last == "-":
            target.append(op["value"])
        else:
            raise AssertionError(f"unsupported patch {op}")
    return doc


def _section(block: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return _patch(_merge(base, block.get("merge") or {}), block.get("patch") or [])


def chart_config(values: dict[str, Any]) -> dict[str, Any]:
    """The NATS configuration the chart makes of ``values``, for the keys troupe sets.

    Mirrors the chart's ``files/config/*.yaml`` templates (config, tls, cluster,
    jetstream): defaults, then each block's ``merge``, then its ``patch``.
    """
    config = values["config"]
    ca = values["tlsCA"]
    ca_file = f"{ca.get('dir', '/etc/nats-ca-cert')}/{ca['key']}"

    def tls(block: dict[str, Any], name: str) -> dict[str, Any]:
        directory = block.get("dir", f"/etc/nats-certs/{name}")
        base = {
            "cert_file": f"{directory}/{block['cert']}",
            "key_file": f"{directory}/{block['key']}",
            "ca_file": ca_file,
        }
        return _section(block, base)

    doc: dict[str, Any] = {
        "server_name": "<< $SERVER_NAME >>",
        "lame_duck_grace_period": "10s",
        "lame_duck_duration": "30s",
        "pid_file": "/var/run/nats/nats.pid",
        "port": config["nats"]["port"],
    }
    if config["nats"]["tls"]["enabled"]:
        doc["tls"] = tls(config["nats"]["tls"], "nats")
    cluster = config["cluster"]
    if cluster["enabled"]:
        scheme = "tls" if cluster["tls"]["enabled"] else "nats"
        base = {
            "name": RELEASE,
            "port": cluster["port"],
            "no_advertise": True,
            "routes": [
                f"{scheme}://{RELEASE}-{i}.{RELEASE}-headless:{cluster['port']}"
                for i in range(cluster["replicas"])
            ],
        }
        if cluster["tls"]["enabled"]:
            base["tls"] = tls(cluster["tls"], "cluster")
        doc["cluster"] = _section(cluster, base)
    if config["monitor"]["enabled"]:
        doc["http_port"] = config["monitor"]["port"]
    jetstream = config["jetstream"]
    if jetstream["enabled"]:
        memory, files = jetstream["memoryStore"], jetstream["fileStore"]
        base = {
            "max_memory_store": f"<< {memory['maxSize']} >>" if memory["enabled"] else 0,
            "store_dir": files["dir"],
            "max_file_store": f"<< {files['pvc']['size']} >>",
        }
        doc["jetstream"] = _section(jetstream, base)
    return _section(config, doc)


def format_config(doc: dict[str, Any]) -> str:
    """Render like the chart's ``nats.formatConfig``: sorted JSON, includes, ``<< >>`` raw."""
    text = json.dumps(doc, indent=2, sort_keys=True)
    text = re.sub(r'".*\$include": "(.*)",?', r"include \1;", text)
    return re.sub(r'"<<\s+(.*?)\s+>>"', r"\1", text)


def _include_targets(doc: dict[str, Any]) -> list[PurePosixPath]:
    found = []
    for key, value in doc.items():
        if key.endswith("$include"):
            found.append(PurePosixPath(os.path.normpath(CHART_CONFIG_DIR / value)))
        elif isinstance(value, dict):
            found += _include_targets(value)
    return found


def test_nats_comes_from_the_helm_chart_values_not_a_hand_written_statefulset(
    k8s: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    """Three nodes, JetStream on file storage (flushed on every write), TLS, routes with a login."""
    assert not _of_kind(k8s, "StatefulSet")
    config = values["config"]
    cluster = config["cluster"]
    assert (cluster["enabled"], cluster["replicas"]) == (True, 3)
    assert config["nats"]["tls"]["enabled"]
    assert values["tlsCA"]["enabled"]
    assert cluster["tls"]["enabled"]
    assert cluster["tls"]["merge"]["verify"] is True
    # No route password in the values (the chart would put it into a ConfigMap in clear).
    assert not (cluster.get("routeURLs") or {}).get("password")
    rendered = chart_config(values)
    assert "routes" not in rendered["cluster"], "routes carry the login: they come from a Secret"
    assert _include_targets(rendered["cluster"]) == [
        PurePosixPath("/etc/troupe-cluster/cluster-auth.conf")
    ]
    jetstream = config["jetstream"]
    assert jetstream["fileStore"]["enabled"]
    assert jetstream["fileStore"]["pvc"]["enabled"]
    assert rendered["jetstream"]["sync_interval"] == "always"
    assert jetstream["memoryStore"]["enabled"], "agent presence lives in memory storage"
    assert rendered["listen"] == "0.0.0.0:4222"  # the included roles file listens on loopback
    assert values["natsBox"]["enabled"] is False


def test_nats_values_mount_every_file_the_config_includes(values: dict[str, Any]) -> None:
    """Each include is a mount the container patch adds, from a volume the pod patch adds."""
    mounts = {
        PurePosixPath(op["value"]["mountPath"]): op["value"]["name"]
        for op in values["container"]["patch"]
        if op["path"] == "/volumeMounts/-"
    }
    volumes = {
        op["value"]["name"]: op["value"]
        for op in values["podTemplate"]["patch"]
        if op["path"] == "/spec/volumes/-"
    }
    targets = _include_targets(chart_config(values))
    assert len(targets) == 2
    for target in targets:
        assert target.parent in mounts, f"{target} is in no mounted directory"
        assert mounts[target.parent] in volumes
    sources = {
        v.get("configMap", {}).get("name") or v["secret"]["secretName"] for v in volumes.values()
    }
    env_from = {e["secretRef"]["name"] for e in values["container"]["merge"]["envFrom"]}
    created = set(
        re.findall(
            r"kubectl create (?:secret generic|configmap) ([\w-]+)",
            (K8S / "nats-values.yaml").read_text(),
        )
    )
    assert sources | env_from | {values["tlsCA"]["secretName"]} <= created


@pytest.mark.integration
def test_nats_server_accepts_the_config_the_chart_renders(
    values: dict[str, Any], made: Path, tmp_path: Path
) -> None:
    """nats-server -t validates the rendered config with troupe's roles and the secrets in place."""
    root = tmp_path / "root"
    text = format_config(chart_config(values))
    for prefix in ("/etc/", "/data", "/var/run/"):
        text = text.replace(f'"{prefix}', f'"{root}{prefix}')
    files = {
        "etc/nats-config/nats.conf": text,
        "etc/troupe-nats/nats.conf": (REPO / "actors" / "runtime" / "nats.conf").read_text(),
        "etc/troupe-cluster/cluster-auth.conf": (made / "cluster-auth-k8s.conf").read_text(),
    }
    tls = values["config"]["nats"]["tls"]
    for directory in ("etc/nats-certs/nats", "etc/nats-certs/cluster"):
        files[f"{directory}/{tls['cert']}"] = (made / "tls" / "server.pem").read_text()
        files[f"{directory}/{tls['key']}"] = (made / "tls" / "server.key").read_text()
    files[f"etc/nats-ca-cert/{values['tlsCA']['key']}"] = (made / "tls" / "ca.pem").read_text()
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    check = _server_check(root / "etc/nats-config/nats.conf", made, SERVER_NAME=f"{RELEASE}-0")
    assert check.returncode == 0, check.stderr + check.stdout + text


def test_route_urls_name_the_chart_pods_and_the_certificate_covers_them(made: Path) -> None:
    """Routes go to <release>-N.<release>-headless, names the node certificate is valid for."""
    from cryptography import x509

    auth = (made / "cluster-auth-k8s.conf").read_text()
    hosts = re.findall(r"nats-route://route:[^@\s]+@([\w.-]+):6222", auth)
    assert hosts == [f"{RELEASE}-{i}.{RELEASE}-headless" for i in range(3)]
    cert = x509.load_pem_x509_certificate((made / "tls" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(hosts) | {RELEASE} <= set(names.get_values_for_type(x509.DNSName))


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _container(deployment).get("env", [])}


def test_k8s_runs_every_builtin_actor_with_a_command_the_cli_accepts(
    k8s: list[dict[str, Any]],
) -> None:
    """One Deployment per built-in actor, each ``troupe run ACTOR`` with flags the CLI has."""
    from actors.roster import ACTORS

    deployments = _of_kind(k8s, "Deployment")
    actors = [d["metadata"]["labels"]["actor"] for d in deployments.values()]
    assert sorted(actors) == sorted(ACTORS)
    for deployment in deployments.values():
        assert_cli_accepts(
            _container(deployment)["args"], deployment["metadata"]["labels"]["actor"]
        )


def test_k8s_environment_variables_are_ones_the_code_reads(k8s: list[dict[str, Any]]) -> None:
    """Every TROUPE_* and OTEL_* variable a manifest sets is read somewhere in actors/."""
    known = known_variables()
    for name, deployment in _of_kind(k8s, "Deployment").items():
        unknown = sorted(set(_env(deployment)) - known)
        assert not unknown, f"{name} sets variables troupe does not read: {unknown}"


def test_k8s_actors_read_their_own_password_file_over_tls(
    k8s: list[dict[str, Any]], values: dict[str, Any]
) -> None:
    """No password in env; each mounts its own key of troupe-roles; tls:// to the NATS Service."""
    from actors.runtime.server import ROLES

    port = values["config"]["nats"]["port"]
    for deployment in _of_kind(k8s, "Deployment").values():
        spec = deployment["spec"]["template"]["spec"]
        role = deployment["metadata"]["labels"]["actor"]
        env = _env(deployment)
        assert "TROUPE_NATS_PASSWORD" not in env
        assert env["TROUPE_NATS_URL"] == f"tls://{RELEASE}:{port}"
        assert env["TROUPE_NATS_CA"]
        assert env["TROUPE_NATS_USER"] == role
        assert role in ROLES
        mounts = {m["name"]: m["mountPath"] for m in _container(deployment)["volumeMounts"]}
        assert env["TROUPE_NATS_PASSWORD_FILE"] == f"{mounts['password']}/password"
        assert env["TROUPE_NATS_CA"].startswith(mounts["ca"] + "/")
        volumes = {v["name"]: v for v in spec["volumes"]}
        items = volumes["password"]["secret"]["items"]
        assert items == [{"key": f"{role}.password", "path": "password"}]


def test_k8s_gateway_port_and_probes_match_the_gateway(k8s: list[dict[str, Any]]) -> None:
    """The gateway listens where its env says, probes a real route; other actors open no port."""
    from actors.gateway.openapi import openapi_document

    paths = openapi_document()["paths"]
    for deployment in _of_kind(k8s, "Deployment").values():
        container = _container(deployment)
        if deployment["metadata"]["labels"]["actor"] != "gateway":
            assert "ports" not in container
            assert "livenessProbe" not in container
            continue
        env = _env(deployment)
        assert env["TROUPE_GATEWAY_HOST"] == "0.0.0.0"  # reachable by the kubelet and Service
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": int(env["TROUPE_GATEWAY_PORT"])}
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] == "http"
            assert "get" in paths[get["path"]]
    (service,) = _of_kind(k8s, "Service").values()
    assert service["spec"]["selector"] == {"app": "troupe", "actor": "gateway"}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_k8s_every_actor_has_a_disruption_budget_and_runners_autoscale(
    k8s: list[dict[str, Any]],
) -> None:
    """A budget selects each Deployment's pods; the autoscaler drives the runners on CPU."""
    deployments = _of_kind(k8s, "Deployment")
    budgets = list(_of_kind(k8s, "PodDisruptionBudget").values())
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, name
        assert covering[0]["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    (hpa,) = _of_kind(k8s, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    runner = deployments[target["name"]]
    assert (target["kind"], runner["metadata"]["labels"]["actor"]) == (
        "Deployment",
        "pipeline_runner",
    )
    assert (
        2 <= hpa["spec"]["minReplicas"] <= runner["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert _container(runner)["resources"]["requests"]["cpu"]  # utilization needs a request
    # Scaling in drains a runner for --grace seconds; the pod must be given that long.
    grace = int(_container(runner)["args"][_container(runner)["args"].index("--grace") + 1])
    assert runner["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
