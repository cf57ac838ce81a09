"""A scaled-up demo corpus: generated articles rendered into the demo outlets' own templates.

Each of the ten demo outlets (``pipeline/demo/corpus``) lends one of its article pages
as a template: the headline, the description, the body paragraphs, the dates and the
page's own URL are cut out and replaced by those of a generated article; everything
else (navigation, ads, cookie banners, comments, related links, JSON-LD, the outlet's
markup quirks) stays. Feeds keep each outlet's format (RSS or Atom, with or without
``content:encoded``) and are split into several feeds per outlet, ``entries_per_feed``
entries each, newest first.

The text comes from the clustering benchmark's generator (``bench.dedup.corpus``):
synthetic prose (no third-party text) with syndicated copies, abridgements, credit
lines and stock blocks, so clustering has real work to do. Articles are dealt to the ten outlets in turn, so
the copies of one story appear at different outlets.

    python -m bench.corpus build DIR --articles 1000     render a corpus into DIR
    python -m bench.corpus serve DIR                     serve DIR on 127.0.0.1 (prints the URL)
"""

from __future__ import annotations

import argparse
import email.utils
import html
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bench.common import process_cpu_seconds
from pipeline.demo.server import CorpusServer, bundled_corpus_dir

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = 20240930
ENTRIES_PER_FEED = 100

# Dates in the demo templates (all in 2026), longest forms first, with the format that
# renders a generated date the same way.
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_ABBREV = "Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec"
_DATE_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"2026-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)"), "%Y-%m-%dT%H:%M:%S+00:00"),
    (re.compile(r"2026-\d\d-\d\dT\d\d:\d\d"), "%Y-%m-%dT%H:%M"),
    (re.compile(r"2026-\d\d-\d\d \d\d:\d\d"), "%Y-%m-%d %H:%M"),
    (re.compile(r"2026-\d\d-\d\d"), "%Y-%m-%d"),
    (re.compile(r"\d\d\.\d\d\.2026, \d\d:\d\d"), "%d.%m.%Y, %H:%M"),
    (re.compile(r"\d\d\.\d\d\.2026"), "%d.%m.%Y"),
    (re.compile(rf"(?:{_MONTHS}) \d{{1,2}}, 2026"), "%B {day}, %Y"),
    (re.compile(rf"(?:{_ABBREV})\. \d{{1,2}}, 2026"), "%b. {day}, %Y"),
    (re.compile(rf"\d{{1,2}} (?:{_MONTHS}) 2026, \d\d:\d\d"), "{day} %B %Y, %H:%M"),
    (re.compile(rf"\d{{1,2}} (?:{_MONTHS}) 2026"), "{day} %B %Y"),
)
_TOKEN = re.compile(r"\x00(\w+)\x00")
_BODY_LINE = "<p>"


@dataclass(frozen=True, slots=True)
class Article:
    """One generated article, as its page and its feed entry show it."""

    id: str
    outlet: int  # index into the outlet templates
    title: str
    paragraphs: tuple[str, ...]
    published: datetime
    label: str  # the true cluster (from the generator)

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)

    @property
    def summary(self) -> str:
        first = " ".join(self.paragraphs[0].split())
        return first if len(first) <= 240 else first[:239].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True, slots=True)
