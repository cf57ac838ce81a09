"""Kibana saved objects for inspecting clusters: generated from our index mappings, checked, imported.

What config/kibana/newsagg.ndjson holds (for the index prefix P, ``newsagg`` by default)::

    index-pattern  newsagg-stories-view       P-stories   (time: first_seen; `id` links to the cluster's articles)
    index-pattern  newsagg-articles-view      P-articles  (time: fetched_at; `url` is a link)
    search         newsagg-latest-stories     "Latest stories"
    search         newsagg-largest-clusters   "Largest clusters"
    search         newsagg-cluster-articles   "Articles of one cluster" (opened with cluster_id:<id>)
    visualization  newsagg-cluster-sizes      "Cluster size distribution"
    visualization  newsagg-top-outlets        "Top outlets"
    visualization  newsagg-stories-over-time  "Stories over time"
    visualization  newsagg-agency-share       "Share by wire agency"
    dashboard      newsagg-news-clusters      "News clusters": the four charts and the largest clusters

`generate()` builds them; `newsagg kibana export` writes them, and a test keeps the
committed file equal to what `generate()` returns. `check()` lists every field a data
view, search or visualization uses that the index templates of config/elasticsearch do
not map (or map with a type the use needs), so a renamed field fails the tests instead
of silently breaking a chart. `import_objects()` uploads the file through Kibana's
saved objects import API with ``overwrite=true``: the ids are fixed, so importing again
replaces the same objects.

The objects are in the export format of Kibana 8.x (``coreMigrationVersion`` 8.8.0);
Kibana 9 migrates them on import.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipeline.errors import ConfigError, NewsaggError
from pipeline.settings import KibanaSettings, bundled_config_dir
from pipeline.urls import redact_url

log = logging.getLogger(__name__)

OBJECTS_DIR = bundled_config_dir() / "kibana"
OBJECTS_FILE = "newsagg.ndjson"
DEFAULT_PREFIX = "newsagg"

CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0", "dashboard": "8.9.0"}
DATA_VIEWS = {"stories": "newsagg-stories-view", "articles": "newsagg-articles-view"}
SEARCH_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
CLUSTER_ARTICLES = "newsagg-cluster-articles"
# How far back the link from a cluster id to its articles looks.
LINK_TIME_RANGE = "now-1y"
RETRY_INTERVAL = 2.0  # seconds between attempts while Kibana is not ready

_AGGREGATABLE = {"keyword", "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
                 "unsigned_long", "date", "date_nanos", "boolean", "ip"}
_NUMERIC = _AGGREGATABLE - {"keyword", "date", "date_nanos", "boolean", "ip"}
_DATES = {"date", "date_nanos"}
_KQL_FIELD = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)\s*:")


class KibanaError(NewsaggError):
    """Kibana refused the saved objects, or answered in a way we do not understand."""


class KibanaUnavailable(KibanaError):
    """Kibana cannot be reached or is not ready yet; trying again later can help."""

    transient = True


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did: the objects Kibana created or overwrote."""

    kibana: str  # the URL imported into, without credentials
    success_count: int
    objects: list[tuple[str, str]]  # (type, id)


# -- generation ------------------------------------------------------------------------------


