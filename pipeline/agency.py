"""Which wire agency an article credits, and where it says so (found at extraction, kept per article).

An article is credited to an agency when it carries the agency's credit, and credits
live in a few places: the dateline that opens the text ("PARIS (AFP) -", "MADRID, 5 dic
(EFE).-", "МОСКВА, 5 дек - РИА Новости", "新华社北京12月5日电", "【ワシントン共同】"), the
byline (often only in the page's author metadata, which extraction keeps out of the
text: "By The Associated Press", "Jovan Kesler, Reuters", "dpa"), and the last lines
("— Reuters", "(AFP)", "Reporting by ...; Editing by ...", "Associated Press contributed
to this report", "avec AFP", "mit Material von dpa"). We look there and nowhere else:
the body's middle only mentions agencies ("according to Reuters", "told AFP", "a Reuters
poll", "laut dpa", "据新华社报道"), and a photo credit ("(AP Photo/...)", "Foto: dpa",
"© AFP") credits the picture, not the story. Scanning a few lines also keeps detection
cheap: an article costs a handful of regex matches on a few hundred characters.

A credit is "full" (the agency's story: dateline, byline, sign-off) or "contributor"
(material an outlet's own story used: "... contributed to this report", "with AFP").
Unnamed wire credits ("Agencies", "wire services", "With inputs from agencies") have
their own value, "agencies".
"""

from __future__ import annotations

import re
import unicodedata

from pipeline.models import AgencyCredit

UNNAMED = "agencies"

# Canonical name -> how credits spell it (a Latin spelling also matches in capitals).
_ALIASES: dict[str, tuple[str, ...]] = {
    "AP": ("AP", "Associated Press", "The Associated Press", "أسوشيتد برس", "أ ب", "美联社", "美聯社", "AP通信"),
    "AFP": ("AFP", "Agence France-Presse", "Agence France Presse", "أ ف ب", "أ.ف.ب", "ا ف ب", "فرانس برس",
            "法新社", "AFP通信"),
    "Reuters": ("Reuters", "Thomson Reuters", "Рейтер", "Рейтерс", "رويترز", "路透社", "路透", "ロイター"),
    "dpa": ("dpa", "dpa-AFX", "Deutsche Presse-Agentur", "د ب أ", "د.ب.أ", "德新社"),
    "EFE": ("EFE", "Agencia EFE", "إفي", "埃菲社"),
    "ANSA": ("ANSA", "Ansa", "安莎社"),
    "AGI": ("AGI",),
    "Adnkronos": ("Adnkronos",),
    "Europa Press": ("Europa Press",),
    "Lusa": ("Lusa", "Agência Lusa"),
    "Agência Brasil": ("Agência Brasil", "Agencia Brasil"),
    "APA": ("APA",),
    "Keystone-SDA": ("Keystone-SDA", "SDA", "sda", "ATS", "Keystone-ATS"),
    "KNA": ("KNA",),
    "epd": ("epd",),
    "ANP": ("ANP",),
    "Belga": ("Belga",),
    "PAP": ("PAP",),
    "Xinhua": ("Xinhua", "新华社", "新華社", "新华网", "شينخوا", "Синьхуа"),
    "China News Service": ("中新社", "中新网"),
    "CNA": ("CNA", "中央社"),
    "Kyodo": ("Kyodo", "Kyodo News", "共同", "共同通信", "共同社"),
    "Jiji": ("Jiji", "Jiji Press", "時事", "時事通信"),
    "Yonhap": ("Yonhap", "연합뉴스", "韩联社", "韓聯社", "聯合"),
    "TASS": ("TASS", "ТАСС", "塔斯社"),
    "RIA Novosti": ("RIA Novosti", "РИА Новости", "РИА \"Новости\"", "俄新社"),
    "Interfax": ("Interfax", "INTERFAX.RU", "Интерфакс"),
    "Sputnik": ("Sputnik", "Спутник", "سبوتنيك"),
    "Ukrinform": ("Ukrinform", "Укрінформ", "Укринформ"),
    "UNIAN": ("UNIAN", "УНІАН", "УНИАН"),
    "Anadolu": ("Anadolu", "Anadolu Agency", "Anadolu Ajansı", "AA", "الأناضول"),
    "PTI": ("PTI", "Press Trust of India"),
    "ANI": ("ANI",),
    "IANS": ("IANS",),
    "AAP": ("AAP", "Australian Associated Press"),
    "Canadian Press": ("Canadian Press", "The Canadian Press", "CP", "La Presse Canadienne"),
    "PA Media": ("PA Media", "PA", "Press Association"),
    "Bernama": ("Bernama",),
    "Antara": ("Antara",),
    "SPA": ("SPA", "واس"),
    "QNA": ("QNA", "قنا"),
    "WAM": ("WAM", "وام"),
    "KUNA": ("KUNA", "كونا"),
    "MENA": ("MENA", "أ ش أ"),
    "SANA": ("SANA", "سانا"),
    "WAFA": ("WAFA", "وفا"),
    "IRNA": ("IRNA", "إرنا"),
    UNNAMED: ("agencies", "Agencies", "news agencies", "News agencies", "agency inputs", "agency reports",
              "wires", "Wires", "wire services", "Wire services", "wire reports", "Wire reports",
              "Agenturen", "Nachrichtenagenturen", "agences", "Agences", "agencias", "Agencias", "agenzie",
              "Agenzie", "agências", "Agências", "агентства", "وكالات", "通讯社"),
}


