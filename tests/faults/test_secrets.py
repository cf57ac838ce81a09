"""Credentials come from settings (environment, secret files) and never reach output, logs or errors;
TLS is verified by default, for publishers and for Elasticsearch.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
from pathlib import Path

import pytest

from faultkit import Web, fault_settings, rss, serving, write_feed_list
from pipeline.cli import main
from pipeline.errors import SearchBackendError, TransientFetchError
from pipeline.fetching import Fetcher
from pipeline.runner import Pipeline
from pipeline.settings import ElasticsearchSettings, FetchSettings, Settings, load_settings

SECRET = "s3cr3t-Pa55"


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("NEWSAGG_CONFIG", "NEWSAGG_STORE_URL", "NEWSAGG_SEARCH_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEWSAGG_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def everything(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    out, err = capsys.readouterr()
    return out + err + caplog.text


def test_settings_repr_masks_the_password_of_every_url_like_setting() -> None:
    settings = Settings(
        store_url=f"postgresql+psycopg://u:{SECRET}@db/newsagg",
        es=ElasticsearchSettings(urls=[f"https://elastic:{SECRET}@es1:9200", "https://es2:9200"]),
        kibana={"url": f"https://{SECRET}@kibana:5601"},
    )

    for shown in (repr(settings), str(settings)):
        assert SECRET not in shown
        assert "postgresql+psycopg://u:***@db/newsagg" in shown
        assert "https://elastic:***@es1:9200" in shown and "https://es2:9200" in shown
        assert "https://***@kibana:5601" in shown


def test_a_store_password_is_never_printed_or_logged(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # what `newsagg -v` shows
    clean_env.setenv("NEWSAGG_STORE_URL", f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{dead_port()}/db")
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"x": "http://127.0.0.1:9/feed.xml"})
    for argv in (["run", "--feeds", str(feeds)], ["-v", "feeds", "status"], ["clusters", "list"]):
        assert main(argv) == 1
        shown = everything(capsys, caplog)
        assert "cannot open the store at postgresql+psycopg://u:***@127.0.0.1" in shown
        assert SECRET not in shown and "Traceback" not in shown


def test_elasticsearch_credentials_are_never_printed_or_logged(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = dead_port()
    clean_env.setenv("NEWSAGG_SEARCH_BACKEND", "elasticsearch")
    clean_env.setenv("NEWSAGG_ES__MAX_RETRIES", "0")
    clean_env.setenv("NEWSAGG_ES__REQUEST_TIMEOUT", "2")
    settings_cases = [
        {"NEWSAGG_ES__URLS": json.dumps([f"http://127.0.0.1:{port}"]), "NEWSAGG_ES__USERNAME": "elastic",
         "NEWSAGG_ES__PASSWORD": SECRET},
        {"NEWSAGG_ES__URLS": json.dumps([f"http://127.0.0.1:{port}"]), "NEWSAGG_ES__API_KEY": SECRET},
        {"NEWSAGG_ES__URLS": json.dumps([f"http://elastic:{SECRET}@127.0.0.1:{port}"])},
    ]
    for env in settings_cases:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            assert main(["search", "anything"]) == 1
            shown = everything(capsys, caplog)
            assert "unreachable" in shown and SECRET not in shown, env
            assert "Traceback" not in shown


def test_feed_credentials_never_reach_the_logs(
    web: Web, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: httpx logs every request URL at INFO, so a feed URL's password went to the logs."""
    seen_auth: list[str] = []

    def private_feed(h):  # type: ignore[no-untyped-def]
        seen_auth.append(h.headers.get("Authorization", ""))
        h.reply(200, rss("Private", []).encode(), "application/rss+xml")

    web.routes["/private/feed.xml"] = private_feed
    feeds = write_feed_list(tmp_path / "feeds.yaml", {"private": f"http://reader:{SECRET}@127.0.0.1:{web.port}/private/feed.xml"})
    caplog.set_level(logging.DEBUG)
    with Pipeline(fault_settings(web, tmp_path, feeds)) as pipeline:
        report = pipeline.run()
        assert [f.status for f in report.feeds] == ["ok"]
    assert seen_auth and seen_auth[0].startswith("Basic ")  # the credentials still travel, as a header
    assert f"127.0.0.1:{web.port}/private/feed.xml" in caplog.text  # the request was logged...
    assert SECRET not in caplog.text  # ...without the password


def test_secret_settings_are_masked() -> None:
    settings = load_settings(es={"api_key": SECRET, "password": SECRET, "username": "u"},
                             alert_webhook_url=f"https://hooks.example/{SECRET}",
                             store_url=f"postgresql+psycopg://u:{SECRET}@db.example/newsagg")
    assert SECRET in settings.resolved_store_url  # usable, yet (regression) not in repr() or str()
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in settings.es.model_dump_json() and SECRET not in str(settings.model_dump()["alert_webhook_url"])


def test_tls_verification_is_on_by_default() -> None:
    assert FetchSettings().verify_tls is True
    assert ElasticsearchSettings().verify_certs is True
    assert Settings().fetch.verify_tls is True and Settings().es.verify_certs is True


# -- TLS, for real: a loopback server with a self-signed certificate ----------------------------


def test_publishers_with_untrusted_certificates_are_refused(self_signed: ssl.SSLContext) -> None:
    with serving(tls=self_signed) as web:
        web.serve("/feed.xml", rss("TLS", []), "application/rss+xml")
        url = f"https://127.0.0.1:{web.port}/feed.xml"
        allowed = {"allowed_hosts": [f"127.0.0.1:{web.port}"], "politeness_delay": 0.0, "total_timeout": 5.0}
        with Fetcher(FetchSettings(**allowed)) as fetcher, pytest.raises(TransientFetchError) as caught:
            fetcher.fetch(url)
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        # The same server is fine once verification is switched off: it was the certificate.
        with Fetcher(FetchSettings(**allowed, verify_tls=False)) as fetcher:
            assert fetcher.fetch(url).status == 200


def test_elasticsearch_with_an_untrusted_certificate_is_refused(self_signed: ssl.SSLContext) -> None:
    from pipeline.search.elastic import ElasticsearchIndex

    with serving(tls=self_signed) as web:
        index = ElasticsearchIndex(ElasticsearchSettings(urls=[f"https://127.0.0.1:{web.port}"], max_retries=0,
                                                         request_timeout=5))
        try:
            with pytest.raises(SearchBackendError) as caught:
                index.ready()
        finally:
            index.close()
        assert "TLS with Elasticsearch" in str(caught.value)
        assert web.seen == []  # no request got through the handshake
