"""The index templates (settings and mappings) of the two index families, read from config/elasticsearch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.settings import bundled_config_dir

Family = Literal["stories", "articles"]
FAMILIES: tuple[Family, ...] = ("stories", "articles")
FAMILY_OF_KIND: dict[str, Family] = {"story": "stories", "article": "articles"}

TEMPLATES_DIR = bundled_config_dir() / "elasticsearch"


@dataclass(frozen=True, slots=True)
class Template:
    """One index template as read from config/elasticsearch/<family>.json."""

    family: Family
    version: int
    priority: int
    body: dict[str, Any]  # settings and mappings, as the index template's "template"
    checksum: str  # of what is installed, so an edit without a version bump is noticed too

    @property
    def meta(self) -> dict[str, Any]:
        return {"family": self.family, "version": self.version, "checksum": self.checksum}


def load_templates(directory: Path = TEMPLATES_DIR) -> dict[Family, Template]:
    """Read and validate the index template files.

    Raises:
        ConfigError: a file is missing, not JSON, or lacks ``version``/``template.mappings``.
    """
    templates: dict[Family, Template] = {}
    for family in FAMILIES:
        path = directory / f"{family}.json"
        try:
            raw = path.read_bytes()
            data = json.loads(raw)
        except OSError as exc:
            raise ConfigError(f"cannot read the Elasticsearch template {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("version"), int)
            and isinstance(data.get("template"), dict)
            and isinstance(data["template"].get("mappings"), dict)
        ):
            raise ConfigError(f"{path} needs an integer 'version' and a 'template' with 'mappings'")
        # What reaches the cluster, not the file's comments: editing a comment needs no reindex.
        effective = {key: data.get(key) for key in ("version", "priority", "template")}
        canonical = json.dumps(effective, sort_keys=True, separators=(",", ":")).encode()
        templates[family] = Template(
            family=family,
            version=data["version"],
            priority=int(data.get("priority", 500)),
            body=data["template"],
            checksum=hashlib.sha256(canonical).hexdigest()[:16],
        )
    return templates
