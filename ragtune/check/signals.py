"""Offline support signals for a claim against the passages it cites. Pure functions.

Each signal is a number in a fixed range; :mod:`ragtune.check.support` combines them with
weights fitted on labelled data. The lexical signals compare the claim with the cited text as a
whole and with the single passage sentence that matches it best (a swapped number or name often
appears *somewhere* in a passage, rarely in the sentence the claim paraphrases).

>>> s = lexical_signals("The motor is covered for five years.", ["The motor is covered for two years."])
>>> s["numbers"], s["local_coverage"]         # the words match; the number does not
(0.0, 1.0)

A number must also sit in a sentence about the same thing: in "Express shipping costs 8.50
pounds. European deliveries cost 12 pounds." the claim "Express shipping costs 12 pounds" finds
its 12 only in a sentence without "express" or "shipping", so ``numbers`` is well below 1.

>>> p = ["Express shipping costs 8.50 pounds. European deliveries cost 12 pounds per order."]
>>> lexical_signals("Express shipping costs 12 pounds per order.", p)["numbers"]
0.6
>>> lexical_signals("Express shipping costs 8.50 pounds.", p)["numbers"]
1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ragtune.check.citations import split_sentences

__all__ = [
    "LEXICAL_SIGNALS",
    "best_window",
    "bound_numbers",
    "content_words",
    "lexical_signals",
    "missing_terms",
    "names",
    "negations",
    "numbers",
]

LEXICAL_SIGNALS = ("coverage", "local_coverage", "numbers", "names", "negation")

_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "may",
        "me",
        "might",
        "more",
        "most",
        "must",
        "my",
        "of",
        "on",
        "or",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "also",
        "about",
        "after",
        "again",
        "against",
        "all",
        "am",
        "any",
        "because",
        "before",
        "below",
        "between",
        "both",
        "during",
        "each",
        "few",
        "further",
        "here",
        "just",
        "nor",
        "not",
        "now",
        "once",
        "only",
        "other",
        "off",
        "ours",
        "s",
        "t",
        "whose",
        "per",
        "via",
        "upon",
    ]
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "first": "1", "second": "2",
    "third": "3", "fourth": "4", "fifth": "5", "once": "1", "twice": "2", "half": "0.5",
}  # fmt: skip
_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "cannot",
        "without",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "don't",
        "doesn't",
        "didn't",
        "won't",
        "wouldn't",
        "can't",
        "couldn't",
        "shouldn't",
        "hasn't",
        "haven't",
        "hadn't",
        "n't",
    ]
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _stem(word: str) -> str:
    """A light stemmer: enough to match 'returns'/'returned'/'returning' with 'return'."""
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            return stem + "y" if suffix in ("ies", "ied") else stem
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased, lightly stemmed words that carry content (no stop words, no numbers)."""
    words = []
    for raw in _WORD.findall(text.replace("’", "'")):
        word = raw.lower().strip("'-")
        if word in _STOP or word in _NEGATIONS or word in _NUMBER_WORDS or not word:
            continue
        if word[0].isdigit():
            continue
        words.append(_stem(word))
    return words


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, digits or words, normalised ('1,000' -> '1000', 'five' -> '5')."""
    found = {m.replace(",", "").rstrip(".") for m in _NUM.findall(text)}
    for raw in _WORD.findall(text.lower()):
        if raw in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[raw])
    return found


def names(text: str) -> set[str]:
    """Capitalised words not at the start of a sentence, lower-cased: names, places, products."""
    found = set()
    for sentence, _start, _end in split_sentences(text) or [(text, 0, len(text))]:
        tokens = _WORD.findall(sentence)
        for i, token in enumerate(tokens):
            if i > 0 and token[0].isupper() and token.lower() not in _STOP:
                found.add(token.lower())
    return found


def negations(text: str) -> int:
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    return sum(w in _NEGATIONS or w.endswith("n't") for w in words)


def _share(needed: set[str] | list[str], present: set[str]) -> float:
    if not needed:
        return 1.0
    return sum(1 for w in needed if w in present) / len(needed)


def best_window(claim: str, passages: Sequence[str]) -> tuple[float, str, str]:
    """The passage sentence whose neighbourhood (it and the sentences either side) covers most
    of the claim's content words: (coverage, sentence, window)."""
    wanted = set(content_words(claim))
    best: tuple[float, str, str] = (-1.0, "", "")
    for passage in passages:
        sentences = [s for s, _a, _b in split_sentences(passage)] or [passage]
        for i, sentence in enumerate(sentences):
            window = " ".join(sentences[max(0, i - 1) : i + 2])  # a claim may join two sentences
            local = _share(wanted, set(content_words(window)))
            own = _share(wanted, set(content_words(sentence)))
            if (local, own) > (best[0], _share(wanted, set(content_words(best[1])))):
                best = (local, sentence, window)
    return (max(best[0], 0.0), best[1], best[2])


def bound_numbers(claim_numbers: set[str], wanted: set[str], passages: Sequence[str]) -> float:
    """How well the claim's numbers are found *with what the claim says about them*: per number,
    the best share of the claim's content words in a passage sentence holding that number (0
    when no sentence holds it), averaged over the numbers; 1.0 for a claim without numbers."""
    if not claim_numbers:
        return 1.0
    holders: dict[str, float] = dict.fromkeys(claim_numbers, 0.0)
    for passage in passages:
        for sentence, _a, _b in split_sentences(passage) or [(passage, 0, len(passage))]:
            present = numbers(sentence) & claim_numbers
            if present:
                share = _share(wanted, set(content_words(sentence)))
                for number in present:
                    holders[number] = max(holders[number], share)
    return round(sum(holders.values()) / len(holders), 4)


def lexical_signals(claim: str, passages: Sequence[str]) -> dict[str, float]:
    """Coverage of the claim's content words, numbers and names by the cited text, and a
    negation mismatch against the best-matching passage sentence (all in [0, 1])."""
    text = "\n".join(passages)
    wanted = set(content_words(claim))
    local, best_sentence, _window = best_window(claim, passages)
    claim_numbers = numbers(claim)
    claim_names = names(claim)
    negation = (
        float((negations(claim) > 0) != (negations(best_sentence) > 0)) if best_sentence else 0.0
    )
    words_in_text = set(content_words(text)) | {w.lower() for w in _WORD.findall(text)}
    return {
        "coverage": _share(wanted, set(content_words(text))),
        "local_coverage": local,
        "numbers": bound_numbers(claim_numbers, wanted, passages),
        "names": _share(claim_names, names(text) | words_in_text),
        "negation": negation,
    }


def missing_terms(claim: str, passages: Sequence[str]) -> dict[str, list[str]]:
    """The claim's content words (stemmed), numbers and names that the passages lack: the
    explanation behind low ``coverage``, ``numbers`` and ``names`` signals.

    >>> missing_terms("The motor is covered for ten years by Bosch.", ["The motor is covered for two years."])
    {'words': ['bosch'], 'numbers': ['10'], 'names': ['bosch']}
    """
    text = "\n".join(passages)
    words = set(content_words(text))
    present = words | {w.lower() for w in _WORD.findall(text)}
    return {
        "words": [w for w in dict.fromkeys(content_words(claim)) if w not in words],
        "numbers": sorted(numbers(claim) - numbers(text)),
        "names": sorted(n for n in names(claim) if n not in present),
    }