def _spellings() -> dict[str, str]:
    spellings: dict[str, str] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            for spelling in (alias, alias.upper()):
                spellings.setdefault(spelling, name)
    return spellings


_CANONICAL: dict[str, str] = _spellings()
# Longest first, so "dpa-AFX" wins over "dpa" and "Thomson Reuters" over "Reuters".
_NAME = "(?:" + "|".join(re.escape(s) for s in sorted(_CANONICAL, key=len, reverse=True)) + ")"
_CJK_NAME = "(?:" + "|".join(
    re.escape(s) for s in sorted(_CANONICAL, key=len, reverse=True) if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", s)
) + ")"
# One or more agencies: "dpa/AFP", "AFP, Reuters", "AP and Reuters".
_NAMES = rf"{_NAME}(?:\s*(?:[/,+&]|\band\b|\bund\b|\bet\b|\by\b)\s*{_NAME})*"
_DASH = r"[-‐‑‒–—―]"
# Up to eight words of place and date before a dateline's agency ("MADRID, 5 dic", "New Delhi, Dec 5").
_WORD = r"[^\s()\[\]【】]+(?:[^\S\n]+|(?=[(/]))"
_PLACE = rf"(?:{_WORD}){{0,8}}"

# Rules over the first lines (the dateline, a byline line).
_DATELINE = re.compile(
    rf"[^\S\n]*{_PLACE}[(/][^\S\n]*(?P<names>{_NAMES})(?:/[\w-]{{1,12}})*[^\S\n]*[)/]"  # "(dpa/lhe)", "/ТАСС/"
    rf"[^\S\n]*(?:[.:]?[^\S\n]*{_DASH}|[.:,]|$)"
)
# "(서울=연합뉴스)": the place and the agency inside the parentheses, no dash after.
_DATELINE_PLACE_IN = re.compile(rf"[^\S\n]*\([^()=\n]{{1,20}}=[^\S\n]*(?P<names>{_NAMES})[^\S\n]*\)")
# "МОСКВА, 5 дек - РИА Новости." (the agency ends its sentence: "Kyiv - Reuters poll shows" is no credit).
_DATELINE_AFTER_DASH = re.compile(rf"[^\S\n]*(?:{_WORD}){{1,6}}{_DASH}+[^\S\n]*(?P<names>{_NAMES})(?=[.,:]|$)")
# "Москва. 5 декабря. INTERFAX.RU -": after a date ("A Reuters-Ipsos poll" is no credit).
_DATELINE_BEFORE_DASH = re.compile(
    rf"[^\S\n]*(?:{_WORD}){{0,5}}[^\s()]*[.,\d][^\S\n]+(?P<names>{_NAMES})[^\S\n]+{_DASH}"
)
# "新华社北京12月5日电", "路透北京12月5日 -": a Chinese or Japanese name first, then place and date.
_DATELINE_AGENCY_FIRST = re.compile(
    rf"[^\S\n]*(?:\([^)\n]{{0,20}}\))?(?P<names>{_CJK_NAME})[^\n。,，]{{0,25}}?(?:[电電]|[^\S\n]{_DASH})"
)
_DATELINE_BRACKETS = re.compile(
    rf"[^\S\n]*[【\[][^】\]\n]{{0,30}}?(?P<names>{_NAMES})[^\S\n]*(?:=[^】\]\n]{{0,12}})?[】\]]"
)
_BYLINE_SPLIT = re.compile(r"\s*(?:[,|/;·•]|\s[-–—]\s|\band\b|\bund\b|&)\s*")
_BYLINE_DESK = re.compile(r"^(?i:redacción|redaction|rédaction|redaktion|redazione|redação)\s+")
_BYLINE_AGENCY = re.compile(
    rf"(?:[A-Z][\w.'’-]*\s+){{0,4}}(?P<names>{_NAMES})"  # "JOHN DOE Associated Press"
    r"(?:(?:\s+[\w-]+){0,3}\s+(?i:staff|writers?|reporters?|correspondents?|editors?|news\s+service))?"  # "AP Business Writer"
)
_BYLINE_WITH = re.compile(rf"\s(?i:avec|with|mit|con|com)\s+(?:l['’]\s*)?(?P<names>{_NAMES})\s*$")
_BYLINE_LINE = re.compile(r"[^\S\n]*(?:By|BY|by|Par|PAR|Por|POR|Von|VON|Di|DI|De|Da|От|Автор:?)[^\S\n]+(?P<who>.{1,120})")

