"""The ``toxicity`` guardrail: abuse, hate, threats, sexual content, self-harm, violence, illicit requests.

A lexicon check always runs. The text is cut into words (a s p a c e d word is one word), each word
is normalised (NFKC, case-folded, leetspeak read back: ``sh1t``, ``$hit``; long runs of a letter
shortened; ``*`` and ``#`` standing for hidden letters: ``f*ck``) and looked up with its common
endings removed, so matching is by whole words and "Scunthorpe" or "assassin" stay clean. Phrases
("kill myself") are matched word by word, and a few patterns over the normalised words catch what a
list cannot ("you are a ...", "<group> are vermin", "how to make <drug or weapon>").

Each hit weighs into its category; a category's score is the noisy-OR of its hits' weights (one
"stupid" is weak, a directed insult is strong). Categories are OpenAI's moderation names, so the
gateway's ``/v1/moderations`` can report them as they are.

With ``classifier: true`` the ``alt-profanity-check`` model (a linear SVM over character n-grams,
shipped in its wheel) scores how offensive the whole text is; see :func:`_combine_classifier`.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from llmops.guardrails.base import (
    CheckContext,
    Finding,
    Guardrail,
    GuardrailError,
    GuardrailUnavailable,
    Verdict,
    fraction,
    param,
    unknown_params,
)

CATEGORIES: tuple[str, ...] = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "self-harm", "sexual",
    "sexual/minors", "violence", "violence/graphic", "illicit", "illicit/violent",
)  # fmt: skip
DEFAULT_THRESHOLD = 0.5
_EXTRA_WORD_WEIGHT = 1.0  # a word an operator adds is decisive
_MAX_REPEATS = 3  # occurrences of one term that still add weight

# fmt: off
# (category, weight, terms): single words match with common endings (-s, -ed, -ing, -er); phrases word
# by word. Kept short on purpose: the patterns below and the optional classifier do the rest.
_LEXICON: tuple[tuple[str, float, str], ...] = (
    ("harassment", 0.85, "fuck you|fuck off|go fuck yourself|kill yourself|kys|go die|piece of shit|"
        "suck my dick|eat shit|shut the fuck up|nobody likes you|nobody loves you|nobody wants you|"
        "hope you die|drop dead|die in a fire|little shit"),
    ("harassment", 0.6, "asshole|bitch|cunt|dickhead|twat|wanker|shithead|motherfucker|dumbass|retard|"
        "scumbag|douchebag|go to hell|screw you|piss off|jackass|whore|slut|stfu|gtfo"),
    ("harassment", 0.4, "idiot|moron|imbecile|bastard|prick|loser|worthless|pathetic|cretin|dimwit|halfwit|"
        "twit|brainless|dumbest|stupidest"),
    ("harassment", 0.25, "fuck|fucking|shit|stupid|dumb|ugly|shut up|freak|creep|get lost|noob"),
    ("harassment", 0.1, "damn|crap"),
    ("hate", 0.9, "nigger|nigga|faggot|kike|spic|chink|wetback|tranny|raghead|sand nigger|white power|"
        "heil hitler|master race|race traitor|subhuman|untermensch"),
    ("hate", 0.6, "jihadi scum|white trash|ethnic cleansing"),
    ("hate", 0.45, "fag|dyke"),
    ("self-harm", 0.85, "kill myself|end my life|take my own life|commit suicide|slit my wrists|hang myself|"
        "better off dead|no reason to live|want to die|wanna die|don't want to live|starve myself"),
    ("self-harm", 0.45, "suicide|suicidal|self harm|self injury|cut myself|hurt myself|cutting myself|"
        "overdose on|anorexia tips|thinspiration"),
    ("sexual", 0.85, "blowjob|handjob|send nudes|anal sex|oral sex|suck my|strip for me|deepthroat|"
        "cumshot|gangbang"),
    ("sexual", 0.6, "porn|porno|pornography|pornographic|horny|orgasm|dildo|hentai|milf|sex tape|"
        "have sex with|masturbate|masturbation|nudes|threesome|sexting"),
    ("sexual", 0.4, "nude|naked|boobs|tits|pussy|cock|dick|cum|nsfw|fetish|sexy|seduce|erotic"),
    ("sexual", 0.15, "sex|sexual|lingerie|xxx"),
    ("violence", 0.6, "behead|lynch|rape|strangle"),
    ("violence", 0.4, "murder|stab|torture|massacre|slaughter|kidnap|maim|beat up|shoot up"),
    ("violence", 0.2, "kill|shoot|bomb|weapon|gun|knife|attack|fight|blood|punch|assault|genocide|blow up|"
        "mass shooting|school shooting|terrorist attack|bomb threat"),
    ("violence/graphic", 0.75, "dismember|disembowel|decapitate|mutilate|eviscerate|skinned alive|"
        "burned alive|flayed|guts spilling|brains splattered|entrails"),
    ("violence/graphic", 0.45, "gore|gory|gruesome|bloodbath|severed head|pool of blood"),
    ("illicit", 0.6, "cook meth|launder money|shoplift|hotwire|hot wire|credit card skimmer|fake passport|"
        "counterfeit money|counterfeit bills|buy stolen|sell drugs|drug dealing"),
    ("illicit", 0.3, "without getting caught|untraceable|dark web|tax evasion|phishing kit|ransomware|"
        "lock picking|burner phone"),
)
_INSULTS = (r"(?:idiot|moron|imbecile|loser|bitch|asshole|cunt|bastard|retard|dumbass|jackass|scumbag|"
            r"douchebag|dickhead|twat|wanker|prick|failure|disgrace|waste of space|piece of (?:shit|garbage|"
            r"trash)|pig|slut|whore|freak|creep|clown|nobody|twit|shit|trash|garbage)s?")
_INSULT_ADJECTIVES = (r"(?:worthless|pathetic|stupid|ugly|useless|disgusting|dumb|retarded|a joke|brainless|"
                      r"(?:the )?(?:dumbest|stupidest|ugliest|worst))")
_INSULT_MODIFIERS = (r"(?:such|so|a|an|the|fucking|absolute|complete|total|utter|little|big|stupid|pathetic|"
                     r"worthless|fat|ugly|dumb|useless|disgusting|sad|dirty|brainless|filthy|miserable)")
_GROUPS = (r"(?:jews|jewish people|muslims|christians|catholics|hindus|sikhs|arabs|blacks|black people|"
           r"whites|white people|asians|chinese|indians|mexicans|latinos|africans|immigrants|migrants|"
           r"refugees|"
           r"gays|gay people|lesbians|homosexuals|trans people|transgender people|women|men|gypsies|roma|"
           r"disabled people|foreigners)")
_DEHUMANISING = (r"(?:animals|vermin|rats|cockroaches|parasites|subhuman|inferior|savages|filth|a disease|"
                 r"a plague|scum|trash|pigs|monkeys|apes|dogs|a cancer|evil|less than human)")
_HARMFUL_GOODS = (r"(?:meth|methamphetamine|crystal meth|cocaine|crack|heroin|fentanyl|lsd|mdma|ecstasy|ghb|"
                  r"date rape drugs?|roofies)")
_WEAPONS = (r"(?:(?<!bath )(?<!seed )bombs?|pipe bombs?|explosives?|napalm|thermite|ricin|sarin|anthrax|"
            r"nerve agents?|mustard gas|chlorine gas|poison(?! ivy| oak| control| cent)|ghost guns?|"
            r"untraceable guns?|silencers?|suppressors?|molotov(?: cocktails?)?|grenades?|tnt|c4|dynamite|"
            r"bioweapons?|chemical weapons?|dirty bombs?)")
_HOW_TO = (r"(?:how (?:to|do i|can i|would i|do you|could i|should i)|ways to|steps to|guide to|help me|"
           r"teach me|explain how to|tell me how to|instructions (?:for|to|on)|recipe for)")
_MAKE = r"(?:make|build|cook|synthesi[sz]e|produce|manufacture|brew|grow|buy|get|obtain|order|smuggle|sell)"
_MAKE_ANCHORS = "make|build|cook|synthes|produce|manufacture|brew|grow|buy|get|obtain|order|smuggle|sell"
_MINORS = re.compile(r"\b(?:child|children|kid|kids|minor|minors|underage|preteen|pre-teen|teen|teens|"
                     r"teenager|schoolgirl|schoolboy|toddler|infant|loli|(?:[1-9]|1[0-7])[ -]?(?:year|yr)s?"
                     r"[ -]?old)\b")

_Weights = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A pattern over the normalised words joined by single spaces, tried only when an anchor is there."""

    name: str
    weights: _Weights  # the categories a match counts for, and how much
    anchors: tuple[str, ...]
    regex: re.Pattern[str]


