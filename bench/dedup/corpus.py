"""A labelled syndication corpus, generated from scratch (no third-party text).

Base stories are written from a synthetic vocabulary (pseudo-words built from
syllables, Zipf-distributed, mixed with English function words), credited to a
wire agency with a dateline. Fictitious outlets republish them with the edits
real syndication shows: new headline, dateline kept/changed/dropped, credit
lines, a local paragraph on top, photo captions, "Also read:" lines, re-broken
paragraphs, curly quotes, "said" -> "says", a few words changed, a sentence
dropped, abridgement to the first 35-50%, and the outlet's own stock block.

Must-stay-apart cases, each recorded as a pair of labels that must not merge:
  quote      two different stories that share one quoted paragraph
  boiler     two different stories from one outlet that appends a stock block
  update     an update that became a different story (new lead, a shared
             background paragraph)
  short      two short items (< 80 words) on the same topic, written from the
             same stock sentences
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

FUNCTION_WORDS = (
    "the of and to in a for on that with as by at from is was were has have had be been it its "
    "their they he she his her we our this these those an or but not after before over under "
    "about into than more most also which who when where while during against between new two three "
    "last first would could will may can should"
).split()
SYLLABLES = (
    "ka ri to ma ne lu sa ve di po ra mi ko te bu na le si go fa de zu ki ro pe ta vi no "
    "la me sun dor vel tan mar kel bri sto gra pla tre fin hal mon ter vas lin cor dun"
).split()
AGENCIES = [("Reuters", "({a}) -"), ("AP", "({a}) —"), ("AFP", "({a}) -"), ("dpa", "({a}) -")]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]
CREDITS = [
    "(With inputs from agencies)",
    "{agency} reported.",
    "— {agency}",
    "(Reporting by {name}; Editing by {name2})",
    "(With inputs from {agency})",
]


@dataclass
class Doc:
    id: str
    title: str
    text: str
    outlet: str
    published: datetime
    label: str
    case: str


@dataclass
class Corpus:
    docs: list[Doc] = field(default_factory=list)
    must_apart: list[tuple[str, str, str]] = field(default_factory=list)  # (label, label, case)

    def write(self, path: Path) -> None:
        """JSON lines in `newsagg dedup`'s input format, plus the truth (label, case); must-apart pairs beside."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            out.writelines(_line(d) for d in self.docs)
        path.with_suffix(".apart.json").write_text(json.dumps(self.must_apart))


def _line(d: Doc) -> str:
    record = {
        "id": d.id,
        "title": d.title,
        "text": d.text,
        "source": d.outlet,
        "published": d.published.isoformat(),
        "label": d.label,
        "case": d.case,
    }
    return json.dumps(record) + "\n"


class Writer:
    """Synthetic news prose from a seeded random generator."""

    def __init__(self, rng: random.Random, vocab_size: int = 30000) -> None:
        self.rng = rng
        words: set[str] = set()
        while len(words) < vocab_size:
            words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 4)))))
        self.vocab = sorted(words)
        rng.shuffle(self.vocab)
        # Zipf-like weights: a few frequent words, a long tail.
        self.weights = [1.0 / (i + 10) for i in range(len(self.vocab))]
        self.cum: list[float] = []
        total = 0.0
        for w in self.weights:
            total += w
            self.cum.append(total)

    def word(self) -> str:
        return self.rng.choices(self.vocab, cum_weights=self.cum)[0]

    def name(self) -> str:
        return f"{self.word().capitalize()} {self.word().capitalize()}"

    def place(self) -> str:
        return self.word().upper()

    def sentence(self, topic: list[str], n: int | None = None) -> str:
        n = n or self.rng.randint(10, 24)
        out: list[str] = []
        for _ in range(n):
            x = self.rng.random()
            if x < 0.42:
                out.append(self.rng.choice(FUNCTION_WORDS))
            elif x < 0.62 and topic:
                out.append(self.rng.choice(topic))
            elif x < 0.65:
                out.append(str(self.rng.randint(2, 900)))
            else:
                out.append(self.word())
        out[0] = out[0].capitalize()
        return " ".join(out) + "."

    def quote(self, topic: list[str], speaker: str) -> str:
        body = self.sentence(topic)[:-1]
        return f'"{body}," said {speaker}.'

    def paragraph(self, topic: list[str], speakers: list[str]) -> str:
        if self.rng.random() < 0.25:
            return self.quote(topic, self.rng.choice(speakers)) + " " + self.sentence(topic)
        return " ".join(self.sentence(topic) for _ in range(self.rng.randint(2, 4)))

    def title(self, topic: list[str]) -> str:
        words = [self.rng.choice(topic) if self.rng.random() < 0.5 else self.word() for _ in range(self.rng.randint(5, 9))]
        return " ".join(words).capitalize()

    def topic(self) -> list[str]:
        return [self.word() for _ in range(25)]