class OutletTemplate:
    """One demo outlet: its name and language, its feed format and one article page as a template."""

    slug: str
    name: str
    language: str | None
    tags: tuple[str, ...]
    atom: bool
    feed_head: str  # the feed document up to its first item, {{BASE}} kept
    feed_tail: str
    with_author: bool
    with_content: bool  # RSS content:encoded / Atom content carries the full text
    page: str  # the article page with \0TOKEN\0 placeholders
    dates: tuple[str, ...]  # strftime formats of the page's date placeholders, by number
    inserts: tuple[str, ...]  # non-paragraph lines of the original body (ads), put back mid-text

    def page_path(self, article: Article) -> str:
        return f"{self.slug}/articles/{article.id}.html"

    def render_page(self, article: Article, page_kb: int = 0) -> str:
        """The article page, ``{{BASE}}`` left for the server to fill in, padded to ``page_kb`` KB (see `padding`)."""
        paragraphs = [f"<p>{html.escape(p, quote=False)}</p>" for p in article.paragraphs]
        middle = (len(paragraphs) + 1) // 2
        body = "\n".join([*paragraphs[:middle], *self.inserts, *paragraphs[middle:]])
        values = {
            "BODY": body,
            "TITLE": html.escape(article.title),
            "TITLE_JSON": json.dumps(article.title)[1:-1],
            "DESC": html.escape(article.summary),
            "DESC_JSON": json.dumps(article.summary)[1:-1],
            "PATH": self.page_path(article),
        }
        for number, form in enumerate(self.dates):
            values[f"D{number}"] = _format_date(article.published, form)
        page = _TOKEN.sub(lambda m: values[m.group(1)], self.page)
        if len(page) >= page_kb * 1024:
            return page
        head, tail = page.rsplit("</body>", 1)
        return head + padding(article.id, page_kb * 1024 - len(page)) + "</body>" + tail

    def render_feed(self, articles: Sequence[Article], feed_path: str) -> str:
        """One feed document listing ``articles`` (newest first), in this outlet's format."""
        items = sorted(articles, key=lambda a: (a.published, a.id), reverse=True)
        render = self._atom_entry if self.atom else self._rss_item
        head = self.feed_head.replace(f"{{{{BASE}}}}/{self.slug}/feed.xml", f"{{{{BASE}}}}/{feed_path}")
        return head + "".join(render(a) for a in items) + self.feed_tail

    def _rss_item(self, a: Article) -> str:
        url = f"{{{{BASE}}}}/{self.page_path(a)}"
        parts = [
            "    <item>\n",
            f"      <title>{html.escape(a.title, quote=False)}</title>\n",
            f"      <link>{url}</link>\n",
            f'      <guid isPermaLink="false">{self.slug}-{a.id}</guid>\n',
            f"      <pubDate>{email.utils.format_datetime(a.published)}</pubDate>\n",
            f"      <description>{html.escape(a.summary, quote=False)}</description>\n",
        ]
        if self.with_author:
            parts.append(f"      <dc:creator>{self.name} staff</dc:creator>\n")
        if self.with_content:
            content = "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in a.paragraphs)
            parts.append(f"      <content:encoded><![CDATA[{content}]]></content:encoded>\n")
        parts.append("    </item>\n")
        return "".join(parts)

    def _atom_entry(self, a: Article) -> str:
        url = f"{{{{BASE}}}}/{self.page_path(a)}"
        stamp = a.published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = [
            "  <entry>\n",
            f'    <title type="text">{html.escape(a.title, quote=False)}</title>\n',
            f'    <link rel="alternate" type="text/html" href="{url}"/>\n',
            f"    <id>tag:{self.slug}.example,2024:{a.id}</id>\n",
            f"    <published>{stamp}</published>\n",
            f"    <updated>{stamp}</updated>\n",
        ]
        if self.with_author:
            parts.append(f"    <author><name>{self.name} staff</name></author>\n")
        parts.append(f'    <summary type="text">{html.escape(a.summary, quote=False)}</summary>\n')
        if self.with_content:
            content = "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in a.paragraphs)
            parts.append(f'    <content type="html">{html.escape(content, quote=False)}</content>\n')
        parts.append("  </entry>\n")
        return "".join(parts)


_PAD_WORDS = (
    "council budget harbour rail strike storm election court school hospital market bridge festival museum "
    "season club river airport energy housing police farmers vote plan report mayor league concert tunnel"
).split()