# Rules over the last lines.
_DPA_CODE = re.compile(r"\bdpa:\d{6}-\d{2}-\d+")
# An agency's copyright notice on its story, not a picture's "© AFP".
_COPYRIGHT = re.compile(
    rf"(?i:copyright|©)\s*(?:\(c\)\s*)?\d{{4}}\s+(?P<names>{_NAMES})\b.{{0,80}}(?i:all\s+rights\s+reserved|may\s+not\s+be)"
)
_AP_NOTE = re.compile(r"\bAP is solely responsible for all content")  # AP's note on its funded coverage
_WIRE_FEED = re.compile(r"(?i:(?:published|generated)\s+from\s+an?\s+(?:wire\s+agency|agency|syndicated)\s+feed)")
_SOURCE = r"(?:(?i:source|sources|quelle|quellen|fuente|fonte|fonti|text|texto|testo)|Источник|来源|來源|出典|出所|المصدر)\s*:\s*"
_SIGN_OFF = re.compile(rf"[\s(\[—–-]*(?:{_SOURCE})?(?P<names>{_NAMES})[\s)\].]*")
_TRAILING = re.compile(rf"(?:\(\s*(?P<names>{_NAMES})\s*\)|\s{_DASH}{{1,2}}\s*(?P<dashed>{_NAMES}))[\s.]{{0,3}}$")
_REUTERS_EDITING = re.compile(
    r"\b(?:Reporting|Additional reporting|Writing|Compiled|Reportage|Reporte|Información|Bericht|Reportagem)\b"
    r".{0,300}?\b(?:Editing|Edited|[ée]dité|[Ee]ditado|[Rr]edigiert|[Ee]dizione|[Ee]dição)\b"
)
_CONTRIBUTED = re.compile(
    rf"(?<!\w)(?P<names>{_NAMES})(?!\w)(?:['’]s)?(?:\s+[\w.'’-]+){{0,7}}?\s+"
    r"(?:contributed|(?:was|were)\s+used\s+in\s+this|a\s+contribué|ont\s+contribué|contribuyó|contribuyeron"
    r"|contribuiu|contribuíram|ha\s+contribuito|hat\s+beigetragen|haben\s+beigetragen)\b"
    r"|(?i:(?:information|material|reporting)\s+from)\s+(?:the\s+)?(?P<source>{_NAMES})(?!\w).{0,40}(?i:was\s+used|contributed)"
)
_WITH = re.compile(
    r"[\s(\[—–-]*(?i:with\s+(?:(?:additional\s+)?(?:inputs?|reporting|files|material|information)\s+(?:from|by)\s+)?"
    r"|avec\s+(?:l['’]\s*)?|mit\s+material\s+(?:von|der|aus)\s+|mit\s+|unter\s+verwendung\s+von\s+material\s+(?:von|der)\s+"
    r"|con\s+(?:informaci[oó]n(?:es)?\s+de\s+|informazioni\s+d[ai]\s+)?|com\s+(?:informa[cç][oõ]es\s+d[aoe]s?\s+)?"
    r"|met\s+|based\s+on\s+reports\s+from\s+|по\s+материалам\s+|с\s+|综合|綜合)"
    rf"(?:the\s+|The\s+|la\s+|der\s+|de\s+la\s+|da\s+|de\s+|des\s+)?(?P<names>{_NAMES})(?:报道|報道|消息)?[\s)\].]*"
    rf"|[\s(]*(?P<based>{_NAMES})(?:の記事|電)?を(?:基|もと)に(?:作成|構成)[\s)]*"
)
_CONTRIBUTING = re.compile(rf"(?i:contributing|contributors?)\s*:.*?(?<!\w)(?P<names>{_NAMES})(?!\w)")
# Captions and picture credits: a line with one of these credits a photo, not the story.
_PHOTO = re.compile(
    r"(?i:\bphoto|\bfoto|\bbild\b|\bimage\b|\bpicture\b|\bpic\b|\bcredit\s*:|getty|\(c\))"
    r"|Фото|фото|Снимок|صورة|照片|图片|圖片|写真|画像|摄|攝|©|REUTERS/|/\s*(?:AP|AFP|dpa|Reuters|EFE|ANSA)\s*\)?\s*$"
)
# Substrings (casefolded) that every match of _PHOTO, or of _CONTRIBUTED, contains: most lines
# have none, and a substring test is much cheaper than the patterns.
_PHOTO_HINTS = ("photo", "foto", "bild", "image", "picture", "pic", "credit", "getty", "(c)", "фото", "снимок", "صورة",
                "照片", "图片", "圖片", "写真", "画像", "摄", "攝", "©", "/")
