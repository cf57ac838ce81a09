"""What the pages and the API show, read from the store: a story with what each outlet changed, an article."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.copydiff import CopyChanges, ParagraphChange, base_copy, compare
from pipeline.models import ArchiveRecord, Article, FeedEntry, Membership, Story
from pipeline.storage import FeedState, Revision, Store
from pipeline.templates import StrippedBlock
from pipeline.urls import link_of

# Copies compared with the base on one story page: a wire story run by hundreds of outlets
# still makes a page of bounded size and time (the rest are listed, with how they matched).
MAX_COMPARED = 50


@dataclass(frozen=True, slots=True)
class StoryCopy:
    """One outlet's copy of a story: the article, how it matched, what it changed against the base copy."""

    article_id: str
    outlet: str
    title: str
    url: str | None  # None: text from a feed entry without a link
    published: datetime | None
    text_source: str
    matched_article_id: str | None  # None: it founded the cluster
    jaccard: float | None
    containment: float | None
    is_base: bool  # the copy the others are compared with
    changes: CopyChanges | None  # None: beyond the first MAX_COMPARED copies, not compared


@dataclass(frozen=True, slots=True)
class OutletCopies:
    outlet: str
    copies: list[StoryCopy]


@dataclass(frozen=True, slots=True)
class StoryView:
    story: Story
    base_article_id: str
    base_outlet: str
    outlets: list[OutletCopies]  # in the order the outlets first ran the story


@dataclass(frozen=True, slots=True)
class ArticleView:
    article: Article
    url: str | None
    cluster_id: str | None  # None: not clustered yet
    membership: Membership | None
    feed: FeedState | None  # the feed it came from, if still known
    entry: FeedEntry | None  # the feed entry stored under its URL, if any
    template_stripped: list[StrippedBlock]  # its outlet's template blocks taken out of its text
    revisions: list[Revision]  # oldest first; none for an article never corrected
    archived: ArchiveRecord | None  # where its page is in the WARC archive, if it is


@dataclass(frozen=True, slots=True)
class SameRun:
    """Paragraphs a copy shares with the base copy, shown folded."""

    paragraphs: list[ParagraphChange]


def story_view(store: Store, story_id: str) -> StoryView | None:
    """A story with every copy and what it changed; None when there is no such story (after merges)."""
    story = store.story(story_id)
    if story is None:
        return None
    members = {m.article_id: m for m in store.memberships_of(story_id)}
    articles = store.articles_by_id(s.article_id for s in story.sources)
    ordered = [articles[s.article_id] for s in story.sources if s.article_id in articles]
    if not ordered:
        return None
    base = articles[base_copy({a.id: a.text for a in ordered})]
    grouped: dict[str, list[StoryCopy]] = {}
    for number, article in enumerate(ordered):
        member = members.get(article.id)
        grouped.setdefault(article.outlet, []).append(
            StoryCopy(
                article_id=article.id,
                outlet=article.outlet,
                title=article.title,
                url=link_of(article.url),
                published=article.published,
                text_source=article.text_source.value,
                matched_article_id=member.matched_article_id if member else None,
                jaccard=member.jaccard if member else None,
                containment=member.containment if member else None,
                is_base=article.id == base.id,
                changes=compare(base.title, base.text, article.title, article.text)
                if number < MAX_COMPARED or article.id == base.id else None,
            )
        )
    return StoryView(story, base.id, base.outlet, [OutletCopies(o, c) for o, c in grouped.items()])


def article_view(store: Store, article_id: str) -> ArticleView | None:
    article = store.articles_by_id([article_id]).get(article_id)
    if article is None:
        return None
    member = store.membership(article_id)
    feed = store.feed_state(article.feed_id) if article.feed_id else None
    return ArticleView(
        article=article,
        url=link_of(article.url),
        cluster_id=store.resolve_cluster(member.cluster_id) if member else None,
        membership=member,
        feed=feed,
        entry=store.feed_entry(article.url),
        template_stripped=store.stripped_blocks(article_id),
        revisions=store.article_revisions(article_id),
        archived=store.archive_record(article_id),
    )


def folded(changes: CopyChanges, keep: int = 1) -> list[ParagraphChange | SameRun]:
    """The paragraphs of a comparison, runs of more than ``2 * keep`` unchanged ones folded in the middle.

    The unchanged paragraphs next to a change stay visible, as context.
    """
    out: list[ParagraphChange | SameRun] = []
    run: list[ParagraphChange] = []

    def flush(at_start: bool, at_end: bool) -> None:
        head = 0 if at_start else keep
        tail = 0 if at_end else keep
        if len(run) <= head + tail + 1:
            out.extend(run)
        else:
            out.extend(run[:head])
            out.append(SameRun(run[head: len(run) - tail]))
            out.extend(run[len(run) - tail:])
        run.clear()

    for paragraph in changes.paragraphs:
        if paragraph.kind == "same":
            run.append(paragraph)
            continue
        if run:
            flush(at_start=not out, at_end=False)
        out.append(paragraph)
    if run:
        flush(at_start=not out, at_end=True)
    return out