@dataclass
class Story:
    label: str
    title: str
    paragraphs: list[str]
    agency: str
    place: str
    topic: list[str]
    at: datetime


class Generator:
    def __init__(self, seed: int, start: datetime) -> None:
        self.rng = random.Random(seed)
        self.w = Writer(self.rng)
        self.start = start
        self.n_outlets = 80
        self.outlets = [f"{self.w.word().capitalize()} {self.rng.choice(['Times', 'Post', 'Herald', 'News', 'Daily', 'Tribune', 'Courier', 'Gazette'])}" for _ in range(self.n_outlets)]
        # Some outlets append their own stock block to every story they run.
        self.blocks: dict[str, str] = {}
        for outlet in self.outlets[:14]:
            topic = self.w.topic()
            self.blocks[outlet] = " ".join(self.w.sentence(topic, self.rng.randint(12, 20)) for _ in range(3))
        self.corpus = Corpus()
        self.counter = 0
        self.all_titles: list[str] = []

    def _id(self) -> str:
        self.counter += 1
        return f"{self.rng.getrandbits(64):016x}"

    def story(self, label: str, at: datetime, words: tuple[int, int] = (280, 900)) -> Story:
        topic = self.w.topic()
        speakers = [self.w.name() for _ in range(3)]
        target = self.rng.randint(*words)
        paragraphs: list[str] = []
        while sum(len(p.split()) for p in paragraphs) < target:
            paragraphs.append(self.w.paragraph(topic, speakers))
        agency = self.rng.choice(AGENCIES)[0]
        title = self.w.title(topic)
        self.all_titles.append(title)
        return Story(label, title, paragraphs, agency, self.w.place(), topic, at)

    def dateline(self, story: Story, style: int | None = None) -> str:
        style = self.rng.randint(0, 2) if style is None else style
        fmt = dict(AGENCIES)[story.agency].format(a=story.agency)
        if style == 0:
            return f"{story.place}, {self.rng.choice(MONTHS)} {story.at.day} {fmt} "
        if style == 1:
            return f"{story.place} {fmt} "
        return f"{story.place.capitalize()} {fmt} "

    def _emit(self, title: str, paragraphs: list[str], outlet: str, at: datetime, label: str, case: str) -> None:
        text = "\n\n".join(paragraphs)
        self.corpus.docs.append(Doc(self._id(), title, text, outlet, at, label, case))

    def original(self, story: Story, case: str) -> None:
        outlet = f"{story.agency} wire"
        paragraphs = list(story.paragraphs)
        paragraphs[0] = self.dateline(story, 0) + paragraphs[0]
        self._emit(story.title, paragraphs, outlet, story.at, story.label, case)

    def copy(self, story: Story, case: str, abridge_p: float = 0.3) -> None:
        rng = self.rng
        outlet = rng.choice(self.outlets)
        paragraphs = list(story.paragraphs)
        # Abridged: the first 35-50% of the story, cut at a paragraph end.
        if rng.random() < abridge_p:
            keep = rng.uniform(0.35, 0.5) * sum(len(p.split()) for p in paragraphs)
            kept: list[str] = []
            total = 0
            for p in paragraphs:
                if kept and total + len(p.split()) > keep:
                    break
                kept.append(p)
                total += len(p.split())
            paragraphs = kept
        if rng.random() < 0.3 and len(paragraphs) > 2:
            i = rng.randrange(1, len(paragraphs))
            sentences = paragraphs[i].split(". ")
            if len(sentences) > 1:
                del sentences[rng.randrange(len(sentences))]
                paragraphs[i] = ". ".join(sentences)
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(paragraphs))
                words = paragraphs[i].split()
                j = rng.randrange(len(words))
                words[j] = self.w.word()
                paragraphs[i] = " ".join(words)
        if rng.random() < 0.3:
            paragraphs = [p.replace(" said ", " says ").replace(" said.", " says.") for p in paragraphs]
        dl = rng.random()
        if dl < 0.5:
            paragraphs[0] = self.dateline(story) + paragraphs[0]
        if rng.random() < 0.5:
            # Re-broken paragraphs: join neighbours or split at a sentence.
            text = " ".join(paragraphs)
            sentences = text.split(". ")
            paragraphs = []
            i = 0
            while i < len(sentences):
                n = rng.randint(1, 4)
                paragraphs.append(". ".join(sentences[i : i + n]) + ("" if i + n >= len(sentences) else "."))
                i += n
        if rng.random() < 0.2:
            paragraphs.insert(0, " ".join(self.w.sentence(self.w.topic()) for _ in range(rng.randint(2, 4))))
        if rng.random() < 0.3:
            for _ in range(rng.randint(1, 2)):
                caption = rng.choice(
                    [
                        f"Photo: {self.w.name()} / {rng.choice(['AFP', 'Reuters', 'AP'])}",
                        f"{self.w.sentence(story.topic, 8)[:-1]} (AP Photo/{self.w.name()})",
                        f"{self.w.sentence(story.topic, 8)[:-1]} / Reuters",
                    ]
                )
                paragraphs.insert(rng.randint(1, len(paragraphs)), caption)
        if rng.random() < 0.3:
            paragraphs.insert(rng.randint(1, len(paragraphs)), f"Also read: {rng.choice(self.all_titles)}")
        if rng.random() < 0.5:
            credit = rng.choice(CREDITS).format(agency=story.agency, name=self.w.name(), name2=self.w.name())
            paragraphs.append(credit)
        if outlet in self.blocks:
            paragraphs.append(self.blocks[outlet])
        if rng.random() < 0.5:
            paragraphs = [_curly(p) for p in paragraphs]
        title = story.title
        if rng.random() < 0.7:
            words = title.split()
            keep = rng.sample(words, k=min(len(words), rng.randint(1, 3)))
            title = " ".join(keep + [self.w.word() for _ in range(rng.randint(3, 6))]).capitalize()
        at = story.at + timedelta(minutes=rng.randint(5, 36 * 60))
        self._emit(title, paragraphs, outlet, at, story.label, case)

    def syndicated(self, label: str, at: datetime, case: str, copies: int | None = None, story: Story | None = None) -> Story:
        story = story or self.story(label, at)
        self.original(story, case)
        n = copies if copies is not None else self.rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8))
        for _ in range(n):
            self.copy(story, case)
        return story

    def short_family(self, at: datetime, items: int) -> None:
        topic = self.w.topic()
        stock = [self.w.sentence(topic, self.rng.randint(9, 14)) for _ in range(5)]
        labels: list[str] = []
        for k in range(items):
            label = f"short-{self._id()}"
            labels.append(label)
            parts = self.rng.sample(stock, k=self.rng.randint(2, 3)) + [
                self.w.sentence(topic, self.rng.randint(8, 14)) for _ in range(self.rng.randint(1, 2))
            ]
            self.rng.shuffle(parts)
            story = Story(label, self.w.title(topic), [" ".join(parts)], self.rng.choice(AGENCIES)[0], self.w.place(), topic, at + timedelta(hours=3 * k))
            self.original(story, "short")
            for _ in range(self.rng.choice((0, 1, 1, 2, 3))):
                self.short_copy(story)
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                self.corpus.must_apart.append((labels[i], labels[j], "short"))

    def short_copy(self, story: Story) -> None:
        rng = self.rng
        text = story.paragraphs[0]
        if rng.random() < 0.3:
            words = text.split()
            words[rng.randrange(len(words))] = self.w.word()
            text = " ".join(words)
        if rng.random() < 0.5:
            text = self.dateline(story) + text
        paragraphs = [text]
        if rng.random() < 0.5:
            paragraphs.append(rng.choice(CREDITS).format(agency=story.agency, name=self.w.name(), name2=self.w.name()))
        if rng.random() < 0.5:
            paragraphs = [_curly(p) for p in paragraphs]
        title = story.title if rng.random() < 0.5 else self.w.title(story.topic)
        at = story.at + timedelta(minutes=rng.randint(5, 600))
        self._emit(title, paragraphs, rng.choice(self.outlets[14:]), at, story.label, "short")

    def generate(self, size: int, days: float) -> Corpus:
        rng = self.rng
        span = timedelta(days=days)
        while len(self.corpus.docs) < size:
            at = self.start + span * rng.random()
            x = rng.random()
            if x < 0.45:
                self.syndicated(f"s-{self._id()}", at, "syndicated")
            elif x < 0.72:
                story = self.story(f"single-{self._id()}", at)
                outlet = rng.choice(self.outlets)
                paragraphs = list(story.paragraphs) + ([self.blocks[outlet]] if outlet in self.blocks else [])
                self._emit(story.title, paragraphs, outlet, at, story.label, "single")
            elif x < 0.80:
                # Two different stories that share one quoted paragraph.
                speaker = self.w.name()
                shared = self.w.quote(self.w.topic(), speaker) + " " + self.w.sentence(self.w.topic(), rng.randint(10, 20))
                a = self.story(f"quote-{self._id()}", at)
                b = self.story(f"quote-{self._id()}", at + timedelta(hours=rng.uniform(0, 30)))
                for s in (a, b):
                    s.paragraphs.insert(rng.randint(1, len(s.paragraphs)), shared)
                    self.syndicated(s.label, s.at, "quote", copies=rng.choice((0, 1, 2, 3)), story=s)
                self.corpus.must_apart.append((a.label, b.label, "quote"))
            elif x < 0.88:
                # An update that became a different story: new lead and body,
                # one or two background paragraphs carried over.
                a = self.story(f"update-{self._id()}", at)
                self.syndicated(a.label, a.at, "update", copies=rng.choice((0, 1, 2, 3)), story=a)
                b = self.story(f"update-{self._id()}", at + timedelta(hours=rng.uniform(6, 48)), words=(350, 800))
                b.topic = a.topic
                # Background paragraphs come from the second half of the first story.
                background = a.paragraphs[len(a.paragraphs) // 2 :]
                carried = rng.sample(background, k=min(len(background), rng.randint(1, 2)))
                for p in carried:
                    b.paragraphs.insert(rng.randint(2, len(b.paragraphs)), p)
                self.syndicated(b.label, b.at, "update", copies=rng.choice((0, 1, 2, 3)), story=b)
                self.corpus.must_apart.append((a.label, b.label, "update"))
            else:
                self.short_family(at, rng.randint(2, 5))
        # Stories from one stock-block outlet must stay apart from each other.
        by_outlet: dict[str, list[str]] = {}
        for d in self.corpus.docs:
            if d.outlet in self.blocks:
                by_outlet.setdefault(d.outlet, []).append(d.label)
        for labels in by_outlet.values():
            distinct = sorted(set(labels))
            rng.shuffle(distinct)
            for i in range(0, len(distinct) - 1, 2):
                self.corpus.must_apart.append((distinct[i], distinct[i + 1], "boiler"))
        self.corpus.docs = self.corpus.docs[:size]
        kept = {d.label for d in self.corpus.docs}
        self.corpus.must_apart = [p for p in self.corpus.must_apart if p[0] in kept and p[1] in kept]
        return self.corpus


def _curly(text: str) -> str:
    out: list[str] = []
    opening = True
    for ch in text:
        if ch == '"':
            out.append("\u201c" if opening else "\u201d")
            opening = not opening
        elif ch == "'":
            out.append("\u2019")
        else:
            out.append(ch)
    return "".join(out).replace(" - ", " \u2013 ")


def generate(size: int, seed: int = 20240930) -> Corpus:
    """A labelled corpus of ``size`` articles spread over a few weeks."""
    days = max(3.0, size / 5000)
    return Generator(seed, datetime(2024, 9, 1, tzinfo=UTC)).generate(size, days)


def write_large(path: Path, size: int, seed: int = 20240930, piece: int = 10_000) -> None:
    """``size`` articles, written as they are made, for sizes whose corpus would not fit in memory.

    One generated corpus of ``piece`` articles, then copies of it in which the
    lower-case letters are swapped by a random permutation per copy, so that
    no copy shares a shingle with another (generating every article would take
    an hour at a million). Each copy is the same mix of stories and
    duplicates; in a copy, credits and datelines are no longer recognised as
    such. Ids and labels get the copy's number; no must-stay-apart pairs are kept.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    base = generate(min(piece, size), seed)
    rng = random.Random(seed)
    letters = bytes(range(ord("a"), ord("z") + 1))
    with path.open("w", encoding="utf-8") as out:
        for copy, first in enumerate(range(0, size, piece)):
            swapped = bytes(rng.sample(letters, len(letters)))
            table = bytes.maketrans(letters, swapped) if copy else bytes.maketrans(b"", b"")
            for d in base.docs[: size - first]:
                title, text = (t.encode("utf-8").translate(table).decode("utf-8") for t in (d.title, d.text))
                out.write(_line(replace(d, id=f"{d.id}-{copy}", label=f"{d.label}-{copy}", title=title, text=text)))
    path.with_suffix(".apart.json").write_text("[]")
