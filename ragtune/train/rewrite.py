"""Rewrites of a passage sentence that keep its fact, or break it: the raw material of the
support model's claims (:mod:`ragtune.train.claims`). Pure functions over strings, offline,
rule-based: small built-in tables, no tagger.

Each rewrite that keeps the fact must leave a ``keep`` span (the answer) untouched, and returns
None when it does not apply, so a caller can tell "no paraphrase found" from "the same text".

>>> paraphrase("In 1973, the embargo was ordered by OAPEC (the Arab members).", keep="1973")
'OAPEC ordered the embargo in 1973.'
>>> negate("The motor is covered for five years.")
'The motor is not covered for five years.'
>>> reverse_relation("Tesla arrived before Edison left.")
'Tesla arrived after Edison left.'
>>> change_number("$1,200", seed=1)
'$600'
"""

from __future__ import annotations

import random
import re

__all__ = [
    "change_number",
    "negate",
    "paraphrase",
    "past_tense",
    "restate",
    "reverse_relation",
]

# Plain <-> formal words of the same meaning; applied one way (left to right) and back.
_SYNONYMS = {
    "began": "started", "begin": "start", "begins": "starts", "beginning": "start",
    "started": "began", "large": "big", "big": "large", "largest": "biggest",
    "approximately": "about", "about": "roughly", "roughly": "about", "purchased": "bought",
    "bought": "purchased", "constructed": "built", "built": "constructed",
    "established": "founded", "founded": "established", "located": "situated",
    "situated": "located", "received": "got", "numerous": "many", "many": "numerous",
    "assist": "help", "help": "assist", "demonstrated": "showed", "showed": "demonstrated",
    "commenced": "began", "terminated": "ended", "ended": "finished", "finished": "ended",
    "occurred": "happened", "happened": "occurred", "individuals": "people",
    "people": "individuals", "required": "needed", "needed": "required", "attempted": "tried",
    "tried": "attempted", "obtained": "got", "sufficient": "enough", "enough": "sufficient",
    "primarily": "mainly", "mainly": "primarily", "significant": "major", "major": "significant",
    "city": "town", "died": "passed away", "children": "kids", "frequently": "often",
    "often": "frequently", "rapidly": "quickly", "quickly": "rapidly", "however": "but",
    "although": "though", "though": "although", "because": "since", "currently": "now",
    "initially": "at first", "eventually": "in the end", "considered": "regarded",
    "regarded": "considered", "called": "named", "named": "called", "known": "recognised",
    "important": "key", "key": "important", "famous": "well-known", "well-known": "famous",
    "nearly": "almost", "almost": "nearly", "total": "overall", "overall": "total",
    "produced": "made", "created": "made", "allowed": "permitted", "permitted": "allowed",
    "stated": "said", "said": "stated", "announced": "declared", "declared": "announced",
    "selected": "chosen", "chosen": "selected", "chose": "picked", "picked": "chose",
    "entire": "whole", "whole": "entire", "area": "region", "region": "area",
    "earned": "gained", "gained": "earned", "increased": "grew", "grew": "increased",
    "reduced": "cut", "led": "headed", "headed": "led", "job": "post", "post": "job",
    "caused": "led to", "used": "employed", "employed": "used", "shown": "displayed",
    "completed": "finished", "unable": "not able", "main": "principal", "principal": "main",
}  # fmt: skip

