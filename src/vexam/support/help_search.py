"""Search over the help centre's answers (`help_topics`), and their texts filled in.

Search runs on the server (it works without JavaScript) over both languages at once: a
Chinese query on the English page, or an English one on the Chinese page, still finds its
answer. Chinese has no spaces, so a Chinese word that is not found whole is matched by its
two-character pieces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from vexam.core.i18n import LOCALES, gettext
from vexam.support.help_topics import SECTIONS, TOPICS, Topic

_WORD_SPLIT = re.compile(r"[\s,，。、;；:：!！?？/（）()\"'“”]+")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _normalise(text: str) -> str:
    # Full-width letters and digits (common on Chinese keyboards) count as plain ones.
    return unicodedata.normalize("NFKC", text).casefold()


def fill(locale: str, message: str, params: Mapping[str, Any]) -> str:
    """`message` translated into `locale` with its `{placeholders}` filled from `params`."""
    text = gettext(locale, message)
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text


def _haystacks(topic: Topic, params: Mapping[str, Any]) -> tuple[str, str, str]:
    """(titles, keywords, everything) of `topic` in every language, normalised."""
    titles = " ".join(gettext(locale, topic.title) for locale in LOCALES)
    keywords = " ".join(gettext(locale, topic.keywords) for locale in LOCALES)
    answers = " ".join(fill(locale, part, params) for locale in LOCALES for part in topic.answer)
    codes = " ".join([*topic.codes, *(code.replace("_", " ") for code in topic.codes)])
    everything = " ".join([titles, keywords, answers, codes, topic.slug])
    return _normalise(titles), _normalise(keywords), _normalise(everything)


def _term_score(term: str, titles: str, keywords: str, everything: str) -> float:
    """How well one query term matches: 0 (not at all) to 3 (in a title)."""
    if term in titles:
        return 3.0
    if term in keywords:
        return 2.0
    if term in everything:
        return 1.0
    if _CJK.search(term) and len(term) >= 3:
        # No spaces in Chinese: 收不到验证码 is found through 收不, 不到, 验证, 证码 ...
        pieces = [term[i : i + 2] for i in range(len(term) - 1)]
        found = sum(1 for piece in pieces if piece in everything)
        if found / len(pieces) >= 0.6:
            return found / len(pieces)
    return 0.0


def search(query: str, params: Mapping[str, Any]) -> list[Topic]:
    """Topics answering `query` (any language), best first; [] for a blank query.

    Topics matching every term come first; when none does, topics matching any term.
    """
    terms = [term for term in _WORD_SPLIT.split(_normalise(query)) if term][:12]
    if not terms:
        return []
    every: list[tuple[float, int, Topic]] = []
    some: list[tuple[float, int, Topic]] = []
    for index, topic in enumerate(TOPICS):
        titles, keywords, everything = _haystacks(topic, params)
        scores = [_term_score(term, titles, keywords, everything) for term in terms]
        total = sum(scores)
        if total <= 0:
            continue
        (every if all(scores) else some).append((-total, index, topic))
    chosen = every or some
    return [topic for _, _, topic in sorted(chosen)]


def by_section() -> list[tuple[str, list[Topic]]]:
    """Every topic grouped by section, in the order of `SECTIONS`."""
    return [
        (key, [topic for topic in TOPICS if topic.section == key])
        for key in SECTIONS
        if any(topic.section == key for topic in TOPICS)
    ]