def padding(seed: str, size: int) -> str:
    """About ``size`` characters of what real pages carry around an article: teasers of other stories, link lists, a footer.

    The demo templates are 4-7 KB; pages on news sites are tens of KB, most of it this kind of
    markup, which the extractor must parse and throw away. Deterministic for a ``seed``.
    """
    rng = random.Random(seed)
    parts = ['<aside class="more-stories related"><h2>More stories</h2><ul>']
    length = len(parts[0])
    n = 0
    while length < size - 400:
        words = " ".join(rng.choice(_PAD_WORDS) for _ in range(rng.randrange(8, 16)))
        item = (
            f'<li class="teaser"><a href="/news/{n}-{rng.randrange(10**6)}.html">'
            f'<img src="/img/{n}.jpg" alt="" width="160" height="90"><span class="kicker">{rng.choice(_PAD_WORDS)}</span>'
            f'<h3 class="teaser-title">{words.capitalize()}</h3></a><span class="teaser-meta">{rng.randrange(2, 59)} min ago</span></li>'
        )
        parts.append(item)
        length += len(item)
        n += 1
    links = "".join(f'<li><a href="/topic/{w}">{w.capitalize()}</a></li>' for w in _PAD_WORDS)
    parts.append(f'</ul></aside><footer class="site-footer"><nav><ul>{links}</ul></nav></footer>')
    return "".join(parts)


def _format_date(value: datetime, form: str) -> str:
    value = value.astimezone(UTC)
    return value.strftime(form.replace("{day}", str(value.day)))


# -- the ten demo outlets as templates ------------------------------------------------------------


def outlet_templates(corpus_dir: Path | None = None) -> list[OutletTemplate]:
    """One template per demo outlet, in feeds.yaml order."""
    import yaml

    corpus_dir = corpus_dir or bundled_corpus_dir()
    feeds = yaml.safe_load((corpus_dir / "feeds.yaml").read_text(encoding="utf-8"))["feeds"]
    templates = []
    for feed in feeds:
        slug = feed["url"].split("/")[-2]
        templates.append(_outlet(corpus_dir / slug, slug, feed))
    return templates


def _outlet(directory: Path, slug: str, feed: dict[str, object]) -> OutletTemplate:
    feed_xml = (directory / "feed.xml").read_text(encoding="utf-8")
    atom = "<entry>" in feed_xml
    item_tag = "entry" if atom else "item"
    first = feed_xml.index(f"<{item_tag}>")
    last = feed_xml.rindex(f"</{item_tag}>") + len(f"</{item_tag}>\n")
    head = feed_xml[:first].rstrip(" ")
    items = re.findall(rf"<{item_tag}>.*?</{item_tag}>", feed_xml, re.S)
    with_author = any("<dc:creator>" in i or "<author>" in i for i in items)
    with_content = any("<content:encoded>" in i or "<content" in i.replace("<content:", "") for i in items)
    # The page with the longest body makes the template (never the paywalled one).
    pages = sorted(directory.glob("articles/*.html"))
    page_path = max(pages, key=lambda p: (p.read_text(encoding="utf-8").count(f"\n{_BODY_LINE}"), p.name))
    page = page_path.read_text(encoding="utf-8")
    item = next(i for i in items if f"/articles/{page_path.name}" in i)
    title = html.unescape(_tag_text(item, "title"))
    description = html.unescape(_tag_text(item, "summary" if atom else "description"))
    tokenised, dates, inserts = _tokenise_page(page, title, description, f"{slug}/articles/{page_path.name}")
    tags = feed.get("tags") or []
    return OutletTemplate(
        slug=slug,
        name=str(feed["name"]),
        language=str(feed["language"]) if feed.get("language") else None,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        atom=atom,
        feed_head=head,
        feed_tail=feed_xml[last:],
        with_author=with_author,
        with_content=with_content,
        page=tokenised,
        dates=tuple(dates),
        inserts=tuple(inserts),
    )


def _tag_text(item: str, tag: str) -> str:
    found = re.search(rf"<{tag}\b[^>]*>(.*?)</{tag}>", item, re.S)
    return found.group(1).strip() if found else ""


