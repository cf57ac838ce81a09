"""The whole pipeline over loopback HTTP against the demo corpus, on embedded defaults."""

from __future__ import annotations

from demo_truth import clusters_in, expected, expected_clusters, ids_of

from pipeline.demo.server import CorpusServer
from pipeline.models import SearchQuery
from pipeline.runner import Pipeline
from pipeline.search.sqlite import SqliteSearchIndex
from pipeline.settings import Settings


def test_demo_corpus_clusters_exactly_and_search_finds_the_stories(
    corpus_server: CorpusServer, demo_settings: Settings
) -> None:
    truth = expected()
    base = corpus_server.base_url
    want = expected_clusters(base)

    with Pipeline(demo_settings) as pipeline:
        report = pipeline.run(force=True)
        assert report.failed_feeds == []
        assert report.index_error is None and report.outbox_left == 0
        assert clusters_in(pipeline.store) == want

        for cluster in truth["clusters"]:
            members = ids_of(base, cluster["members"])
            cluster_id = pipeline.store.membership(next(iter(members)))
            assert cluster_id is not None
            story = pipeline.store.story(cluster_id.cluster_id)
            assert story is not None
            assert {s.article_id for s in story.sources} == members
            assert story.agency == cluster["agency"], cluster["story"]

        for search in truth["searches"]:
            cluster = truth["clusters"][search["expect_members_of_cluster"]]
            story_id = pipeline.store.membership(next(iter(ids_of(base, cluster["members"]))))
            assert story_id is not None
            hits = pipeline.index.search(SearchQuery(text=search["query"])).hits
            assert story_id.cluster_id in [h.story_id for h in hits], search["query"]


def test_second_run_uses_validators_and_changes_nothing(
    corpus_server: CorpusServer, demo_settings: Settings
) -> None:
    with Pipeline(demo_settings) as pipeline:
        pipeline.run(force=True)
        clusters = clusters_in(pipeline.store)
        articles = pipeline.store.article_count()
        index = pipeline.index
        assert isinstance(index, SqliteSearchIndex)
        documents = index.document_counts()

    served_before = len(corpus_server.requests)
    with Pipeline(demo_settings) as pipeline:
        report = pipeline.run(force=True)
        feed_requests = [r for r in corpus_server.requests[served_before:] if r[1].endswith(".xml")]
        assert feed_requests and all(status == 304 for _, _, status in feed_requests)
        assert {f.status for f in report.feeds} == {"not_modified"}
        assert (report.articles_added, report.clustered, report.stories_built, report.indexed) == (0, 0, 0, 0)
        assert clusters_in(pipeline.store) == clusters
        assert pipeline.store.article_count() == articles
        index = pipeline.index
        assert isinstance(index, SqliteSearchIndex)
        assert index.document_counts() == documents


def test_batches_downloaded_ahead_fetch_every_page_once(corpus_server: CorpusServer, demo_settings: Settings) -> None:
    """Small batches, the next one downloaded while the last is extracted, and a limit cutting
    a batch short: every page is requested once, and the result is the one-batch result."""
    extraction = demo_settings.extraction.model_copy(update={"batch_size": 9})
    settings = demo_settings.model_copy(update={"extraction": extraction})
    with Pipeline(settings) as pipeline:
        pipeline.poll_feeds(pipeline.load_feeds())
        pending = pipeline.store.entry_counts()["pending"]
        served_before = len(corpus_server.requests)

        first = pipeline.fetch_articles(limit=13)
        rest = pipeline.fetch_articles()

        pages = [path for _, path, _ in corpus_server.requests[served_before:] if path.endswith(".html")]
        assert len(pages) == len(set(pages)) == pending
        assert sum(first) == 13 and sum(first) + sum(rest) == pending
        assert pipeline.store.entry_counts().get("pending", 0) == 0
        pipeline.cluster()
        assert clusters_in(pipeline.store) == expected_clusters(corpus_server.base_url)


def test_outlet_templates_learned_on_the_demo_corpus_keep_every_story(
    corpus_server: CorpusServer, demo_settings: Settings
) -> None:
    # Every demo outlet is served from one host, and the wire stories are carried by two to six
    # outlets each. Learned per outlet, even at the most eager setting (a paragraph seen on one
    # earlier article of the outlet is its template; the default is five), only the outlets' own
    # repeated lines go: the agency sign-offs, whose credits were read before.
    eager = demo_settings.extraction.model_copy(update={"template_min_articles": 1})
    settings = demo_settings.model_copy(update={"extraction": eager})
    base = corpus_server.base_url
    with Pipeline(settings) as pipeline:
        pipeline.run(force=True)
        assert clusters_in(pipeline.store) == expected_clusters(base)
        stripped = {
            block.text
            for article, _, _ in pipeline.store.iter_articles()
            for block in pipeline.store.stripped_blocks(article.id)
        }
    assert stripped == {"— AFP", "— AP", "The Associated Press"}