def _pattern(name: str, weights: _Weights, anchors: str, regex: str) -> _Pattern:
    return _Pattern(name, weights, tuple(anchors.split("|")), re.compile(regex))


_THREAT = (("harassment/threatening", 0.85), ("harassment", 0.7), ("violence", 0.6))
_PATTERNS: tuple[_Pattern, ...] = (
    _pattern("insult_you_are", (("harassment", 0.8),), "you|ur|u r",
        rf"\b(?:you(?:'re| are| r)|ur|u r|your a)(?: {_INSULT_MODIFIERS})* "
        rf"(?:{_INSULTS}|{_INSULT_ADJECTIVES})\b"),
    _pattern("insult_you", (("harassment", 0.8),), "you",
        rf"\byou(?: {_INSULT_MODIFIERS})* {_INSULTS}\b"),
    _pattern("threat", _THREAT, "i |i'",
        r"\bi(?:'ll| will| am going to|'m going to|'m gonna| gonna| shall| want to| wanna| am gonna)? "
        r"(?:\w+ ){0,3}?(?:(?:kill|murder|hurt|stab|shoot|beat|strangle|rape|torture|choke|burn) (?:you|u|ya|"
        r"your (?:family|kids|children|wife|husband|mother|dog))\b(?! (?:a|an) (?:message|email|e-mail|text|"
        r"note|line|dm|pm|quick))|break your (?:neck|legs|arms|face|bones))"),
    _pattern("insult_family", (("harassment", 0.8),), "your",
        rf"\byour (?:mom|mother|mum|mama|sister|wife|dad|father|girlfriend|family)(?:'s| is) "
        rf"(?:a |an |such a )?(?:{_INSULT_MODIFIERS} )*{_INSULTS}\b"),
    _pattern("threat_phrase", (("harassment/threatening", 0.75), ("harassment", 0.6)),
        "dead|back|live|pay|suffer|regret|eye open",
        r"\b(?:you(?:'re| are) (?:so |a )?dead(?: meat)?\b|watch your back|i know where you live|"
        r"you will pay for|i'll make you (?:suffer|pay|regret)|you'll regret (?:this|it)|"
        r"sleep with one eye open)"),
    _pattern("dehumanising", (("hate", 0.8),), " are | is | r ",
        rf"\b{_GROUPS} (?:are|is|r) (?:all |just |nothing but |like |no better than )?{_DEHUMANISING}\b"),
    _pattern("group_should_die", (("hate", 0.85), ("hate/threatening", 0.85)),
        "should|must|deserve|need to",
        rf"\b{_GROUPS} (?:should|must|deserve to|need to) (?:all )?(?:die|be killed|be exterminated|"
        rf"be gassed|be deported|be wiped out|be shot|burn|hang|be hanged|be eradicated|be removed|"
        rf"go back)\b"),
    _pattern("kill_group", (("hate/threatening", 0.9), ("hate", 0.85), ("violence", 0.7)),
        "kill|exterminat|gas |shoot|lynch|hang|burn|wipe|eradicat|purge",
        rf"\b(?:kill|exterminate|gas|shoot|lynch|hang|burn|wipe out|eradicate|purge) (?:(?:all|every|the|"
        rf"those|these) ){{1,2}}(?:fucking |dirty |damn )?{_GROUPS}\b"),
    _pattern("hate_group", (("hate", 0.6),), "hate|despise|stand",
        rf"\bi (?:hate|despise|can't stand) (?:all |those |these |the |fucking |dirty )?{_GROUPS}\b"),
    _pattern("self_harm_how", (("self-harm", 0.9),), "kill|suicide|cut|overdose|hang|die",
        r"\b(?:how (?:to|do i|can i|should i)|best way to|easiest way to|painless way to|ways to) (?:\w+ )?"
        r"(?:kill myself|commit suicide|end my life|cut myself|overdose|hang myself|die)\b"),
    _pattern("drugs_how", (("illicit", 0.8),), _MAKE_ANCHORS,
        rf"\b{_HOW_TO} (?:\w+ ){{0,3}}?{_MAKE} (?:\w+ ){{0,2}}?{_HARMFUL_GOODS}\b"),
    _pattern("weapons_how", (("illicit", 0.8), ("illicit/violent", 0.85)), _MAKE_ANCHORS,
        rf"\b{_HOW_TO} (?:\w+ ){{0,3}}?{_MAKE} (?:\w+ ){{0,2}}?{_WEAPONS}\b"),
    _pattern("hack_into", (("illicit", 0.7),), "into",
        r"\b(?:hack|break|get) into (?:\w+ ){0,2}?(?:someone(?:'s)?|somebody(?:'s)?|my (?:ex|neighbou?r|"
        r"boss|wife|husband|girlfriend|boyfriend|partner)(?:'s)?|(?:an?|his|her|their) (?:account|email|"
        r"phone|bank))"),
    _pattern("steal", (("illicit", 0.6),), "steal|clon|skim",
        r"\b(?:steal|stealing|clone|cloning|skim|skimming) (?:\w+ ){0,2}?(?:credit cards?|identit(?:y|ies)|"
        r"cars?|passwords?|bank details|social security numbers?)\b"),
    _pattern("evade_capture", (("illicit", 0.5),), "caught|detected|traced",
        r"\b(?:without|avoid|not|never) (?:getting|being) (?:caught|detected|traced)\b"),
)
# fmt: on

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_LEET = str.maketrans("013457@$!|", "oieastasil")
_TOKEN = re.compile(r"[^\W_][\w*#@$!|'’\u00ad\u200b\u200c\u200d\u2060]*")
_TRAILING = "!|'’_"  # "idiot!" is "idiot"; "sh!t" keeps its "!"
_MASKED_START = re.compile(r"(?<![^\W_])[@$][^\W_*#@$]")
_SPACED_WORD = re.compile(r"(?<![^\W_])(?:[^\W_][ .]){2,}[^\W_](?![^\W_])")
_REPEATS = re.compile(r"(.)\1{2,}")
_LEET_CHARACTER = re.compile(r"[013457@$!|]")
_SPACED_SEPARATORS = re.compile(r"[ .]")
_SUFFIXES = (
    ("'s", ""),
    ("ing", ""),
    ("ing", "e"),
    ("ers", ""),
    ("er", ""),
    ("ed", ""),
    ("ed", "e"),
    ("es", ""),
    ("s", ""),
)
_MIN_STEM = 3
_READ_CACHE = 16_384  # words remembered per guardrail
_ADDRESSED = re.compile(r"\b(?:you|your|yours|yourself|u|ur|ya|thou)\b")
_UNADDRESSED_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class _Token:
    """One word: where it is in the text and the lexicon forms it may stand for."""

    text: str  # normalised
    forms: frozenset[str]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Hit:
    category: str
    weight: float
    term: str
    start: int
    end: int


