"""The production search backend: Elasticsearch 9 through the official client.

What lives in the cluster, for ``index_prefix`` P (``newsagg`` by default)::

    index template P-stories    patterns P-stories-v*    from config/elasticsearch/stories.json
    alias P-stories   ->  index P-stories-v<N>           one document per cluster (_id = cluster id)
    index template P-articles   patterns P-articles-v*   from config/elasticsearch/articles.json
    alias P-articles  ->  index P-articles-v<N>          one document per article (_id = article id)

Everything reads and writes through the aliases; only `reindex` names a concrete index.
A mapping change is rolled out by `reindex`: a new generation N+1 is created from the
current template, the documents are copied with scan + bulk (the server-side _reindex is
not part of every distribution), and the alias moves in one atomic ``update_aliases``
call, so searches never see an empty or half-filled index. Each index records the
template's version and checksum in its mapping ``_meta``; `check` compares them.

Search matches what the SQLite backend matches: both index the terms `pipeline.search.analysis`
makes (folded words stemmed in the story's language, pairs of characters for Chinese,
Japanese, Korean and Thai: a core node has neither stemmers nor those filters, so the
terms are made here) and both rank with BM25 over title and body, title words counting
three times.

Transient trouble (connection errors, timeouts, 429 and 5xx answers) becomes
``SearchUnavailable`` and the runner keeps its outbox; documents the cluster refuses one
by one come back as ``IndexFailure``. No message carries a credential: URLs are shown
without their userinfo and known secrets are masked.

One module per concern: ``templates`` (the index templates read from config/elasticsearch),
``documents`` (stories and articles as the indices hold them), ``connection`` (the client,
readiness, and how its failures become our errors), ``lifecycle`` (templates installed,
indices and aliases made, reindex, check, drop), ``bulk`` (writing) and ``query``
(searching). ``ElasticsearchIndex`` is the one object the pipeline uses.
"""

from __future__ import annotations

from pipeline.search.elastic.bulk import BulkWriter
from pipeline.search.elastic.lifecycle import IndexLifecycle
from pipeline.search.elastic.query import StorySearch

__all__ = ["ElasticsearchIndex"]


class ElasticsearchIndex(IndexLifecycle, BulkWriter, StorySearch):
    """Stories and articles in Elasticsearch, behind versioned indices and aliases.

    Args:
        settings: connection settings, the name prefix and where the templates live.

    Raises:
        ConfigError: an invalid prefix, URL, CA file, auth combination or template file.
    """
