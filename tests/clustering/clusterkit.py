"""The clustering tests' material: fictional stories written for this suite, articles, a store stand-in.

(A module of its own, not conftest.py: ``from conftest import`` would find whichever
conftest another test directory imported first.)
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from pipeline.clustering import ClusterEngine
from pipeline.clustering.signatures import HASH_BITS, TAG_TITLE, Sketch, SketchParams, split_short_set
from pipeline.models import Article, Assignment, Membership, Signature, TextSource
from pipeline.settings import ClusteringSettings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

HARBOUR = [
    "The city council of Marlowe voted on Tuesday to close the old harbour bridge to all heavy traffic "
    "after engineers found deep cracks in two of its steel supports during a routine winter inspection.",
    "Deputy mayor Ines Calder said the decision was taken reluctantly because the bridge carries almost "
    "twelve thousand vehicles a day and is the only direct link between the port and the northern "
    "industrial estate.",
    '"We cannot gamble with the safety of drivers and of the people who live under that bridge," Calder said, '
    "adding that buses and emergency vehicles would still be allowed across at reduced speed.",
    "Freight companies warned that the closure would add up to forty minutes to every delivery from the docks "
    "and called on the regional government to pay for a temporary ferry service across the estuary.",
    "The bridge was opened in 1961 and was last repaired eleven years ago, when its deck was resurfaced and "
    "new lighting was installed along the pedestrian walkway on the eastern side.",
    "Engineers from the regional roads agency will now carry out a full structural survey, which is expected "
    "to take at least six weeks, before the council decides whether the bridge can be repaired or must be "
    "replaced entirely.",
    "Local shopkeepers on Quay Street said they feared a drop in trade, while residents of the riverside "
    "district welcomed the ban on lorries, which they blame for noise and vibration late at night.",
    "The council also approved an emergency budget of three million euros to reinforce the supports and to "
    "install sensors that will monitor movement in the structure around the clock until a decision is made.",
]

ORCHARD = [
    "Apple growers in the Vessen valley began picking their harvest two weeks early this year after an "
    "unusually warm spring and a dry summer left fruit ripening on the trees faster than usual.",
    "The regional growers' association said yields were down by about a fifth compared with last season, "
    "largely because late frosts in April destroyed blossom in orchards on the higher slopes.",
    "Prices at the wholesale market in Dornach rose sharply in the first week of picking as buyers from "
    "supermarket chains competed for the limited supply of the popular red varieties.",
    "Several farms have started hiring seasonal workers from neighbouring regions after local recruitment "
    "fell short, and some growers said they would leave part of the crop unpicked.",
    "The association called for more investment in irrigation and frost protection, arguing that the "
    "changing climate made such harvests increasingly common in the valley.",
    "Researchers at the agricultural college in Vessen are testing new rootstocks that flower later in the "
    "spring, which could reduce the risk of frost damage in coming decades.",
]

SHARED_QUOTE = (
    '"Every community deserves infrastructure it can trust, and we will not rest until that promise is kept '
    'for every town and every village in this region," the regional transport minister Pavel Ostrand said '
    "in a statement on Tuesday evening."
)

BOILERPLATE = (
    "The Marlowe Courier is an independent newspaper serving the coast since 1884. Our journalism is funded "
    "by readers like you. Support local reporting by taking out a subscription today, and sign in to join the "
    "conversation in the comments below."
)

# A follow-up that became its own story: a new opening, then three of the
# first report's background paragraphs (over half of that short report).
BRIDGE_REPORT = [HARBOUR[0], HARBOUR[1], HARBOUR[4], HARBOUR[5], HARBOUR[7]]
FERRY_STORY = [
    "A temporary ferry will start carrying lorries across the Marlowe estuary next month, the regional "
    "government announced on Thursday, after freight firms threatened to stop serving the port altogether.",
    "The service will run every forty minutes from six in the morning until midnight and will be free for "
    "the first three months, transport officials told a crowded meeting at the port authority offices.",
    HARBOUR[4],
    HARBOUR[5],
    HARBOUR[7],
    "Ferry operators from two neighbouring ports have until the end of the week to bid for the contract, "
    "and the winner must have at least two vessels able to carry fully loaded lorries in rough weather.",
    "Hauliers welcomed the plan but said the crossing would still add time and cost to every journey, and "
    "asked for the ferry to keep running until the new bridge, if one is built, is open to traffic.",
]
# An outlet's own introduction above an abridged copy.
COURIER_INTRO = (
    "Drivers who use the harbour bridge every morning will have to find another way to work from next week, "
    "as the Courier reported first on its website last night."
)

# Briefs on one topic written from the same stock sentences: each opens with
# its own news, and most of the rest is shared.
MARKET_STOCK = [
    "Trading volumes on the regional exchange stayed thin ahead of the central bank meeting on Thursday.",
    "Analysts said investors were waiting for guidance on interest rates before taking on new positions.",
    "The benchmark index has gained about six percent since the start of the year despite weak exports.",
]
VELT_BRIEF = " ".join([*MARKET_STOCK, "Shares of Velt Mining rose four percent."])
ORSA_BRIEF = " ".join(["Orsa Foods shares fell two percent on Tuesday.", *MARKET_STOCK])


def article(
    article_id: str, title: str, paragraphs: Iterable[str], minutes: float = 0, outlet: str = "wire"
) -> Article:
    return Article(
        id=article_id,
        url=f"https://{outlet}.example/{article_id}",
        outlet=outlet,
        title=title,
        text="\n\n".join(paragraphs),
        published=T0 + timedelta(minutes=minutes),
        fetched_at=T0 + timedelta(minutes=minutes + 5),
        text_source=TextSource.PAGE,
    )


@dataclass
class FakeStore:
    """What the store persists between runs, with its repointing of absorbed clusters."""

    signatures: dict[str, Signature] = field(default_factory=dict)
    memberships: dict[str, Membership] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def save(self, assignments: list[Assignment]) -> None:
        for a in assignments:
            self.signatures[a.signature.article_id] = a.signature
            self.memberships[a.membership.article_id] = a.membership
            survivor = a.membership.cluster_id
            for absorbed in a.absorbed:
                self.aliases[absorbed] = survivor
                for key, m in list(self.memberships.items()):
                    if m.cluster_id == absorbed:
                        self.memberships[key] = Membership(
                            m.article_id, survivor, m.matched_article_id, m.jaccard, m.containment
                        )

    def engine(self, settings: ClusteringSettings, since: datetime | None = None) -> ClusterEngine:
        engine = ClusterEngine(settings)
        sigs = [s for s in self.signatures.values() if since is None or s.at >= since]
        engine.restore(sigs, [self.memberships[s.article_id] for s in sigs], dict(self.aliases))
        return engine


def random_corpus(seed: int, stories: int = 40, spread_days: float = 3.0) -> list[Article]:
    """Small generated corpus: stories, abridged and edited copies, singletons."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("bcdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(3000)]
    function = "the of and to in a for on that with as by at from is was said".split()

    def sentence() -> str:
        words = [rng.choice(function) if rng.random() < 0.4 else rng.choice(vocab) for _ in range(rng.randint(10, 20))]
        return " ".join(words).capitalize() + "."

    out: list[Article] = []
    for s in range(stories):
        paragraphs = [" ".join(sentence() for _ in range(3)) for _ in range(rng.randint(5, 9))]
        start = rng.uniform(0, spread_days * 1440)
        out.append(article(f"s{s}-0", f"story {s}", paragraphs, start))
        for c in range(rng.choice((0, 1, 2, 4))):
            copy = list(paragraphs)
            if rng.random() < 0.4:
                copy = copy[: max(2, int(len(copy) * 0.45))]
            if rng.random() < 0.5:
                copy.insert(0, "BRANTFORD, March 3 (Reuters) - " + copy.pop(0))
            if rng.random() < 0.3:
                copy.append("(With inputs from agencies)")
            copy = [p.replace(" said ", " says ") for p in copy]
            out.append(article(f"s{s}-{c + 1}", f"retitled {s} {c}", copy, start + rng.uniform(5, 600)))
    return out


def version_1_bytes(sketch: Sketch, params: SketchParams) -> bytes:
    """What the first signature format stored: no lead, the title tagged in the lowest bit only."""
    parts = [
        struct.pack("<2sBBHHII", b"NS", 1, int(sketch.short), params.num_perm, params.seed, sketch.size, sketch.outlet),
        sketch.hashvalues.astype("<u4").tobytes(),
    ]
    if sketch.short_set is not None:
        _, kept, _ = split_short_set(sketch.short_set)
        # Version 1 kept the hash's two low bits, the lowest one set for the title.
        title = (kept & TAG_TITLE) != 0
        old = ((kept & HASH_BITS) << np.uint32(2)) | title | (np.arange(len(kept), dtype=np.uint32) & np.uint32(2))
        parts += [struct.pack("<H", len(old)), np.sort(old).astype("<u4").tobytes()]
    return b"".join(parts)
