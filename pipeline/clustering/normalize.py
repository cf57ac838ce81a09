"""Text normalisation for matching, kept apart from the text we display and index.

Syndicated copies of one agency story differ in ways a reader ignores: a dateline
("KYIV, Sept 30 (Reuters) -"), credit lines ("(With inputs from agencies)"),
photo captions, "Also read:" teasers, copyright footers, curly or straight quotes,
accents, case, paragraph breaks and "said" versus "says". None of that may count
as a difference when we compare two texts, so it is removed or folded here
before shingling. The result is a list of word tokens; nothing here is ever
shown to a user.

Text in any script is matched. Scripts that separate words by spaces give word
tokens. Scripts written without spaces (Han, Hiragana and Katakana, Thai, Lao,
Khmer, Myanmar) give overlapping character n-grams instead, two characters for
Han and Kana and three code points for the Southeast Asian scripts, and each
n-gram counts as one word. The thresholds on shares of shingles (Jaccard,
containment, openings) mean the same in every script, and a shingle of five
bigrams spans six characters, three or four Chinese or Japanese words, about
as specific to a passage as five English words. The settings that count words
(short texts, lead, opening) count n-grams there, about one per character:
80 characters of Chinese say about what 50 English words do, so a Chinese or
Japanese brief is short only below about 80 characters. Datelines, credit lines and
boilerplate are recognised in English, German, French, Spanish, Italian,
Portuguese, Russian, Arabic, Chinese and Japanese, and the spelling variants
outlets differ in fold to one form: Arabic alef, yaa and taa marbuta forms,
tatweel and diacritics, Hebrew points, full- and half-width forms, ß/ss,
ё/е, accents, quotes and dashes.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Agencies whose names appear in datelines and credit lines. Kept broad on
# purpose: a credit to a national agency is as much noise for matching as one
# to Reuters.
_AGENCY = (
    r"(?:AP|A\.P\.|Associated\s+Press|AFP|Agence\s+France[- ]Presse|Reuters|dpa|DPA|"
    r"agencies|Agencies|IANS|PTI|ANI|ANSA|EFE|Xinhua|Kyodo|Yonhap|UPI|Bloomberg|TASS|"
    r"Interfax|Ukrinform|AAP|CP|KNA|epd|APA|Belga|Lusa|NTB|TT|RIA(?:\s+Novosti)?)"
)

# Characters that fold to another (or to nothing): quotes, dashes, spaces,
# invisible characters, spelling variants. All outside ASCII.
_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2007": " ", "\u202f": " ",
    "\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
    # Arabic spelling variants: tatweel (kashida) is decoration; alef wasla,
    # alef maqsura and the Persian yeh and keheh are typed for alef, yaa
    # and kaf by some outlets, as taa marbuta and haa are swapped.
    "\u0640": "", "\u0671": "\u0627", "\u0649": "\u064a", "\u06cc": "\u064a", "\u06a9": "\u0643",
    "\u0629": "\u0647", "\u060c": ",", "\u061b": ";",
    "\u300c": '"', "\u300d": '"', "\u300e": '"', "\u300f": '"', "\u301d": '"', "\u301e": '"',
}
_ASCII_BYTES = bytes(range(128))

# A dateline opens a paragraph: a place in capitals or title case, an optional
# date, the agency in parentheses and a dash. Requiring the parenthesised agency
# keeps ordinary sentences that start with a capitalised place intact.
_DATELINE_AGENCY = re.compile(
    r"^\s*(?:[A-Z][\w.'/-]*(?:[ ,]+[A-Z][\w.'/-]*){0,4}\s*,?\s*"
    r"(?:[\w.]+\.?\s+\d{1,2}|\d{1,2}\.?\s+[\w.]+|\d{1,2}/\d{1,2})?\s*)?"
    r"\(\s*" + _AGENCY + r"\s*\)\s*[-:|]*\s*"
)
# All-caps place + date + dash without an agency ("KYIV, Sept 30 -").
_DATELINE_CAPS = re.compile(
    r"^\s*[A-Z]{3,}(?:[ -][A-Z]{2,}){0,3}\s*,\s*(?:[A-Z][a-z]{2,9}\.?\s+\d{1,2}|\d{1,2}\.?\s+[A-Z][a-z]{2,9})\s*[-:]+\s+"
)
# Punctuation around it disappears with tokenisation, so only the words go.
_INLINE_CREDIT = re.compile(
    r"\b" + _AGENCY + r"\s+(?:reported|reports|said|says|wrote|added)\b\.?"
    r"|\(\s*" + _AGENCY + r"\s*\)"
)

# A cheap test for the agency names before the costly credit pattern. Each
# name but "A.P" is a whole word where it matches.
_CREDIT_WORDS = (
    "AP", "A.P", "AFP", "Reuters", "dpa", "DPA", "agencies", "Agencies", "IANS", "PTI", "ANI", "ANSA", "EFE", "Xinhua",
    "Kyodo", "Yonhap", "UPI", "Bloomberg", "TASS", "Interfax", "Ukrinform", "AAP", "CP", "KNA", "epd", "APA", "Belga",
    "Lusa", "NTB", "TT", "RIA", "Associated", "Agence",
)
_MAYBE_CREDIT = re.compile(r"\b(?:" + "|".join(map(re.escape, _CREDIT_WORDS)) + r")\b")
_CREDIT_SET = frozenset(_CREDIT_WORDS)
# The names that begin with a capital, found anywhere (not only as words: a
# superset is enough), and the others, looked up as substrings: C-speed scans.
_CAPITAL_CREDITS = re.compile(
    "|".join(sorted((re.escape(name) for name in _CREDIT_WORDS if name[0].isupper()), key=len, reverse=True))
)
_OTHER_CREDITS = tuple(name for name in _CREDIT_WORDS if not name[0].isupper())

# Whole lines that are never part of the story itself.
_DROP_LINE = re.compile(
    r"""^(?:
        \(?\s*with\s+(?:inputs?|reporting|additional\s+reporting|agency\s+inputs?)\s+from\b.*
      | \(?\s*(?:additional\s+)?(?:reporting|writing|editing|compiled|translated|edited)\s+by\b.*
      | (?:also\s+read|read\s+also|read\s+more|more\s+on\s+this|related(?:\s+stories?)?|see\s+also|watch|
           recommended|don't\s+miss|must\s+read|latest|trending)\s*[:|>-].*
      | (?:photo|image|picture|file\s+photo|caption|credit|video|graphic)s?\s*(?:[:|/]|by\b).*
      | (?:follow\s+us|sign\s+up|subscribe|click\s+here|download\s+(?:the|our)\s+app|share\s+this|
           get\s+the\s+latest|join\s+our|advertisement).*
      | [-(\s\u2013\u2014]*""" + _AGENCY + r"""(?:\s+(?:reported|reports|contributed\s+to\s+this\s+report))?[)\s.]*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
# A caption: a short line credited to a photographer or agency at its end.
_CAPTION_TAIL = re.compile(
    r"(?:\((?:AP|AFP|Reuters|dpa|EPA|Getty)?\s*Photo[^)]*\)|[/|]\s*(?:AFP|AP|Reuters|dpa|EPA|Getty\s+Images|"
    r"Shutterstock|Bloomberg|Xinhua|Anadolu)[^.]{0,40})\s*\.?$",
    re.IGNORECASE,
)
# The same in the other languages we match, in folded form (accents and Arabic
# hamza gone), tried after the English patterns. The English benchmark corpus
# normalises to the same tokens with them as without.
_AGENCY_INTL = (
    r"(?:" + _AGENCY + r"(?:/[a-z]{2,4})?|Europa\s+Press|Adnkronos|AGI|LaPresse|Agencia\s+Brasil|Notimex|SDA|"
    r"ТАСС|/ТАСС/|ИТАР-ТАСС|РИА\s+Новости|Интерфакс|INTERFAX\.RU|Прайм|"
    r"رويترز|ا\s?ف\s?ب|فرانس\s+برس|ا\s?ب|د\s?ب\s?ا|واس|وام|قنا|سانا|كونا|بترا|الاناضول|شينخوا|وكالات)"
)
_CAPS_LATIN = r"[A-Z]{3,}(?:[ /-][A-Z]{2,}){0,3}"
_DATELINE_INTL = re.compile(
    r"^\s*(?:"
    # "MADRID, 5 dic 2025 (EFE).-", "Berlin (dpa/lno) -", "القاهرة، 5 ديسمبر (رويترز) -"
    r"(?:[A-Z][\w.'/-]*(?:[ ,]+[A-Z][\w.'/-]*){0,4}|[\u0621-\u064a]+(?:\s+[\u0621-\u064a]+){0,2})"
    r"\s*,?\s*(?:\d{1,2}\.?\s+[\w.]+(?:\s+\d{4})?\s*)?-?\s*\(\s*" + _AGENCY_INTL + r"\s*\)\s*[-:|.]*"
    # "(ANSA) - ROMA, 5 DIC -" and "ROMA, 5 DIC -"
    r"|(?:\(\s*" + _AGENCY_INTL + r"\s*\)\s*[-:]+\s*)?" + _CAPS_LATIN + r"\s*,\s*\d{1,2}\.?\s+[A-Za-z]{3,10}\.?(?:\s+\d{4})?\s*[-:]+"
    # "МОСКВА, 5 дек - РИА Новости.", "МОСКВА, 5 декабря. /ТАСС/.", "МОСКВА, 5 дек -"
    r"|[А-Я][А-Яа-я-]+(?:\s+[А-Я][А-Яа-я-]+){0,2}\s*[,.]\s*\d{1,2}\s+[а-я]+\.?\s*"
    r"(?:[-.]*\s*\(?" + _AGENCY_INTL + r"\)?\s*[-.:]*|-)"
    # "新华社北京12月5日电（记者 张三）", "中新网东京12月5日电"
    r"|[\u4e00-\u9fff]{0,10}\d{1,2}月\d{1,2}日(?:电|讯)\s*(?:\([^)]{0,40}\))?"
    # "【ワシントン共同】", "【北京時事】", "【环球网报道】"
    r"|【[^】]{1,24}】"
    r")\s*"
)
_INLINE_CREDIT_INTL = re.compile(r"\(\s*" + _AGENCY_INTL + r"\s*\)|\(\s*(?:共同|時事|新華社|新华社|完)\s*\)")
_AGENCY_ZH_JA = r"(?:新华社|中新社|路透社|法新社|美联社|共同社|共同|時事|時事通信社?|共同通信社?|ロイター|AFP時事|AFP=時事|新華社|聯合)"
# Lines that are never part of the story, in the other languages (matched after the English ones).
_DROP_LINE_INTL = re.compile(
    r"""^(?:
        (?:lesen\s+sie\s+(?:auch|mehr)|mehr\s+zum\s+thema|auch\s+interessant|lire\s+aussi|a\s+lire\s+(?:aussi|egalement)|
           voir\s+aussi|lea\s+tambien|lee\s+tambien|te\s+puede\s+interesar|leggi\s+anche|potrebbe\s+interessarti|
           leia\s+(?:tambem|mais)|veja\s+tambem|saiba\s+mais|читаите\s+также|смотрите\s+также|اقرا\s+ايضا|
           相关阅读|延伸阅读|相关新闻|関連記事|あわせて読みたい)\s*(?:[:|>-].*)?
      | (?:foto|fotos|bild|imagen|immagine|фото|صوره|图片?|写真)\s*[:|/].*
      | (?:anzeige|publicite|publicidad|pubblicita|publicidade|реклама|اعلان|广告|広告)
      | \(?\s*(?:mit\s+material\s+(?:von|der)|avec|con\s+informacion(?:es)?\s+de|com\s+informacoes\s+d[aeo]s?|
           по\s+материалам|с\s+использованием\s+материалов|بمساعده)\s+(?:l'\s*|la\s+|el\s+|der\s+|des\s+|)
           (?:""" + _AGENCY_INTL + r"""|agences?|agencias|agenzie|агентств\w*)
           (?:\s*(?:,|et|y|e|und|и)\s*(?:l'\s*)?(?:""" + _AGENCY_INTL + r"""|agences?|agencias|agenzie))*\s*\)?\.?
      | \(?\s*(?:fonte|fuente|quelle|источник|المصدر|来源|出典)\s*:.{0,60}
      | [-(\s/]*""" + _AGENCY_INTL + r"""[)\s./]*
      | [(\[【]?\s*(?:""" + _AGENCY_ZH_JA + r"""|完|(?:责任)?编辑\s*:.*|原标题\s*:.*)\s*[)\]】]?
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_FOOTER_MARKERS_INTL = (
    "alle rechte vorbehalten", "tous droits reserves", "todos los derechos reservados", "riproduzione riservata",
    "todos os direitos reservados", "все права защищены", "جميع الحقوق محفوظه", "版权所有", "無断転載",
)
_CAPTION_MAX_WORDS = 30
_BOILERPLATE_MAX_WORDS = 45
_FOOTER_MARKERS = ("\u00a9", "copyright", "all rights reserved", "may not be published, broadcast")
_FOOTER_MARKERS_ASCII = tuple(marker for marker in _FOOTER_MARKERS if marker.isascii())
_FOOTER_MARKERS_INTL_ASCII = tuple(marker for marker in _FOOTER_MARKERS_INTL if marker.isascii())

_WORD = re.compile(r"\w+")
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not re.match(r"\w", chr(c))})
_ASCII_NON_WORD_BYTES = bytes(c if c < 128 and re.match(r"\w", chr(c)) else 0x20 for c in range(256))
# Scripts without spaces between words: Han and Kana (with the iteration and
# prolonged-sound marks), then Thai, Lao, Myanmar and Khmer, whose vowel signs
# \w does not match.
_HAN_KANA = "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u3040-\u309f\u30a1-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_SOUTHEAST = "\u0e01-\u0e4e\u0e50-\u0e59\u0e81-\u0edf\u1000-\u109f\u1780-\u17dd\u17e0-\u17e9"
# Vowel signs of the Indic scripts, which \w does not match either: without
# them a word falls apart at every vowel sign.
_INDIC_SIGNS = "\u0900-\u0963\u0966-\u0dff"
_GRAM = {1: 2, 2: 3}  # characters per n-gram: Han and Kana, Southeast Asian scripts
_NEEDS_SCRIPTS = re.compile(f"[{_HAN_KANA}{_SOUTHEAST}{_INDIC_SIGNS}]")
_SCRIPT_TOKEN = re.compile(
    f"([{_HAN_KANA}]+)|([{_SOUTHEAST}]+)|(?:[^\\W{_HAN_KANA}{_SOUTHEAST}]|[{_INDIC_SIGNS}])+"
)
_PER_CENT = re.compile(r"\bper\s+cent\b")
_COMBINING = re.compile(r"[\u0300-\u036f\u064b-\u065f\u0670\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")
# Arabic and Hebrew marks are written as separate characters, so text with
# them can be in NFD already.
_RTL_MARK = re.compile(r"[\u064b-\u065f\u0670\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")

# Light copy edits fold to one form: outlets switch "said" to "says" or
# "told" to "tells" when they rewrite tense; a difference of tense is not a
# different story.
_CANONICAL = {
    "said": "say", "says": "say", "saying": "say",
    "told": "tell", "tells": "tell", "telling": "tell",
    "added": "add", "adds": "add", "adding": "add",
    "stated": "state", "states": "state",
    "reported": "report", "reports": "report",
    "noted": "note", "notes": "note",
    "explained": "explain", "explains": "explain",
    "warned": "warn", "warns": "warn",
    "announced": "announce", "announces": "announce",
    "percent": "pct",
}
_CANONICAL_UTF8 = {word.encode(): form.encode() for word, form in _CANONICAL.items()}


@dataclass(frozen=True, slots=True)
class MatchText:
    """What we compare: folded word tokens of the title and of the body."""

    title: tuple[str, ...]
    body: tuple[str, ...]


def fold(text: str) -> str:
    """Unicode-normalise, straighten quotes and dashes, drop accents and invisible characters."""
    # Every step below leaves ASCII text as it is (CPython flags ASCII strings,
    # so the test is free), and most English text is ASCII.
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    # str.translate looks every character up in the table once the text is not
    # ASCII; replacing only the few kinds of character present is far faster.
    for char in set(_outside_ascii(text)).intersection(_FOLD):
        text = text.replace(char, _FOLD[char])
    # Accents are inconsistent between outlets (and lost by some CMSes);
    # decompose and drop the combining marks only.
    decomposed = unicodedata.normalize("NFD", text)
    if decomposed != text or (not text.isascii() and _RTL_MARK.search(_outside_ascii(text))):
        text = unicodedata.normalize("NFC", _COMBINING.sub("", decomposed))
    return text


def _outside_ascii(text: str) -> str:
    """The characters of a text that are not ASCII, in order."""
    # Mostly ASCII text has a few of them: dropping the ASCII bytes of its UTF-8 is a
    # C loop, several times faster than a pattern's character class tried at every
    # character. A lone surrogate (from a JSON escape) goes through as it is.
    return text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")


def is_boilerplate_line(line: str) -> bool:
    """Whether a line is a credit, caption, teaser or footer rather than story text."""
    stripped = line.strip()
    if not stripped:
        return True
    words = stripped.count(" ") + 1
    # Credits, captions and footers are short; a long paragraph is story text,
    # and skipping the patterns for it is most of normalisation's speed.
    if words > _BOILERPLATE_MAX_WORDS:
        return False
    lowered = stripped.casefold()
    # An ASCII line holds none of the markers that are not ASCII (isascii() is free).
    ascii_only = lowered.isascii()
    # map over a bound method: no Python frame per marker, as a generator would make.
    if any(map(lowered.__contains__, _FOOTER_MARKERS_ASCII if ascii_only else _FOOTER_MARKERS)):
        return True
    if _DROP_LINE.match(stripped):
        return True
    # Only the end of a line can carry a caption credit; searching 80
    # characters instead of the whole line keeps this cheap.
    if words > _CAPTION_MAX_WORDS:
        return False
    if _CAPTION_TAIL.search(stripped[-80:]):
        return True
    return bool(_DROP_LINE_INTL.match(stripped)) or any(
        map(lowered.__contains__, _FOOTER_MARKERS_INTL_ASCII if ascii_only else _FOOTER_MARKERS_INTL)
    )


def strip_dateline(line: str) -> str:
    """Remove a leading dateline ("KYIV, Sept 30 (Reuters) -") from a paragraph."""
    stripped = _DATELINE_AGENCY.sub("", line, count=1)
    if stripped is line or stripped == line:
        stripped = _DATELINE_CAPS.sub("", line, count=1)
    # An agency first and the place after it ("(ANSA) - ROMA, 5 DIC -") needs
    # the second pass whatever the first found. In ASCII text only a line with
    # a parenthesis or opening in capitals can hold one of these.
    if stripped.isascii() and "(" not in stripped[:80] and not stripped[:3].isupper():
        return stripped
    return _DATELINE_INTL.sub("", stripped, count=1)


def story_lines(text: str) -> list[str]:
    """The story's own paragraphs: folded, without credits, captions, teasers or datelines."""
    folded = fold(text)
    # The credit pattern tries every name at every word, so it is searched
    # only on lines that contain one of the names the text holds as a word (it
    # matches nowhere else), or that lost a dateline.
    names = _credit_names(folded)
    lines: list[str] = []
    for raw in folded.splitlines():
        line = raw.strip()
        if not line or is_boilerplate_line(line):
            continue
        dated = False
        head = line[:100]
        if "(" in head or "-" in head or not head[:1].isascii():
            undated = strip_dateline(line)
            dated, line = undated != line, undated
        if (dated or (names and any(map(line.__contains__, names)))) and _MAYBE_CREDIT.search(line):
            line = _INLINE_CREDIT.sub(" ", line).strip()
        if "(" in line:
            line = _INLINE_CREDIT_INTL.sub(" ", line).strip()
        if line:
            lines.append(line)
    return lines


def _credit_names(folded: str) -> set[str]:
    """The agency names a text may hold as words: all those it holds, and maybe a few more.

    A name held as a word is found where it stands unless the match of "A.P"
    just before took its first letter, and then "A.P" is found on the same line.
    """
    names = set(_CAPITAL_CREDITS.findall(folded))
    names.update(filter(folded.__contains__, _OTHER_CREDITS))
    return names


def body_text(text: str) -> str:
    """The story's own paragraphs as ``tokens`` splits them: ``tokens(body_text(text))`` are the body's tokens.

    Where this text is ASCII, its tokens are its runs of ``\\w`` characters.
    """
    return _prepared(" ".join(story_lines(text)))


def canonical(word: str) -> str:
    """The form a token is compared in ("says" -> "say")."""
    return _CANONICAL.get(word, word)


def canonical_utf8(token: str | bytes) -> bytes:
    """The UTF-8 of ``canonical(token)``, for a token as ``words`` or ``word_bytes`` gives it."""
    if isinstance(token, bytes):
        return _CANONICAL_UTF8.get(token, token)
    return canonical(token).encode("utf-8")


def _prepared(text: str) -> str:
    text = text.casefold()
    if "per cent" in text:
        # "per cent" and "percent" are house style, not content.
        text = _PER_CENT.sub("percent", text)
    return text


def tokens(text: str) -> list[str]:
    """Lower-case word tokens, character n-grams in scripts without spaces; pass them through ``canonical``."""
    return words(_prepared(text))


def word_bytes(text: str) -> list[bytes] | list[str]:
    """``words(text)``, as UTF-8 bytes where the text is ASCII: for hashing the tokens, which hashes their UTF-8.

    Blanking bytes is one table lookup per byte, where a string's translate goes
    through its mapping for each character.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_NON_WORD_BYTES).split()
    return words(text)


def words(text: str) -> list[str]:
    """The tokens of a text ``body_text`` returned (lower-cased, "per cent" joined)."""
    # isascii() is free for an ASCII string (CPython flags them), and most
    # English text is ASCII once folded.
    if text.isascii():
        # \w in ASCII is letters, digits and the underscore: blank the rest and
        # split, both at C speed.
        return text.translate(_ASCII_NON_WORD).split()
    if not _NEEDS_SCRIPTS.search(text):
        return _WORD.findall(text)
    out: list[str] = []
    for match in _SCRIPT_TOKEN.finditer(text):
        run = match.group()
        n = _GRAM.get(match.lastindex or 0)
        if n is None or len(run) <= n:
            out.append(run)
        else:
            out.extend(run[i : i + n] for i in range(len(run) - n + 1))
    return out


def normalize(title: str, text: str) -> MatchText:
    """Turn an article into the tokens we shingle.

    Paragraph breaks disappear here (the body is one token stream), so an
    outlet that re-wraps paragraphs produces the same tokens.
    """
    return MatchText(title=tuple(title_tokens(title)), body=tuple(tokens(body_text(text))))


def title_tokens(title: str) -> list[str]:
    """The tokens of a title, without its dateline."""
    return tokens(strip_dateline(fold(title)))