# Past participle -> simple past, for the active voice ("was built by X" -> "X built").
_PARTICIPLES = {
    "begun": "began", "drawn": "drew", "shown": "showed", "seen": "saw", "driven": "drove",
    "thrown": "threw", "spoken": "spoke", "broken": "broke", "eaten": "ate", "beaten": "beat",
    "written": "wrote", "given": "gave", "taken": "took", "known": "knew", "chosen": "chose",
    "won": "won", "built": "built", "made": "made", "held": "held", "led": "led",
    "bought": "bought", "brought": "brought", "caught": "caught", "fought": "fought",
    "taught": "taught", "sold": "sold", "told": "told", "found": "found", "paid": "paid",
    "sent": "sent", "spent": "spent", "lost": "lost", "kept": "kept", "run": "ran",
    "set": "set", "put": "put", "hit": "hit", "read": "read", "done": "did", "sung": "sang",
    "grown": "grew", "flown": "flew", "worn": "wore", "torn": "tore", "sworn": "swore",
    "ridden": "rode", "risen": "rose", "struck": "struck", "bound": "bound", "laid": "laid",
    "left": "left", "meant": "meant", "heard": "heard", "understood": "understood",
}  # fmt: skip
# Base form -> simple past, for restating do-questions ("When did X begin?" -> "X began").
_IRREGULAR_PAST = {
    "begin": "began", "become": "became", "break": "broke", "bring": "brought",
    "build": "built", "buy": "bought", "choose": "chose", "come": "came", "do": "did",
    "draw": "drew", "drive": "drove", "eat": "ate", "fall": "fell", "feel": "felt",
    "fight": "fought", "find": "found", "fly": "flew", "get": "got", "give": "gave",
    "go": "went", "grow": "grew", "have": "had", "hear": "heard", "hold": "held",
    "keep": "kept", "know": "knew", "lead": "led", "leave": "left", "lose": "lost",
    "make": "made", "mean": "meant", "meet": "met", "pay": "paid", "put": "put",
    "read": "read", "ride": "rode", "rise": "rose", "run": "ran", "say": "said", "see": "saw",
    "sell": "sold", "send": "sent", "set": "set", "sing": "sang", "sit": "sat",
    "speak": "spoke", "spend": "spent", "stand": "stood", "strike": "struck", "take": "took",
    "teach": "taught", "tell": "told", "think": "thought", "throw": "threw",
    "understand": "understood", "win": "won", "write": "wrote", "be": "was",
}  # fmt: skip
# Words whose swap reverses a relation or a comparison.
_OPPOSITES = {
    "before": "after", "earlier": "later", "more": "less", "fewer": "more",
    "larger": "smaller", "largest": "smallest", "higher": "lower", "highest": "lowest",
    "increased": "decreased", "increase": "decrease", "increases": "decreases", "rose": "fell",
    "above": "below", "north": "south", "east": "west", "northern": "southern",
    "eastern": "western", "first": "last", "oldest": "youngest", "older": "younger",
    "biggest": "smallest", "majority": "minority", "won": "lost", "maximum": "minimum",
    "inside": "outside", "upper": "lower", "longest": "shortest", "longer": "shorter",
    "best": "worst", "better": "worse", "gained": "lost", "predecessor": "successor",
    "preceded": "succeeded", "accepted": "rejected", "supported": "opposed",
    "allowed": "banned", "won't": "will", "greater": "smaller", "greatest": "smallest",
    "wealthier": "poorer", "richest": "poorest", "strongest": "weakest", "stronger": "weaker",
    "started": "ended", "upstream": "downstream",
}  # fmt: skip
_OPPOSITES |= {v: k for k, v in list(_OPPOSITES.items()) if v not in _OPPOSITES}
_AUX = re.compile(
    r"\b(is|was|are|were|can|could|will|would|has|have|had|does|did|should|may|might|must)\b"
)
_LOWER_STARTS = frozenset(
    [
        "the", "a", "an", "this", "these", "those", "it", "its", "he", "she", "they", "his", "her",
        "their", "many", "some", "most", "several", "each", "every", "all", "both", "one", "two",
        "three",
    ]
)  # fmt: skip
_DROPPABLE = re.compile(r",?\s*\b(also|very|quite|really|indeed|actually|then|still)\b,?", re.I)
_LEADING = re.compile(
    r"^(In|On|During|After|Before|By|Since|From|At|Following|Despite|According to|Under|"
    r"Throughout|Until|Within|Over)\s+([^,]{2,60}),\s+(.+?)([.!?])$"
)
_PASSIVE = re.compile(
    r"^(?P<subj>[^,;]{3,80}?)\s+(?:was|were)\s+(?P<verb>\w+)\s+by\s+(?P<agent>[^,;.()]{2,60}?)"
    r"(?P<rest>\s+(?:in|on|at|during|after|before|for|from|with)\s[^;]*)?(?P<end>[.!?])$"
)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _case_like(word: str, template: str) -> str:
    return word[:1].upper() + word[1:] if template[:1].isupper() else word


