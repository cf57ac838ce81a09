"""The public names of `pipeline` are pinned: changing them is a deliberate act."""

import pipeline


def test_exported_members() -> None:
    assert sorted(pipeline.__all__) == [
        "Article",
        "ConfigError",
        "ExtractionError",
        "FeedEntry",
        "FeedParseError",
        "FeedSource",
        "FetchError",
        "Membership",
        "NewsaggError",
        "Pipeline",
        "RunReport",
        "SearchBackendError",
        "SearchQuery",
        "SearchResults",
        "SearchUnavailable",
        "Settings",
        "Store",
        "StoreError",
        "Story",
        "load_settings",
    ]
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name
