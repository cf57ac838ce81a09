"""The client of a cluster: connecting, readiness, and how its failures become our errors.

Transient trouble (connection errors, timeouts, 429 and 5xx answers) becomes
``SearchUnavailable``; everything else ``SearchBackendError`` or ``ConfigError``. No
message carries a credential: URLs are shown without their userinfo and known secrets
are masked.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

from elasticsearch import ApiError, ConnectionError, ConnectionTimeout, Elasticsearch, SSLError, TransportError
from elasticsearch.serializer import OrjsonSerializer

from pipeline.errors import ConfigError, NewsaggError, SearchBackendError, SearchUnavailable
from pipeline.search.elastic.templates import TEMPLATES_DIR, Family, load_templates
from pipeline.settings import ElasticsearchSettings
from pipeline.urls import redact_url

log = logging.getLogger(__name__)

RETRY_BACKOFF_BASE = 0.5  # the transport's jittered backoff between retries of a failed request
RETRY_BACKOFF_CAP = 10.0

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")  # a valid start of an index name
_CONNECTION_REPR = re.compile(r"^\w*Connection(?:Pool)?\([^)]*\):\s*")  # urllib3's "HTTPConnection(host=..):"
_USERINFO = re.compile(r"(?i)\b(https?://)[^/\s@]*@")


class ElasticsearchBase:
    """The client and settings every part of `ElasticsearchIndex` works through.

    Args:
        settings: connection settings, the name prefix and where the templates live.

    Raises:
        ConfigError: an invalid prefix, URL, CA file, auth combination or template file.
    """

    def __init__(self, settings: ElasticsearchSettings) -> None:
        if not _PREFIX.match(settings.index_prefix):
            raise ConfigError(
                f"es.index_prefix {settings.index_prefix!r} is not usable in index names: "
                "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        self.settings = settings
        self.prefix = settings.index_prefix
        self.templates = load_templates(settings.templates_dir or TEMPLATES_DIR)
        self.where = ", ".join(redact_url(u) for u in settings.urls) or "<no URL>"
        self._secrets = _secrets_of(settings)
        self.client = self._connect()

    def _connect(self) -> Elasticsearch:
        es = self.settings
        if not es.urls:
            raise ConfigError("es.urls is empty: give at least one node URL, e.g. https://es1:9200")
        auth: dict[str, Any] = {}
        if es.api_key is not None:
            if es.username:
                log.warning("both es.api_key and es.username are set; using the API key")
            auth["api_key"] = es.api_key.get_secret_value()
        elif es.username:
            auth["basic_auth"] = (es.username, es.password.get_secret_value() if es.password else "")
        elif es.password is not None:
            raise ConfigError("es.password is set without es.username")
        if es.ca_certs is not None:
            if not es.ca_certs.is_file():
                raise ConfigError(f"es.ca_certs: no CA bundle at {es.ca_certs}")
            auth["ca_certs"] = str(es.ca_certs)
        try:
            return Elasticsearch(
                hosts=list(es.urls),
                verify_certs=es.verify_certs,
                request_timeout=es.request_timeout,
                max_retries=es.max_retries,
                retry_on_timeout=True,
                retry_backoff_base=RETRY_BACKOFF_BASE,
                retry_backoff_cap=RETRY_BACKOFF_CAP,
                # Serialising bulk bodies and parsing their answers with the standard library
                # cost this process a third of its CPU time while indexing.
                serializer=OrjsonSerializer(),
                **auth,
            )
        except (ValueError, TypeError) as exc:
            # The client's own message can quote the URL with its password.
            raise ConfigError(f"invalid Elasticsearch settings for {self.where}: {self._scrub(str(exc))}") from None

    def close(self) -> None:
        self.client.close()

    def alias(self, family: Family) -> str:
        return f"{self.prefix}-{family}"

    def ready(self) -> str:
        """The cluster's health status; readiness is cluster health (a node may not serve `GET /`).

        Raises:
            SearchUnavailable: the cluster cannot be reached or its status is red.
        """
        with self._errors("a health check"):
            try:
                status = str(self.client.cluster.health().body.get("status"))
            except ApiError as exc:
                if exc.meta.status != 403:
                    raise
                # Credentials without the `monitor` privilege still prove the cluster answers.
                log.debug("no privilege for cluster health at %s; assuming ready", self.where)
                return "unknown"
        if status == "red":
            raise SearchUnavailable(f"Elasticsearch at {self.where} is not ready: cluster status red")
        return status

    # -- errors --------------------------------------------------------------------------

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn the client's exceptions into ours, with the URL shown and secrets masked."""
        try:
            yield
        except NewsaggError:
            raise
        except ApiError as exc:
            raise self._api_error(exc, action) from None
        except SSLError as exc:
            # Not transient: the CA bundle or verify_certs setting needs fixing.
            raise SearchBackendError(
                f"TLS with Elasticsearch at {self.where} failed during {action} (check es.ca_certs and "
                f"es.verify_certs): {self._scrub(str(exc))}"
            ) from None
        except (ConnectionError, ConnectionTimeout, TransportError) as exc:
            raise SearchUnavailable(
                f"Elasticsearch at {self.where} is unreachable during {action}: {self._scrub(_first_line(exc))}"
            ) from None

    def _api_error(self, exc: ApiError, action: str) -> NewsaggError:
        status = exc.meta.status
        reason = self._reason(exc)
        if status == 429 or status >= 500:
            return SearchUnavailable(f"Elasticsearch at {self.where} failed {action} ({status}): {reason}")
        if status == 401:
            return SearchBackendError(
                f"Elasticsearch at {self.where} rejected the credentials during {action} (401): "
                "check es.api_key, or es.username and es.password"
            )
        if status == 403:
            return SearchBackendError(
                f"Elasticsearch at {self.where} refused {action} (403, missing privilege?): {reason}"
            )
        hint = "; run `newsagg es setup`" if error_type(exc) == "index_not_found_exception" else ""
        return SearchBackendError(f"Elasticsearch at {self.where} refused {action} ({status}): {reason}{hint}")

    def _reason(self, exc: ApiError) -> str:
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return self._scrub(describe(body["error"]))
        return self._scrub(str(exc.message))

    def _scrub(self, text: str) -> str:
        text = _USERINFO.sub(r"\1", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# -- helpers -----------------------------------------------------------------------------


def _secrets_of(settings: ElasticsearchSettings) -> list[str]:
    """Every form in which a credential could leak into a message."""
    secrets = []
    if settings.api_key is not None:
        secrets.append(settings.api_key.get_secret_value())
    if settings.password is not None:
        password = settings.password.get_secret_value()
        secrets.append(password)
        secrets.append(base64.b64encode(f"{settings.username or ''}:{password}".encode()).decode())
    for url in settings.urls:
        with suppress(ValueError):
            if in_url := urlsplit(url).password:
                secrets.append(in_url)
    return sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)


def describe(error: Any) -> str:
    """An Elasticsearch error object as one line: type, reason and the cause."""
    if not isinstance(error, dict):
        return str(error)
    text = f"{error.get('type')}: {error.get('reason')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    return text


def error_type(exc: ApiError) -> str | None:
    """The type of the error an answer carries, e.g. ``index_not_found_exception``."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("type"))
    return None


def _first_line(exc: Exception) -> str:
    """The root cause of a transport error, e.g. "Failed to establish a new connection: ... refused"."""
    # A transport error's `message` holds the cause; its str() may be a generic "Connection error".
    raw = exc.message if isinstance(exc, TransportError) else exc
    text = _CONNECTION_REPR.sub("", str(raw).strip()) or type(exc).__name__
    return text.splitlines()[0][:300]