def _tokenise_page(page: str, title: str, description: str, path: str) -> tuple[str, list[str], list[str]]:
    """Cut the article's own parts out of a demo page: body, title, description, URL, dates."""
    lines = page.split("\n")
    body = [n for n, line in enumerate(lines) if line.startswith(_BODY_LINE)]
    if not body:
        raise ValueError(f"{path}: no body paragraphs to replace")
    start, end = body[0], body[-1]
    inserts = [line for line in lines[start : end + 1] if not line.startswith(_BODY_LINE)]
    page = "\n".join([*lines[:start], "\x00BODY\x00", *lines[end + 1 :]])
    page = page.replace(path, "\x00PATH\x00")
    for text, token in ((title, "TITLE"), (description, "DESC")):
        variants = {
            html.escape(text): token,
            html.escape(text, quote=False): token,
            html.escape(text, quote=False).replace("'", "&#x27;"): token,
            text: token,
            json.dumps(text)[1:-1]: f"{token}_JSON",
            json.dumps(text, ensure_ascii=False)[1:-1]: f"{token}_JSON",
        }
        found = 0
        for variant, name in sorted(variants.items(), key=lambda kv: -len(kv[0])):
            if variant:
                found += page.count(variant)
                page = page.replace(variant, f"\x00{name}\x00")
        if token == "TITLE" and not found:
            raise ValueError(f"{path}: the headline {title!r} is not on the page")
    dates: list[str] = []
    for pattern, form in _DATE_FORMS:

        def date_token(_match: re.Match[str], form: str = form) -> str:
            dates.append(form)
            return f"\x00D{len(dates) - 1}\x00"

        page = pattern.sub(date_token, page)
    return page, dates, inserts


# -- generated articles ------------------------------------------------------------------------


def generate_articles(count: int, seed: int = DEFAULT_SEED, outlets: int = 10) -> list[Article]:
    """``count`` articles from the clustering benchmark's generator, spread over ``outlets`` outlets."""
    from bench.dedup.corpus import generate

    corpus = generate(count, seed)
    articles = []
    # Round robin: the copies of one story (consecutive in the generator's output) land
    # on different outlets, and every outlet gets the same share.
    for number, doc in enumerate(corpus.docs):
        outlet = number % outlets
        articles.append(
            Article(
                id=doc.id,
                outlet=outlet,
                title=doc.title,
                paragraphs=tuple(p for p in doc.text.split("\n\n") if p.strip()),
                published=doc.published,
                label=doc.label,
            )
        )
    return articles


@dataclass(frozen=True, slots=True)
class BuiltCorpus:
    """A corpus rendered to disk, ready for ``CorpusServer``."""

    root: Path
    articles: list[Article]
    templates: list[OutletTemplate]
    feeds: list[tuple[int, str]]  # (outlet index, path under root)

    def write_feed_list(self, base_url: str, target: Path) -> Path:
        """feeds.yaml for this corpus served at ``base_url``; every feed of an outlet bears its name."""
        lines = ["feeds:"]
        for outlet, path in self.feeds:
            t = self.templates[outlet]
            lines.append(f"  - name: {json.dumps(t.name)}")
            lines.append(f"    url: {json.dumps(f'{base_url}/{path}')}")
            if t.language:
                lines.append(f"    language: {t.language}")
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return target

    def page_urls(self, base_url: str) -> list[str]:
        return [f"{base_url}/{self.templates[a.outlet].page_path(a)}" for a in self.articles]


def build(
    root: Path,
    articles: Sequence[Article],
    *,
    entries_per_feed: int = ENTRIES_PER_FEED,
    pages: bool = True,
    page_kb: int = 0,
    templates: list[OutletTemplate] | None = None,
) -> BuiltCorpus:
    """Render ``articles`` into ``root``: feeds (``<outlet>/feed-<n>.xml``) and, with ``pages``, article pages.

    ``page_kb`` pads each page to that size with the markup around an article on a real
    site (`padding`); 0 keeps the templates' size (4-7 KB).
    """
    templates = templates or outlet_templates()
    root.mkdir(parents=True, exist_ok=True)
    by_outlet: dict[int, list[Article]] = {}
    for article in articles:
        by_outlet.setdefault(article.outlet, []).append(article)
    feeds: list[tuple[int, str]] = []
    for outlet, own in sorted(by_outlet.items()):
        t = templates[outlet]
        (root / t.slug / "articles").mkdir(parents=True, exist_ok=True)
        own.sort(key=lambda a: (a.published, a.id), reverse=True)
        for number, start in enumerate(range(0, len(own), entries_per_feed), start=1):
            path = f"{t.slug}/feed-{number}.xml"
            (root / path).write_text(t.render_feed(own[start : start + entries_per_feed], path), encoding="utf-8")
            feeds.append((outlet, path))
        if pages:
            for article in own:
                (root / t.page_path(article)).write_text(t.render_page(article, page_kb), encoding="utf-8")
    # Interleave outlets in the feed list, as a real subscription list mixes publishers.
    feeds.sort(key=lambda f: (int(f[1].rsplit("-", 1)[1].split(".")[0]), f[0]))
    return BuiltCorpus(root, list(articles), templates, feeds)


