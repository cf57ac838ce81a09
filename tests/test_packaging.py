"""newsagg installed as users install it (a wheel, not this checkout) has everything it needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

from pipeline.search.elastic import ElasticsearchIndex
from pipeline.settings import ElasticsearchSettings

REPO = Path(__file__).resolve().parents[1]


def test_every_package_of_pipeline_is_listed_for_setuptools() -> None:
    """Folders of data files too: Python can import them as namespace packages, and setuptools
    warned at every install that it would ignore the ones not listed."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    importable = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in [REPO / "pipeline", *(REPO / "pipeline").rglob("*")]
        if folder.is_dir() and folder.name != "__pycache__"
        and all(part.isidentifier() for part in folder.relative_to(REPO).parts)
    }
    assert {name for name in listed if not name.startswith("pipeline.config")} == importable


def test_an_installed_wheel_sets_up_elasticsearch_and_exports_kibana_objects_from_elsewhere(
    es_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info next to the sources
    for name in ("pipeline", "config"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
                           check=True, timeout=300, capture_output=True, text=True)
    assert "would be ignored" not in built.stderr, built.stderr  # a folder of shipped files not listed
    site = tmp_path / "site"
    wheel = next((tmp_path / "dist").glob("newsagg-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)

    # The configuration ships with the package, the same files as config/.
    shipped = site / "pipeline" / "config"
    for path in (REPO / "config").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".ndjson", ".yaml"):
            assert (shipped / path.relative_to(REPO / "config")).read_bytes() == path.read_bytes()

    # So do the web interface's templates and stylesheet.
    for folder in ("templates", "static"):
        for path in (REPO / "pipeline" / "web" / folder).iterdir():
            assert (site / "pipeline" / "web" / folder / path.name).read_bytes() == path.read_bytes()

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "NEWSAGG_DATA_DIR": str(tmp_path / "data"),
           "NEWSAGG_ES__URLS": json.dumps([es_url]), "NEWSAGG_ES__INDEX_PREFIX": prefix}

    def newsagg(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)

    try:
        setup = newsagg("es", "setup")
        assert setup.returncode == 0, setup.stderr
        assert "newsagg-stories" not in setup.stderr
        exported = newsagg("kibana", "export")
        assert exported.returncode == 0, exported.stderr
        assert f'"{prefix}-stories"' in exported.stdout or f"{prefix}-stories" in exported.stdout
        imported_from = newsagg("-v", "es", "check")
        assert imported_from.returncode == 0, imported_from.stderr
    finally:
        index = ElasticsearchIndex(ElasticsearchSettings(urls=[es_url], index_prefix=prefix))
        index.drop()
        index.close()