_CONTRIBUTED_HINTS = ("contribu", "beigetragen", "used")

_HEAD_LINES = 3
_TAIL_LINES = 3
_LINE_CHARS = 300
_SCAN_CHARS = 1500
_EVIDENCE_CHARS = 200


def detect_credit(text: str, author: str | None = None) -> AgencyCredit | None:
    """The wire agency an article credits, with the evidence, or None.

    A full credit (dateline, byline, sign-off) wins over a contributor credit; among
    credits of one kind, the dateline comes first, then the byline, then the last lines.

    Args:
        text: the article's text.
        author: the page's author/byline metadata (None when it has none).
    """
    head = [line[:_LINE_CHARS] for line in _lines(text[:_SCAN_CHARS])[:_HEAD_LINES]]
    # The last line first; a long line keeps its end, where a sign-off stands.
    tail = [line[-_LINE_CHARS:] for line in _lines(text[-_SCAN_CHARS:])[-_TAIL_LINES:][::-1]]
    if dateline := _dateline(head):
        return dateline
    byline = (_byline(author, "author") if author else None) or _byline_lines(head)
    if byline is not None and byline.kind == "full":
        return byline
    return _sign_off(tail) or byline or _contributor(tail)


def _lines(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _credit(names: str, kind: str, rule: str, line: str, end: int = 0) -> AgencyCredit:
    """A credit to the first agency of ``names``; its evidence is ``line``, cut to keep what ends at ``end``."""
    first = re.match(_NAME, names)
    assert first is not None  # every rule matched at least one name
    snippet = line
    if len(line) > _EVIDENCE_CHARS:
        if end < _EVIDENCE_CHARS:
            snippet = line[: _EVIDENCE_CHARS - 1] + "…"
        else:
            snippet = "…" + line[end - _EVIDENCE_CHARS + 2 : end] + ("…" if end < len(line) else "")
    return AgencyCredit(
        agency=_CANONICAL[first.group()],
        kind="full" if kind == "full" else "contributor",
        rule=rule,
        evidence=" ".join(snippet.split()),
    )


def _dateline(head: list[str]) -> AgencyCredit | None:
    for line in head:
        for pattern in (_DATELINE, _DATELINE_PLACE_IN, _DATELINE_BRACKETS, _DATELINE_AGENCY_FIRST, _DATELINE_AFTER_DASH,
                        _DATELINE_BEFORE_DASH):
            # A caption's credit ("Photo: Jane Doe/AFP/") is no dateline; what follows one may mention photos.
            if (match := pattern.match(line)) is not None and not _is_photo(line[: match.end()]):
                return _credit(match.group("names"), "full", "dateline", line)
    return None


def _byline(who: str, rule: str) -> AgencyCredit | None:
    """A byline naming an agency: "The Associated Press", "Jovan Kesler, Reuters", "By AFP", "Reuters staff".

    "Le Figaro avec AFP" is a contributor credit: the outlet's story with the agency's material.
    """
    line = unicodedata.normalize("NFKC", who).strip()
    evidence = f"{rule}: {line}" if rule == "author" else line
    if (by := _BYLINE_LINE.fullmatch(line)) is not None:
        line = by.group("who")
    if (joint := _BYLINE_WITH.search(line)) is not None:
        return _credit(joint.group("names"), "contributor", rule, evidence)
    for part in _BYLINE_SPLIT.split(line):
        part = _BYLINE_DESK.sub("", part.strip(" .()"))
        if (match := _BYLINE_AGENCY.fullmatch(part)) is not None:
            return _credit(match.group("names"), "full", rule, evidence)
    return None


def _byline_lines(head: list[str]) -> AgencyCredit | None:
    for line in head:
        if _BYLINE_LINE.fullmatch(line) and not _is_photo(line) and (credit := _byline(line, "byline")):
            return credit
    return None


def _sign_off(tail: list[str]) -> AgencyCredit | None:
    for line in tail:
        if (match := _DPA_CODE.search(line)) is not None:
            return _credit("dpa", "full", "dpa-code", line, match.end())
        if (match := _COPYRIGHT.search(line)) is not None:
            return _credit(match.group("names"), "full", "copyright", line, match.end())
        if (match := _AP_NOTE.search(line)) is not None:
            return _credit("AP", "full", "sign-off", line, match.end())
        if (match := _WIRE_FEED.search(line)) is not None:
            return _credit(UNNAMED, "full", "wire-feed-note", line, match.end())
        if _is_photo(line):
            continue
        if (match := _SIGN_OFF.fullmatch(line)) is not None:
            return _credit(match.group("names"), "full", "sign-off", line)
        if (match := _TRAILING.search(line)) is not None and _WITH.fullmatch(line) is None:
            return _credit(match.group("names") or match.group("dashed"), "full", "sign-off", line, match.end())
        if (match := _REUTERS_EDITING.search(line)) is not None:
            return _credit("Reuters", "full", "reuters-editing", line, match.end())
    return None


def _contributor(tail: list[str]) -> AgencyCredit | None:
    for line in tail:
        if _is_photo(line):
            continue
        if (match := _WITH.fullmatch(line)) is not None:
            return _credit(match.group("names") or match.group("based"), "contributor", "with-material", line)
        if (match := _CONTRIBUTING.match(line)) is not None:
            return _credit(match.group("names"), "contributor", "contributed", line, match.end())
        if _hinted(line, _CONTRIBUTED_HINTS) and (match := _CONTRIBUTED.search(line)) is not None:
            return _credit(match.group("names") or match.group("source"), "contributor", "contributed", line, match.end())
    return None


def _hinted(line: str, hints: tuple[str, ...]) -> bool:
    folded = line.casefold()
    return any(hint in folded for hint in hints)


def _is_photo(line: str) -> bool:
    return _hinted(line, _PHOTO_HINTS) and _PHOTO.search(line) is not None