# -- serving from another process --------------------------------------------------------------


@dataclass(slots=True)
class ServedCorpus:
    """A corpus served by ``CorpusServer`` in a child process (the publishers' side of the wire)."""

    base_url: str
    process: subprocess.Popen[str]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        return process_cpu_seconds(self.process.pid)


@contextmanager
def served(root: Path, latency: float = 0.0) -> Iterator[ServedCorpus]:
    """Serve ``root`` on 127.0.0.1 from a child process for the duration of the block.

    ``latency`` (seconds) delays every response, as a publisher across the internet would
    (round trips and the server's own time); loopback alone answers in microseconds.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.corpus", "serve", str(root), "--latency", str(latency)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"corpus server did not start (got {base_url!r})")
        yield ServedCorpus(base_url, process)
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server exits when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class _StaticCorpusServer(CorpusServer):
    """``CorpusServer`` over a corpus that does not change while it is served (a benchmark's).

    Each file's request path is checked and resolved once, when the server starts, instead of
    for every request (``Path.resolve`` walks every component of the path); a request still
    reads the file and gets the same bytes and headers. The server stands for the publishers'
    side of the wire, whose cost a run does not have to share its machine with.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._files: dict[str, tuple[Path, int]] = {}
        for candidate in sorted(self.root.rglob("*")):
            path = "/" + candidate.relative_to(self.root).as_posix()
            if (found := super().resolve(path)) is not None and found[0] == candidate:
                self._files[path] = (candidate, found[2])

    def resolve(self, target: str) -> tuple[Path, bytes, int] | None:
        known = self._files.get(unquote(urlsplit(target).path))
        if known is None:
            return super().resolve(target)  # robots.txt, the outlets' pages, what is not found
        path, mtime = known
        try:
            return path, path.read_bytes(), mtime
        except OSError:
            return None


def _serve(root: Path, latency: float) -> None:
    if latency > 0:
        from pipeline.demo import server as demo_server

        serve = demo_server._Handler._serve

        def delayed(handler: demo_server._Handler, send_body: bool) -> None:
            time.sleep(latency)  # one thread per connection: delays overlap as they would on a network
            serve(handler, send_body)

        demo_server._Handler._serve = delayed  # type: ignore[method-assign]
    with _StaticCorpusServer(root) as server:
        # Log nothing per request: a long run would otherwise keep every request in memory.
        server.log = lambda method, path, status: None  # type: ignore[method-assign]
        print(server.base_url, flush=True)
        done = threading.Event()

        def until_stdin_closes() -> None:
            sys.stdin.read()
            done.set()

        signal.signal(signal.SIGTERM, lambda *_: done.set())
        threading.Thread(target=until_stdin_closes, daemon=True).start()
        done.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render a corpus into a directory")
    b.add_argument("root", type=Path)
    b.add_argument("--articles", type=int, default=1000)
    b.add_argument("--entries-per-feed", type=int, default=ENTRIES_PER_FEED)
    b.add_argument("--seed", type=int, default=DEFAULT_SEED)
    b.add_argument("--page-kb", type=int, default=0, help="pad pages to this size, as real news pages (0: 4-7 KB)")
    s = sub.add_parser("serve", help="serve a corpus directory on 127.0.0.1 until stdin closes")
    s.add_argument("root", type=Path)
    s.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    args = parser.parse_args(argv)
    if args.command == "build":
        built = build(
            args.root, generate_articles(args.articles, args.seed), entries_per_feed=args.entries_per_feed,
            page_kb=args.page_kb,
        )
        print(f"{len(built.articles)} articles, {len(built.feeds)} feeds in {args.root}")
    else:
        _serve(args.root, args.latency)


if __name__ == "__main__":
    main()