def generate(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The saved objects, in import order (data views first, the dashboard last)."""
    stories, articles = DATA_VIEWS["stories"], DATA_VIEWS["articles"]
    discover_link = (
        f"/app/discover#/view/{CLUSTER_ARTICLES}?_g=(time:(from:{LINK_TIME_RANGE},to:now))"
        "&_a=(query:(language:kuery,query:'cluster_id:{{value}}'))"
    )
    objects = [
        _data_view(stories, f"{prefix}-stories", "newsagg stories", "first_seen", {
            "id": {"id": "url", "params": {"type": "a", "urlTemplate": discover_link,
                                           "labelTemplate": "{{value}}", "openLinkInCurrentTab": False}},
        }),
        _data_view(articles, f"{prefix}-articles", "newsagg articles", "fetched_at", {
            "url": {"id": "url", "params": {"type": "a", "urlTemplate": "{{rawValue}}",
                                            "labelTemplate": "{{value}}", "openLinkInCurrentTab": False}},
        }),
        _search("newsagg-latest-stories", "Latest stories", stories,
                "Merged stories, newest first: one row per cluster, with how many outlets ran it.",
                columns=["title", "article_count", "outlet_count", "outlets", "agency", "language"],
                sort=[["first_seen", "desc"]]),
        _search("newsagg-largest-clusters", "Largest clusters", stories,
                "Stories run by the most articles. Click a cluster id to open its articles in Discover.",
                columns=["id", "title", "article_count", "outlet_count", "agency", "first_seen", "last_seen"],
                sort=[["article_count", "desc"], ["last_seen", "desc"]]),
        _search(CLUSTER_ARTICLES, "Articles of one cluster", articles,
                "The articles of one cluster and how each matched: opened from a cluster id (Largest clusters, "
                "News clusters), the query is cluster_id:<id>. Opened directly, replace * with a cluster id.",
                columns=["outlet", "title", "url", "published", "matched_article_id", "jaccard", "containment",
                         "text_source"],
                sort=[["fetched_at", "asc"]], query="cluster_id : *"),
        _visualization("newsagg-cluster-sizes", "Cluster size distribution", stories,
                       "How many stories were run by 1, 2, 3... articles.",
                       "histogram", _xy_params("histogram", "Stories", horizontal=False), [
                           _count_agg(),
                           {"id": "2", "enabled": True, "type": "histogram", "schema": "segment",
                            "params": {"field": "article_count", "interval": 1, "min_doc_count": False,
                                       "has_extended_bounds": False, "extended_bounds": {"min": "", "max": ""},
                                       "customLabel": "articles in the cluster"}},
                       ]),
        _visualization("newsagg-top-outlets", "Top outlets", articles,
                       "Outlets by number of articles in the time range.",
                       "horizontal_bar", _xy_params("histogram", "Articles", horizontal=True), [
                           _count_agg(),
                           _terms_agg("2", "segment", "outlet", 15, "outlet"),
                       ]),
        _visualization("newsagg-stories-over-time", "Stories over time", stories,
                       "New stories (clusters) by the time their first article appeared.",
                       "histogram", _xy_params("histogram", "Stories", horizontal=False), [
                           _count_agg(),
                           {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
                            "params": {"field": "first_seen", "useNormalizedEsInterval": True,
                                       "scaleMetricValues": False, "interval": "auto", "drop_partials": False,
                                       "min_doc_count": 1, "extended_bounds": {}, "customLabel": "first seen"}},
                       ]),
        _visualization("newsagg-agency-share", "Share by wire agency", stories,
                       "Stories credited to each wire agency; the rest are outlets' own.",
                       "pie", _pie_params(), [
                           _count_agg(),
                           _terms_agg("2", "segment", "agency", 10, "wire agency", missing="no agency credited"),
                       ]),
    ]
    panels = [
        ("visualization", "newsagg-cluster-sizes", (0, 0, 24, 14)),
        ("visualization", "newsagg-stories-over-time", (24, 0, 24, 14)),
        ("visualization", "newsagg-agency-share", (0, 14, 16, 15)),
        ("visualization", "newsagg-top-outlets", (16, 14, 32, 15)),
        ("search", "newsagg-largest-clusters", (0, 29, 48, 20)),
    ]
    objects.append(_dashboard("newsagg-news-clusters", "News clusters", panels))
    return objects


def _saved_object(kind: str, object_id: str, attributes: dict[str, Any], references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "attributes": attributes,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "id": object_id,
        "managed": False,
        "references": references,
        "type": kind,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[kind],
    }


def _data_view(object_id: str, pattern: str, name: str, time_field: str, formats: dict[str, Any]) -> dict[str, Any]:
    return _saved_object("index-pattern", object_id, {
        "allowHidden": False,
        "fieldAttrs": "{}",
        "fieldFormatMap": json.dumps(formats, sort_keys=True),
        "fields": "[]",  # Kibana reads the fields from the index mapping itself
        "name": name,
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
        "timeFieldName": time_field,
        "title": pattern,
    }, [])


def _search_source(query: str = "") -> str:
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": SEARCH_REF},
                      sort_keys=True)


def _index_ref(data_view: str) -> list[dict[str, str]]:
    return [{"id": data_view, "name": SEARCH_REF, "type": "index-pattern"}]


def _search(object_id: str, title: str, data_view: str, description: str, *, columns: list[str],
            sort: list[list[str]], query: str = "") -> dict[str, Any]:
    return _saved_object("search", object_id, {
        "columns": columns,
        "description": description,
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
        "sort": sort,
        "timeRestore": False,
        "title": title,
    }, _index_ref(data_view))


def _visualization(object_id: str, title: str, data_view: str, description: str, vis_type: str,
                   params: dict[str, Any], aggs: list[dict[str, Any]]) -> dict[str, Any]:
    vis_state = {"title": title, "type": vis_type, "aggs": aggs, "params": {**params, "type": vis_type}}
    return _saved_object("visualization", object_id, {
        "description": description,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
        "title": title,
        "uiStateJSON": "{}",
        "version": 1,
        "visState": json.dumps(vis_state, sort_keys=True),
    }, _index_ref(data_view))


def _count_agg() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {"emptyAsNull": False}}


def _terms_agg(agg_id: str, schema: str, field: str, size: int, label: str, *, missing: str | None = None) -> dict[str, Any]:
    """Top ``size`` values by count; with ``missing``, documents without the field form a bucket so labelled."""
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema, "params": {
        "field": field, "size": size, "order": "desc", "orderBy": "1", "otherBucket": True,
        "otherBucketLabel": "Other", "missingBucket": missing is not None, "missingBucketLabel": missing or "Missing",
        "customLabel": label,
    }}


def _xy_params(series: str, value_label: str, *, horizontal: bool) -> dict[str, Any]:
    category_position, value_position = ("left", "bottom") if horizontal else ("bottom", "left")
    return {
        "addLegend": False,
        "addTimeMarker": False,
        "addTooltip": True,
        "categoryAxes": [{"id": "CategoryAxis-1", "labels": {"filter": not horizontal, "show": True, "truncate": 100},
                          "position": category_position, "scale": {"type": "linear"}, "show": True, "style": {},
                          "title": {}, "type": "category"}],
        "detailedTooltip": True,
        "grid": {"categoryLines": False},
        "labels": {"show": False},
        "legendPosition": "right",
        "maxLegendLines": 1,
        "palette": {"name": "default", "type": "palette"},
        "seriesParams": [{"circlesRadius": 1, "data": {"id": "1", "label": value_label},
                          "drawLinesBetweenPoints": True, "interpolate": "linear", "lineWidth": 2, "mode": "stacked",
                          "show": True, "showCircles": True, "type": series, "valueAxis": "ValueAxis-1"}],
        "thresholdLine": {"color": "#E7664C", "show": False, "style": "full", "value": 10, "width": 1},
        "times": [],
        "truncateLegend": True,
        "valueAxes": [{"id": "ValueAxis-1", "labels": {"filter": False, "rotate": 0, "show": True, "truncate": 100},
                       "name": "BottomAxis-1" if horizontal else "LeftAxis-1", "position": value_position,
                       "scale": {"mode": "normal", "type": "linear"}, "show": True, "style": {},
                       "title": {"text": value_label}, "type": "value"}],
    }


def _pie_params() -> dict[str, Any]:
    return {
        "addTooltip": True,
        "distinctColors": False,
        "emptySizeRatio": 0.3,
        "isDonut": True,
        "labels": {"last_level": True, "percentDecimals": 1, "position": "default", "show": True, "truncate": 100,
                   "values": True, "valuesFormat": "percent"},
        "legendDisplay": "show",
        "legendPosition": "right",
        "maxLegendLines": 1,
        "nestedLegend": False,
        "palette": {"name": "default", "type": "palette"},
        "truncateLegend": True,
    }


def _dashboard(object_id: str, title: str, panels: Sequence[tuple[str, str, tuple[int, int, int, int]]]) -> dict[str, Any]:
    panel_json = []
    references = []
    for n, (kind, target, (x, y, w, h)) in enumerate(panels, start=1):
        index = f"p{n}"
        panel_json.append({"embeddableConfig": {"enhancements": {}}, "gridData": {"h": h, "i": index, "w": w, "x": x, "y": y},
                           "panelIndex": index, "panelRefName": f"panel_{index}", "type": kind, "version": "8.9.0"})
        references.append({"id": target, "name": f"{index}:panel_{index}", "type": kind})
    return _saved_object("dashboard", object_id, {
        "description": "Clusters of syndicated copies: their sizes, when they appeared, who ran them, which agency "
                       "wrote them, and the largest ones (click an id for its articles).",
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"},
                                                                  "filter": []}, sort_keys=True)},
        "optionsJSON": json.dumps({"hidePanelTitles": False, "syncColors": False, "syncCursor": True,
                                   "syncTooltips": False, "useMargins": True}, sort_keys=True),
        "panelsJSON": json.dumps(panel_json, sort_keys=True),
        "refreshInterval": {"pause": True, "value": 0},
        "timeFrom": "now-30d",
        "timeRestore": True,
        "timeTo": "now",
        "title": title,
        "version": 1,
    }, references)


# -- files -----------------------------------------------------------------------------------


def render(objects: Iterable[dict[str, Any]]) -> str:
    """NDJSON, one object a line, keys sorted: what config/kibana/newsagg.ndjson holds."""
    return "".join(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n" for obj in objects)


def load(directory: Path = OBJECTS_DIR) -> list[dict[str, Any]]:
    """Every saved object in the directory's *.ndjson files, in file then line order.

    Raises:
        ConfigError: no file, or a line that is not a JSON object.
    """
    files = sorted(directory.glob("*.ndjson"))
    if not files:
        raise ConfigError(f"no saved objects (*.ndjson) in {directory}")
    objects = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{path}:{number}: not a saved object")
            objects.append(obj)
    return objects


def with_prefix(objects: Iterable[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """The objects with their data views pointed at the aliases of another index prefix."""
    result = []
    for obj in objects:
        if obj.get("type") == "index-pattern" and prefix != DEFAULT_PREFIX:
            title = str(obj["attributes"]["title"])
            if title.startswith(f"{DEFAULT_PREFIX}-"):
                obj = {**obj, "attributes": {**obj["attributes"], "title": prefix + title[len(DEFAULT_PREFIX):]}}
        result.append(obj)
    return result


# -- checking --------------------------------------------------------------------------------


def mapped_fields(templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per family ("stories", "articles"), every field path the index template maps, with its type."""
    fields: dict[str, dict[str, str]] = {}
    for family, body in templates.items():
        flat: dict[str, str] = {}
        _flatten(body.get("mappings", {}).get("properties", {}), "", flat)
        fields[family] = flat
    return fields


def _flatten(properties: dict[str, Any], prefix: str, out: dict[str, str]) -> None:
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        out[path] = str(spec.get("type", "object"))
        if "properties" in spec:
            _flatten(spec["properties"], f"{path}.", out)
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = str(sub_spec.get("type", "object"))


def elasticsearch_mappings() -> dict[str, dict[str, str]]:
    """The fields of our index templates, config/elasticsearch/*.json."""
    from pipeline.search.elastic.templates import load_templates

    return mapped_fields({family: template.body for family, template in load_templates().items()})


def check(objects: Sequence[dict[str, Any]], fields: dict[str, dict[str, str]]) -> list[str]:
    """Every problem found: unknown types, duplicate ids, dangling references, fields the mappings lack.

    Args:
        objects: saved objects as in the NDJSON file.
        fields: per family, the mapped field paths and types (see :func:`mapped_fields`).
    """
    problems: list[str] = []
    known = {(str(o.get("type")), str(o.get("id"))) for o in objects}
    seen: set[tuple[str, str]] = set()
    family_of_view: dict[str, str] = {}
    for obj in objects:
        if obj.get("type") == "index-pattern":
            title = str(obj.get("attributes", {}).get("title", ""))
            family_of_view[str(obj.get("id"))] = title.rsplit("-", 1)[-1]
    for obj in objects:
        kind, object_id = str(obj.get("type")), str(obj.get("id"))
        where = f"{kind} {object_id}"
        if kind not in TYPE_MIGRATION_VERSIONS:
            problems.append(f"{where}: type {kind!r} is not one we generate ({', '.join(TYPE_MIGRATION_VERSIONS)})")
            continue
        if (kind, object_id) in seen:
            problems.append(f"{where}: duplicate id")
        seen.add((kind, object_id))
        if not isinstance(obj.get("attributes"), dict) or not obj["attributes"].get("title"):
            problems.append(f"{where}: no attributes.title")
            continue
        references = obj.get("references", [])
        names = [str(r.get("name")) for r in references]
        if len(set(names)) != len(names):
            problems.append(f"{where}: duplicate reference names")
        for ref in references:
            if (str(ref.get("type")), str(ref.get("id"))) not in known:
                problems.append(f"{where}: reference {ref.get('name')} -> {ref.get('type')} {ref.get('id')} "
                                "is not in the file")
        try:
            uses = list(_field_uses(obj, {str(r.get("name")): r for r in references}))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{where}: malformed ({type(exc).__name__}: {exc})")
            continue
        for data_view, field, need in uses:
            family = family_of_view.get(data_view)
            if family is None or family not in fields:
                problems.append(f"{where}: data view {data_view!r} is not one of our index families")
                continue
            mapped = fields[family].get(field)
            if mapped is None:
                problems.append(f"{where}: field {field!r} is not in the {family} mapping "
                                f"(config/elasticsearch/{family}.json)")
            elif need and mapped not in need:
                problems.append(f"{where}: field {field!r} is {mapped} in the {family} mapping; "
                                f"this use needs {' or '.join(sorted(need))}")
    return problems


def _field_uses(obj: dict[str, Any], refs: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, set[str]]]:
    """(data view id, field, types the use accepts; empty: any mapped type) for each field the object uses."""
    attributes = obj["attributes"]
    kind = obj["type"]
    if kind == "index-pattern":
        if attributes.get("timeFieldName"):
            yield obj["id"], attributes["timeFieldName"], _DATES
        for field in json.loads(attributes.get("fieldFormatMap") or "{}"):
            yield obj["id"], field, set()
        return
    if kind == "dashboard":
        for panel in json.loads(attributes["panelsJSON"]):
            ref = refs.get(f"{panel['panelIndex']}:{panel['panelRefName']}")
            if ref is None:
                raise ValueError(f"panel {panel['panelIndex']} has no reference {panel['panelRefName']}")
        return
    source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    data_view = str(refs[source["indexRefName"]]["id"])
    for field in _KQL_FIELD.findall(source.get("query", {}).get("query", "")):
        yield data_view, field, set()
    if kind == "search":
        for field in attributes.get("columns", []):
            yield data_view, field, set()
        for field, _direction in attributes.get("sort", []):
            yield data_view, field, _AGGREGATABLE
        return
    vis_state = json.loads(attributes["visState"])
    for agg in vis_state["aggs"]:
        field = agg.get("params", {}).get("field")
        if field is None:
            continue
        need = {"histogram": _NUMERIC, "date_histogram": _DATES, "avg": _NUMERIC, "sum": _NUMERIC,
                "max": _NUMERIC | _DATES, "min": _NUMERIC | _DATES}.get(agg["type"], _AGGREGATABLE)
        yield data_view, field, need