class _Lexicon:
    """The word lists of one guardrail: built-in terms of its categories plus the operator's words."""

    def __init__(self, categories: frozenset[str], extra: Mapping[str, list[str]]) -> None:
        self.words: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.phrases: dict[str, list[tuple[tuple[str, ...], str, float]]] = defaultdict(list)
        self.masked: dict[tuple[int, str], set[str]] = defaultdict(set)
        for category, weight, terms in _LEXICON:
            if category in categories:
                for term in terms.split("|"):
                    self._add(term, category, weight)
        for category, words in extra.items():
            for word in words:
                self._add(word, category, _EXTRA_WORD_WEIGHT)
        # Reading a word is pure and words repeat across texts: cache it (lru_cache is thread-safe).
        self.read: Callable[[str], tuple[str, frozenset[str]]] = functools.lru_cache(maxsize=_READ_CACHE)(
            self._read
        )

    def _add(self, term: str, category: str, weight: float) -> None:
        words = tuple(_normalise_word(word) for word in re.split(r"[\s-]+", term.strip()) if word)
        if len(words) == 1:
            self.words[words[0]].append((category, weight))
            self.masked[(len(words[0]), words[0][0])].add(words[0])
        elif words:
            self.phrases[words[0]].append((words, category, weight))

    def _read(self, raw: str) -> tuple[str, frozenset[str]]:
        """The word as patterns should see it (``f*cking`` as ``fucking``), and its lexicon forms."""
        word = _normalise_word(raw)
        if not word:
            return word, frozenset()
        forms = self.forms(word)
        if "*" in word or "#" in word or _REPEATS.search(word):
            known = [form for form in forms if form in self.words]
            if known:
                return max(known, key=lambda form: (len(form), form)), forms
        return word, forms

    def forms(self, word: str) -> frozenset[str]:
        """The lexicon keys ``word`` may be: itself, shortened repeats, without an ending, unmasked."""
        candidates = {word, _REPEATS.sub(r"\1", word), _REPEATS.sub(r"\1\1", word)}
        for candidate in list(candidates):
            for suffix, replacement in _SUFFIXES:
                if candidate.endswith(suffix) and len(candidate) - len(suffix) >= _MIN_STEM:
                    stem = candidate[: -len(suffix)]
                    candidates.add(stem + replacement)
                    if len(stem) > _MIN_STEM and stem[-1] == stem[-2]:  # stabbing -> stab
                        candidates.add(stem[:-1])
        if "*" in word or "#" in word:
            candidates.update(self._unmask(candidate) for candidate in list(candidates))
        return frozenset(candidates)

    def _unmask(self, word: str) -> str:
        """The listed word that ``f*ck`` or ``sh#t`` hides (first letter shown), else the word itself."""
        if word[0] in "*#":
            return word
        for known in sorted(self.masked.get((len(word), word[0]), ())):
            if all(shown in "*#" or shown == letter for shown, letter in zip(word, known, strict=True)):
                return known
        return word