def _lower_start(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first.lower() in _LOWER_STARTS else text


def _upper_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def _outside(text: str, keep: str) -> list[tuple[int, int]]:
    """Character ranges of ``text`` outside the first occurrence of ``keep``."""
    at = text.find(keep) if keep else -1
    if at < 0:
        return [(0, len(text))]
    return [(0, at), (at + len(keep), len(text))]


def _sub_outside(
    text: str, keep: str, pattern: re.Pattern[str], replace: dict[str, str], limit: int
) -> tuple[str, int]:
    """Replace up to ``limit`` whole words found in ``replace`` outside ``keep``."""
    pieces, done, at = [], 0, 0
    ranges = _outside(text, keep)
    for match in pattern.finditer(text):
        word = match.group(0)
        inside = not any(a <= match.start() and match.end() <= b for a, b in ranges)
        if done >= limit or inside or word.lower() not in replace:
            continue
        pieces += [text[at : match.start()], _case_like(replace[word.lower()], word)]
        at = match.end()
        done += 1
    return "".join([*pieces, text[at:]]), done


_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _active(sentence: str) -> str | None:
    match = _PASSIVE.match(sentence)
    if match is None:
        return None
    verb = match["verb"].lower()
    past = _PARTICIPLES.get(verb) or (verb if verb.endswith("ed") else None)
    if past is None:
        return None
    rest = match["rest"] or ""
    return f"{_upper_start(match['agent'].strip())} {past} {_lower_start(match['subj'])}{rest}{match['end']}"


def paraphrase(sentence: str, *, keep: str, seed: int = 0, swaps: int = 2) -> str | None:
    """The sentence in other words with the same fact, or None when no rule applies.

    Rules, each applied when it can be (``keep`` always stays as written): parentheses dropped;
    a non-restrictive ``, which ...,`` clause dropped; filler adverbs dropped; a leading
    adverbial moved to the end ("In 1973, X did Y." -> "X did Y in 1973."); passive to active
    ("X was built by Y." -> "Y built X."); up to ``swaps`` words swapped for synonyms from a
    small table, chosen by ``seed``.
    """
    text = sentence.strip()
    if keep and keep not in text:
        return None
    text = re.sub(r"\s*\([^()]*\)", lambda m: m.group(0) if keep in m.group(0) else "", text)
    text = re.sub(
        r",\s+(which|who)\s[^,]{3,80},", lambda m: m.group(0) if keep in m.group(0) else "", text
    )
    text = _DROPPABLE.sub(lambda m: m.group(0) if keep in m.group(0) else "", text)
    text = re.sub(r"\s{2,}", " ", text)
    leading = _LEADING.match(text)
    if leading:
        prep, phrase, rest, end = leading.groups()
        text = f"{_upper_start(_lower_start(rest))} {prep.lower()} {phrase}{end}"
    active = _active(text)
    if active and keep in active:
        text = active
    rng = random.Random(seed)
    if rng.random() < 0.9:  # now and then only the structural rules
        text, _ = _sub_outside(text, keep, _WORDS, _SYNONYMS, swaps)
    text = _upper_start(text)
    changed = text.lower().rstrip(".") != sentence.strip().lower().rstrip(".")
    return text if changed and (not keep or keep in text) else None


def negate(sentence: str) -> str | None:
    """The sentence contradicted: a "not" removed, or added after its first auxiliary verb.

    >>> negate("The warranty does not cover drops.")
    'The warranty does cover drops.'
    """
    if re.search(r"\bnot\b", sentence):
        return re.sub(r"\s*\bnot\b", "", sentence, count=1)
    if re.search(r"n't\b", sentence):
        return (
            re.sub(r"n't\b", "", sentence, count=1).replace("ca ", "can ").replace("wo ", "will ")
        )
    match = _AUX.search(sentence)
    if match is None:
        return None
    return sentence[: match.end()] + " not" + sentence[match.end() :]


def reverse_relation(sentence: str, *, keep: str = "") -> str | None:
    """The sentence with one relation or comparison word turned to its opposite ("before" ->
    "after", "larger" -> "smaller", "north" -> "south" ...), outside ``keep``; None without one."""
    flipped, done = _sub_outside(sentence, keep, _WORDS, _OPPOSITES, 1)
    return flipped if done else None


def change_number(number_in: str, *, seed: int) -> str | None:
    """``number_in`` with its first number changed (a year by 1-15 years, a small count by a
    step, other numbers by a factor, rounded like a written number), formatted like the
    original ("1,200" keeps its comma); None without a number. Deterministic in ``seed``."""
    match = _NUMBER.search(number_in)
    if match is None:
        return None
    raw = match.group(0)
    rng = random.Random(f"{seed}:{number_in}")
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    value = float(raw.replace(",", ""))
    if decimals == 0 and 1000 <= value <= 2100 and "," not in raw:  # a year
        new = value + rng.choice([-1, 1]) * rng.randint(1, 15)
    elif value < 10 and decimals == 0:
        new = value + rng.choice([v for v in range(-3, 5) if v and value + v > 0])
    else:
        new = value * rng.choice([0.5, 0.8, 1.25, 1.5, 2.0, 3.0])
        new = round(new, decimals) if decimals else float(round(new, -_magnitude(value)))
    if new == value:
        new = value + 1
    text = f"{new:,.{decimals}f}" if "," in raw else f"{new:.{decimals}f}"
    return number_in[: match.start()] + text + number_in[match.end() :]


def _magnitude(value: float) -> int:
    """Digits to round to so that a changed number looks like a written one (1,250 -> 1,300)."""
    digits = len(str(int(abs(value))))
    return max(digits - 2, 0)


def past_tense(verb: str) -> str:
    """The simple past of an English verb in base form (a table of irregular ones, then rules).

    >>> [past_tense(v) for v in ("begin", "invent", "carry", "stop", "use")]
    ['began', 'invented', 'carried', 'stopped', 'used']
    """
    lower = verb.lower()
    if lower in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[lower]
    if lower.endswith("e"):
        return lower + "d"
    if lower.endswith("y") and len(lower) > 2 and lower[-2] not in "aeiou":
        return lower[:-1] + "ied"
    if (
        len(lower) >= 3
        and len(lower) <= 4
        and lower[-1] not in "aeiouwxy"
        and lower[-2] in "aeiou"
        and lower[-3] not in "aeiou"
    ):
        return lower + lower[-1] + "ed"
    return lower + "ed"


_COPULA = re.compile(r"^(?:what|who|which)\s+(is|was|are|were)\s+(.+?)\?*$", re.I)
_DO = re.compile(
    r"^(when|where|in what year|what year|how many\s+\w+|how much\s+\w+|what|which|whom|who)\s+"
    r"(did|does|do)\s+(.+?)\?*$",
    re.I,
)
_NOT_VERB = frozenset(
    [
        "did", "does", "do", "is", "was", "are", "were", "the", "a", "an", "of", "in", "on", "at",
        "to", "for", "from", "by", "with", "and", "or", "as",
    ]
)  # fmt: skip
_PAST = frozenset(_IRREGULAR_PAST.values()) | {"is", "are", "has", "have", "can", "will"}


def restate(question: str, answer: str, *, evidence: str = "") -> str | None:
    """A short sentence that answers ``question`` with ``answer`` by restating the question;
    None when its form is not one of those handled.

    Handled: "What/Who is X?" -> "X is A."; "Who/Which team won X?" -> "A won X."; and
    do-questions ("When did X begin?" -> "X began in A."), whose verb is found as the word after
    "did" (not after "to") whose past tense ``evidence`` (the source sentence) contains.

    >>> restate("When did the crisis begin?", "October 1973", evidence="The crisis began in October 1973.")
    'The crisis began in October 1973.'
    >>> restate("What was the price of oil in 1974?", "$12")
    'The price of oil in 1974 was $12.'
    >>> restate("Which team won Super Bowl 50?", "Denver Broncos")
    'Denver Broncos won Super Bowl 50.'
    """
    q = question.strip().rstrip("?").strip()
    answer = answer.strip().rstrip(".")
    copula = _COPULA.match(q)
    if copula:
        return _upper_start(f"{_lower_start(copula.group(2))} {copula.group(1).lower()} {answer}.")
    do = _DO.match(q)
    if do:
        return _restate_do(do.group(1).lower(), do.group(2).lower(), do.group(3), answer, evidence)
    words = q.split()
    if words and words[0].lower() in ("who", "what", "which"):
        for n in range(1, min(4, len(words))):
            verb = words[n].lower()
            if verb in _NOT_VERB - {"is", "was", "are", "were"}:
                break
            if verb.endswith("ed") or verb in _PAST or verb in ("is", "was", "are", "were"):
                return _upper_start(f"{answer} {' '.join(words[n:])}.")
    return None


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "o")):
        return verb + "es"
    if verb.endswith("y") and len(verb) > 2 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _restate_do(wh: str, aux: str, rest: str, answer: str, evidence: str) -> str | None:
    words = rest.split()
    lowered = evidence.lower()
    for i, word in enumerate(words[1:], start=1):
        if not word.isalpha() or not word.islower() or words[i - 1].lower() == "to":
            continue
        if word in _NOT_VERB or word in _LOWER_STARTS:
            continue
        form = (
            past_tense(word) if aux == "did" else (_third_person(word) if aux == "does" else word)
        )
        if not re.search(rf"\b{re.escape(form)}\b", lowered):
            continue
        subject, tail = " ".join(words[:i]), " ".join(words[i + 1 :])
        head = f"{_lower_start(subject)} {form}"
        if wh in ("when", "where", "in what year", "what year"):
            prep = "" if re.match(r"(in|on|at|during|by)\b", answer, re.I) else "in "
            body = f"{head} {tail} {prep}{answer}".replace("  ", " ")
        elif wh.startswith(("how many", "how much")):
            noun = wh.split()[-1]
            body = f"{head} {answer} {noun} {tail}".strip()
        else:
            body = f"{head} {answer} {tail}".strip()
        return _upper_start(" ".join(body.split())) + "."
    return None