# -- import ----------------------------------------------------------------------------------


def install(kibana: KibanaSettings, index_prefix: str, directory: Path = OBJECTS_DIR, *, wait: float = 0.0) -> ImportResult:
    """Check the saved objects of ``directory`` against our mappings, then import them for ``index_prefix``.

    What `newsagg kibana import` (and the stack's setup service) runs.

    Raises:
        ConfigError: the files are unreadable or use fields our mappings lack (each is named).
        KibanaUnavailable, KibanaError: as :func:`import_objects`.
    """
    objects = load(directory)
    problems = check(objects, elasticsearch_mappings())
    if problems:
        raise ConfigError(f"saved objects in {directory} do not fit the index mappings: " + "; ".join(problems))
    return import_objects(kibana, with_prefix(objects, index_prefix), wait=wait)


def import_objects(settings: KibanaSettings, objects: Sequence[dict[str, Any]], *, wait: float = 0.0) -> ImportResult:
    """Upload saved objects through Kibana's import API, overwriting those with the same ids.

    Args:
        settings: where Kibana is and how to authenticate.
        objects: the saved objects (see :func:`load`).
        wait: seconds to keep trying while Kibana cannot be reached or is not ready (503).

    Raises:
        KibanaUnavailable: Kibana could not be reached or stayed unready for ``wait`` seconds.
        KibanaError: Kibana refused the request or some of the objects (each is named).
        ConfigError: an unusable URL or CA file.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return _import_once(settings, objects)
        except KibanaUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            log.info("Kibana not ready (%s); trying again", exc)
            time.sleep(min(RETRY_INTERVAL, max(0.0, deadline - time.monotonic())))


def _import_once(settings: KibanaSettings, objects: Sequence[dict[str, Any]]) -> ImportResult:
    base = settings.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"kibana.url {settings.url!r} is not an http(s) URL")
    space = f"/s/{settings.space}" if settings.space else ""
    url = f"{base}{space}/api/saved_objects/_import"
    headers = {"kbn-xsrf": "true"}
    auth: tuple[str, str] | None = None
    if settings.api_key is not None:
        headers["Authorization"] = f"ApiKey {settings.api_key.get_secret_value()}"
    elif settings.username:
        auth = (settings.username, settings.password.get_secret_value() if settings.password else "")
    verify: bool | str = settings.verify_certs
    if settings.ca_certs is not None:
        if not settings.ca_certs.is_file():
            raise ConfigError(f"kibana.ca_certs: no CA bundle at {settings.ca_certs}")
        verify = str(settings.ca_certs) if settings.verify_certs else False
    where = redact_url(base)
    body = render(objects).encode("utf-8")
    try:
        # No proxy from the environment, as the Elasticsearch client takes none: a proxy set for the
        # whole host (for pip, say) would carry the stack's own requests.
        with httpx.Client(verify=verify, timeout=settings.request_timeout, auth=auth, trust_env=False) as client:
            response = client.post(url, params={"overwrite": "true"}, headers=headers,
                                   files={"file": (OBJECTS_FILE, body, "application/ndjson")})
    except httpx.TransportError as exc:
        raise KibanaUnavailable(f"Kibana at {where} cannot be reached: {type(exc).__name__}: {exc}") from None
    return _result(response, where)


def _result(response: httpx.Response, where: str) -> ImportResult:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict):
        # Not Kibana's JSON (a proxy's or another server's page): its text, on one line as an error is.
        message = payload.get("message") if isinstance(payload, dict) else " ".join(response.text[:200].split())
        error = f"Kibana at {where} answered {response.status_code}"
        if isinstance(payload, dict) and payload.get("error"):
            error += f" {payload['error']}"
        text = f"{error}: {message or 'no message'}"
        if response.status_code in (502, 503, 504):
            raise KibanaUnavailable(text)
        if response.status_code in (401, 403):
            raise KibanaError(f"{text} (check kibana.username/password or kibana.api_key, and that the user "
                              "may manage saved objects)")
        raise KibanaError(text)
    errors = payload.get("errors") or []
    if not payload.get("success") or errors:
        details = "; ".join(_describe(e) for e in errors) or "no details given"
        raise KibanaError(f"Kibana at {where} refused {len(errors)} saved object(s): {details}")
    done = [(str(r.get("type")), str(r.get("id"))) for r in payload.get("successResults") or []]
    return ImportResult(kibana=where, success_count=int(payload.get("successCount", len(done))), objects=done)


def _describe(error: dict[str, Any]) -> str:
    problem = error.get("error") or {}
    text = f"{error.get('type')} {error.get('id')}"
    title = (error.get("meta") or {}).get("title") or error.get("title")
    if title:
        text += f" ({title})"
    text += f": {problem.get('type', 'unknown')}"
    missing = problem.get("references") or []
    if missing:
        text += " " + ", ".join(f"{r.get('type')} {r.get('id')}" for r in missing)
    if problem.get("message"):
        text += f" ({problem['message']})"
    return text