def _normalise_word(word: str) -> str:
    """Case-folded, NFKC, zero-width characters dropped, leetspeak read back (digits in words only)."""
    if word.isascii():
        word = word.lower()
    else:
        word = unicodedata.normalize("NFKC", word.translate(_ZERO_WIDTH)).casefold().replace("’", "'")
    if not word.isdigit() and _LEET_CHARACTER.search(word):
        word = word.translate(_LEET)
    return word


def _tokens(text: str, lexicon: _Lexicon) -> list[_Token]:
    """The words of ``text`` in order; a s p a c e d or d.o.t.t.e.d word counts as one."""
    tokens = []
    for start, end, raw in _raw_words(text):
        canonical, forms = lexicon.read(raw)
        if canonical:
            tokens.append(_Token(canonical, forms, start, end))
    return tokens


def _raw_words(text: str) -> Iterator[tuple[int, int, str]]:
    position = 0
    runs = [(run.start(), run.end()) for run in _SPACED_WORD.finditer(text)] if " " in text else []
    for run_start, run_end in [*runs, (len(text), len(text))]:
        for match in _TOKEN.finditer(text, position, run_start):
            begin, word = match.start(), match.group().rstrip(_TRAILING)
            if begin > 0 and text[begin - 1] in "$@" and _MASKED_START.match(text, begin - 1):
                begin -= 1  # $hit, @ss: the symbol is a letter
                word = text[begin] + word
            yield begin, begin + len(word), word
        if run_start < run_end:
            yield run_start, run_end, _SPACED_SEPARATORS.sub("", text[run_start:run_end])
        position = run_end


class ToxicityGuardrail(Guardrail):
    """Abusive, hateful, threatening, sexual, self-harm, violent and illicit content, by category."""

    kind = "toxicity"
    can_redact = True

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, ("threshold", "categories", "extra_words", "classifier"), self.kind)
        self.threshold = fraction(params, "threshold", DEFAULT_THRESHOLD)
        self.categories = _categories(param(params, "categories", list, list(CATEGORIES)))
        # sexual/minors is told from sexual content, so that is scored even when only the former is asked for
        self._scored = self.categories | ({"sexual"} if "sexual/minors" in self.categories else set())
        extra = _extra_words(param(params, "extra_words", dict, {}), self.categories)
        self._lexicon = _Lexicon(self._scored, extra)
        self._patterns = tuple(
            pattern
            for pattern in _PATTERNS
            if any(category in self._scored for category, _ in pattern.weights)
        )
        self._classifier: _ProfanityModel | None = None
        if param(params, "classifier", bool, False):
            _require_profanity_check()
            self._classifier = _ProfanityModel()
            self.slow = True

    def check(self, text: str, context: CheckContext) -> Verdict:
        hits = self._hits(text)
        scores = _scores(hits, self._scored)
        if "sexual/minors" in self.categories and scores["sexual"] > 0.0:
            if _MINORS.search(" ".join(text.casefold().split())):
                scores["sexual/minors"] = scores["sexual"]
        scores = {name: score for name, score in scores.items() if name in self.categories}
        details: dict[str, Any] = {}
        if self._classifier is not None and text.strip():
            probability = round(self._classifier.probability(text), 4)
            details["classifier"] = probability
            if "harassment" in self.categories:
                addressed = _ADDRESSED.search(text.casefold()) is not None
                scores["harassment"] = _combine_classifier(scores["harassment"], probability, addressed)
        scores = {name: round(score, 4) for name, score in scores.items()}
        matched = sorted(
            (name for name, score in scores.items() if score >= self.threshold),
            key=scores.__getitem__,
            reverse=True,
        )
        details = {"categories": scores, "matched": matched, **details}
        if not matched:
            return Verdict(False, max(scores.values(), default=0.0), "", (), details)
        findings = tuple(Finding(hit.category, hit.start, hit.end) for hit in _spans(hits, set(matched)))
        reason = "toxic content: " + ", ".join(f"{name} {scores[name]:.2f}" for name in matched)
        return Verdict(True, scores[matched[0]], reason, findings, details)

    def _hits(self, text: str) -> list[_Hit]:
        tokens = _tokens(text, self._lexicon)
        hits = list(self._word_hits(tokens))
        hits.extend(self._pattern_hits(tokens))
        return hits

    def _word_hits(self, tokens: list[_Token]) -> Iterator[_Hit]:
        words, phrases = self._lexicon.words, self._lexicon.phrases
        for index, token in enumerate(tokens):
            best: dict[str, tuple[float, str]] = {}  # per category, the heaviest reading of the word
            for form in token.forms:
                for category, weight in words.get(form, ()):
                    best[category] = max(best.get(category, (0.0, "")), (weight, form))
                for phrase, category, weight in phrases.get(form, ()):
                    following = tokens[index : index + len(phrase)]
                    if len(following) == len(phrase) and all(
                        word in other.forms for word, other in zip(phrase[1:], following[1:], strict=True)
                    ):
                        yield _Hit(category, weight, " ".join(phrase), token.start, following[-1].end)
            for category, (weight, form) in best.items():
                yield _Hit(category, weight, form, token.start, token.end)

    def _pattern_hits(self, tokens: list[_Token]) -> Iterator[_Hit]:
        joined = " ".join(token.text for token in tokens)
        offsets = list(_offsets(tokens))
        for pattern in self._patterns:
            if not any(anchor in joined for anchor in pattern.anchors):
                continue
            for match in pattern.regex.finditer(joined):
                first = bisect.bisect_right(offsets, match.start()) - 1
                last = bisect.bisect_right(offsets, max(match.end() - 1, match.start())) - 1
                for category, weight in pattern.weights:
                    yield _Hit(category, weight, pattern.name, tokens[first].start, tokens[last].end)


def _offsets(tokens: list[_Token]) -> Iterator[int]:
    """Where each token starts in the words joined by single spaces."""
    position = 0
    for token in tokens:
        yield position
        position += len(token.text) + 1


def _scores(hits: list[_Hit], categories: frozenset[str]) -> dict[str, float]:
    """Each category's noisy-OR of its hits' weights, a term counted at most :data:`_MAX_REPEATS` times."""
    misses = dict.fromkeys(sorted(categories, key=CATEGORIES.index), 1.0)
    counted: dict[tuple[str, str], int] = defaultdict(int)
    for hit in hits:
        if hit.category in misses and counted[(hit.category, hit.term)] < _MAX_REPEATS:
            counted[(hit.category, hit.term)] += 1
            misses[hit.category] *= 1.0 - hit.weight
    return {name: 1.0 - miss for name, miss in misses.items()}


def _spans(hits: list[_Hit], categories: set[str]) -> list[_Hit]:
    """The hits of the flagged categories, in text order, without overlaps (the longest first)."""
    chosen: list[_Hit] = []
    for hit in sorted((h for h in hits if h.category in categories), key=lambda h: (h.start, -h.end)):
        if not chosen or hit.start >= chosen[-1].end:
            chosen.append(hit)
    return chosen


def _combine_classifier(lexicon: float, probability: float, addressed: bool) -> float:
    """Harassment with the classifier: its probability counts fully when the text addresses someone.

    The model scores profanity of any kind ("this movie was fucking awesome" as much as an insult),
    so where no one is addressed ("you", "your") it adds only a quarter of its probability.
    """
    support = probability if addressed else probability * _UNADDRESSED_SHARE
    return 1.0 - (1.0 - lexicon) * (1.0 - support)


def _categories(names: list[Any]) -> frozenset[str]:
    """The categories asked for; a parent ("violence") brings its subcategories ("violence/graphic")."""
    if not names or not all(isinstance(name, str) for name in names):
        raise GuardrailError(
            "guardrail parameter 'categories' must be a non-empty list of names", param="categories"
        )
    unknown = [name for name in names if name not in CATEGORIES]
    if unknown:
        raise GuardrailError(
            f"guardrail 'toxicity' has no category {unknown[0]!r} (known: {', '.join(CATEGORIES)})",
            param="categories",
        )
    return frozenset(c for c in CATEGORIES if c in names or c.split("/")[0] in names)


def _extra_words(extra: dict[Any, Any], categories: frozenset[str]) -> dict[str, list[str]]:
    for category, words in extra.items():
        if category not in CATEGORIES:
            raise GuardrailError(
                f"guardrail parameter 'extra_words' has no category {category!r} "
                f"(known: {', '.join(CATEGORIES)})",
                param="extra_words",
            )
        if not isinstance(words, list) or not all(isinstance(word, str) and word.strip() for word in words):
            raise GuardrailError(
                f"guardrail parameter 'extra_words' must map {category!r} to a list of words",
                param="extra_words",
            )
    return {category: words for category, words in extra.items() if category in categories}


class _ProfanityModel:
    """alt-profanity-check's model, imported on first use (it loads its files on import) under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._predict: Any = None

    def probability(self, text: str) -> float:
        if self._predict is None:
            with self._lock:
                if self._predict is None:
                    import importlib

                    self._predict = importlib.import_module("profanity_check").predict_prob
        return float(self._predict([text])[0])


def _require_profanity_check() -> None:
    """GuardrailUnavailable unless alt-profanity-check (and its scikit-learn) can be imported."""
    import importlib.util

    if importlib.util.find_spec("profanity_check") is None or importlib.util.find_spec("sklearn") is None:
        raise GuardrailUnavailable(
            "the toxicity classifier needs alt-profanity-check: pip install 'llmops[guard]'",
            param="classifier",
        )
