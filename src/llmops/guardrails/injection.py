"""The ``injection`` guardrail: prompt injection and jailbreak attempts in what users send.

Heuristics always run: weighted patterns over a normalised copy of the text (NFKC, case-folded,
zero-width characters dropped, whitespace collapsed) and over what obfuscation hides (leetspeak,
s p a c e d letters, base64 blobs, rot13, reversed text). Their weights combine as a noisy-OR, so
one strong sign ("ignore all previous instructions") or two weak ones make a high score. Each
pattern names a few literal anchors and its regular expression runs only when one is present,
which keeps an ordinary prompt near a tenth of a millisecond.

More patterns, for the general structure of an attack's intent rather than known wordings, live in
:mod:`llmops.guardrails.injection_intents`.

Two optional layers, each making the check slow (run off the event loop; ``mode: parallel`` allowed):
``semantic: true`` reads the text's sentences with the embedded MiniLM (``llmops[local]``, a few ms
to tens of ms a text; :mod:`llmops.guardrails.injection_semantic`), and ``classifier: true`` runs a
small offline transformer (the ``nanoguard`` package, ~100 ms a text on CPU). :func:`combine` says how
the scores meet. bench/injection.py measures each.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmops.guardrails.base import (
    CheckContext,
    Guardrail,
    GuardrailUnavailable,
    Verdict,
    fraction,
    param,
    unknown_params,
)
from llmops.guardrails.injection_intents import INTENT_PATTERNS
from llmops.guardrails.injection_semantic import SemanticMatcher, require_semantic

DEFAULT_THRESHOLD = 0.5
_CLASSIFIER_WINDOW = 2_000  # characters per classifier call (its context is 512 tokens)
_MAX_BLOBS = 8  # base64 blobs decoded per text
_BASE64_WEIGHT = 0.2  # readable text hidden in base64 is itself a (weak) sign
_CLASSIFIER_ALONE = 0.999  # the classifier's probability that decides without any pattern
_SEMANTIC_ALONE = 0.95  # the semantic probe's probability that decides without any pattern
_SEMANTIC_AGREES = 0.8  # with the classifier: the probe's probability that confirms it
_CLASSIFIER_AGREES = 0.9  # and the classifier's
_KNOWN = ("threshold", "classifier", "semantic")


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A sign of an attack: ``regex`` is tried only when one of ``anchors`` occurs in the text."""

    name: str
    weight: float
    anchors: tuple[str, ...]
    regex: re.Pattern[str]

    def search(self, text: str) -> bool:
        return any(anchor in text for anchor in self.anchors) and self.regex.search(text) is not None


def _pattern(name: str, weight: float, anchors: str, regex: str) -> _Pattern:
    return _Pattern(name, weight, tuple(anchors.split("|")), re.compile(regex))


def _words(*alternatives: str) -> str:
    return "(?:" + "|".join(alternatives) + ")"


# fmt: off
_GAP = r"(?:\W+(?!my\b|me\b|i\b)\w+){0,4}?\W+"  # up to four other words, none of them the user's own
_IGNORE = _words(
    "ignore", "ignoring", "disregard", "disregarding", "forget", "overlook", "neglect", "bypass", "override",
    "abandon", "discard", "dismiss", "set aside", "put aside", "throw away", "throw out", "stop following",
    "don'?t follow", "do not follow", "no longer follow", "pay no attention to", "stop obeying",
)
_IGNORE_ANCHORS = "ignor|disregard|forget|overlook|neglect|bypass|override|abandon|discard|dismiss|aside|" \
    "throw|follow|attention|obey"
_EARLIER = _words(
    "previous", "previously", "prior", "preceding", "above", "earlier", "former", "original", "initial",
    "foregoing", "all", "any", "every", "your", "system", "developer'?s?",
)
_RULES = _words(
    r"instructions?", r"prompts?", r"rules?", r"directions?", r"directives?", r"guidelines?", r"commands?",
    r"orders?", r"constraints?", r"restrictions?", "programming", "training", r"polic(?:y|ies)",
    r"guardrails?", r"safeguards?", r"filters?", r"limitations?", "guidance", r"protocols?", "ethics",
    "morals", "principles", r"safety (?:measures|settings)", "conditioning",
)
_LIMITS = _words(
    r"restrictions?", r"rules?", r"filters?", "filtering", r"guidelines?", "ethics", "morals", "morality",
    r"ethical (?:guidelines|constraints|boundaries|limits)", r"moral (?:constraints|limits|boundaries)",
    "censorship", r"safeguards?", r"content polic(?:y|ies)", r"guardrails?", "moderation", "limits",
    "limitations", r"safety (?:rules|guidelines|filters|measures|protocols|restrictions)",
    r"laws (?:about|on|regarding|governing|for) (?:content|ai|what)", r"content (?:laws|rules)",
)
_LIMITS_ANCHORS = "restrict|rule|filter|guideline|ethic|moral|censor|safeguard|polic|guardrail|moderation|" \
    "limit|safety|laws"
_MODIFIER = _words(  # what may stand between "without" and "restrictions" in an attack
    "any", "all", "your", "the", "its", "their", "ethical", "moral", "content", "safety", "usual", "normal",
    "typical", "such", "those", "these", "programmed", "built-in", "imposed", "artificial", "kind of",
    "sort of", "of", "openai'?s", "anthropic'?s", "corporate", "ai",
)
_SHOW = _words(
    "reveal", "print", "show", "display", "output", "repeat", "recite", "dump", "leak", "expose", "tell me",
    "give me", "share", "write out", "write down", "spell out", "list", "return", "echo", "copy", "paste",
    "disclose", "what (?:is|are|was|were)", "quote", r"summari[sz]e", "include",
    r"(?:begin|start) (?:your )?(?:reply|response|answer|output) with",
)
_HIDDEN = _words(
    r"system (?:prompt|message|instructions?)", r"(?:initial|original|first) (?:prompt|instructions?)",
    r"hidden (?:prompt|instructions?|rules|text|preamble|message|context)", r"pre-?prompt", "preamble",
    r"(?:secret|confidential) (?:prompt|instructions?)", r"developer (?:message|prompt)", r"meta-?prompt",
    r"(?:prompt|instructions?|rules) (?:you were|you've been|you have been) given",
    r"instructions? (?:above|before this)",
    r"(?:configuration|config|setup|startup|opening) (?:message|prompt|text|instructions?)",
    r"(?:text|message|instructions?|prompt) (?:that )?you (?:received|got|were given) (?:at|in) the "
    r"(?:start|beginning)",
)
_HIDDEN_ANCHORS = "system|initial|original|first|hidden|prompt|preamble|secret|confidential|developer|" \
    "instruction|rules|config|setup|startup|opening|you received|you got|you were given"
_CONTEXT = _words(  # what an attack declares void: the earlier instructions, or all that came before
    r"(?:previous|prior|earlier|above|preceding|original|initial|old|former|existing|your|all|the|any) "
    r"(?:\w+ )?(?:instructions|guidance|rules|context|polic(?:y|ies)|configuration|setup|prompt|directions|"
    r"guidelines|orders|restrictions|programming|settings|directives)",
    r"(?:everything|anything|all|whatever|the text|the message|what) (?:(?!i\b|we\b)\w+ ){0,2}(?:above|"
    r"before|earlier|previously|prior|told|written|configured)",
    r"(?:you were|you've been|you have been|you are) (?:told|given|configured|set up|instructed|programmed|"
    r"trained)",
)
_VOID = _words(
    r"no longer (?:applies|apply|matters?|valid|relevant|in effect|binding|stands?)",
    r"(?:is|are|was|were|has been|have been|got|now) (?:now |just |all |officially )?(?:obsolete|void|"
    r"revoked|cancell?ed|cleared|reset|outdated|irrelevant|lifted|suspended|disabled|deleted|overridden|"
    r"superseded|a test|over|invalid|null|wiped)",
    r"(?:doesn'?t|don'?t|does not|do not) (?:matter|apply|count)", r"matters? (?:anymore|no more)",
    r"(?:cleared|wiped|erased|revoked|reset)\b",
)
_VOID_ANCHORS = "longer|obsolete|void|revoked|cancel|cleared|reset|outdated|irrelevant|lifted|suspended|" \
    "disabled|deleted|overridden|superseded|test|over|invalid|null|wiped|matter|apply|count|erased"
_MODES = _words(
    "developer", "dev", "god", "jailbreak", "unrestricted", "unfiltered", "opposite", "evil", "chaos", "dan",
    "uncensored", "unlocked",
)
_DEVICE = r"(?! (?:on|in|for|of) (?:my |the |your |an? )?(?:android|iphone|ios|phone|chrome|browser|" \
    r"device|windows|mac|macos|pc|tablet|xbox|samsung|pixel|tv|firefox|edge|app|vs ?code|settings))"
_CLAUSE_END = r"(?=\s*(?:[.,;:!?)\]-]|and\b|then\b|now\b|$))"
_TOLD_BEFORE = (  # "what you were told before", in Spanish, French, German, Italian, Portuguese
    r"\b(?:lo que|todo lo que) te (?:dijeron|han dicho|dije|indicaron) antes\b",
    r"\bce qu'on t'a dit (?:avant|auparavant|précédemment)\b",
    r"\bwas man dir (?:vorher|zuvor|davor) gesagt hat\b",
    r"\b(?:quello|ciò) che ti è stato detto (?:prima|finora)\b",
    r"\bo que te (?:disseram|foi dito) antes\b",
)
_IGNORE_RULES_ELSEWHERE = (  # "ignore the (previous) instructions", in other languages
    r"\b(?:ignora|olvida|olvide|descarta|omite)\b(?:\W+\w+){0,3}?\W+(?:instrucciones|reglas|órdenes)\b",
    r"\b(?:ignorez|ignorer|ignore|oublie[rz]?)\b(?:\W+\w+){0,3}?\W+(?:instructions|consignes|règles)\W+"
    r"(?:précédentes|antérieures|initiales|ci-dessus|d'avant)\b",
    r"\b(?:ignoriere|ignorieren|vergiss|vergessen)\b(?:\W+\w+){0,3}?\W+(?:anweisungen|instruktionen|vorgaben|"
    r"regeln)\b",
    r"\b(?:ignora|dimentica)\b(?:\W+\w+){0,3}?\W+(?:istruzioni|regole)\b",
    r"\b(?:ignore|ignora|esqueça|esqueca)\b(?:\W+\w+){0,3}?\W+(?:instruções|instrucoes|regras)\b",
    r"\b(?:negeer|vergeet)\b(?:\W+\w+){0,3}?\W+(?:instructies|aanwijzingen|regels)\b",
)

_PATTERNS: tuple[_Pattern, ...] = (
    # Overriding what the assistant was told.
    _pattern("ignore_instructions", 0.9, _IGNORE_ANCHORS,
        rf"\b{_IGNORE}\b{_GAP}{_EARLIER}\b{_GAP}{_RULES}\b"),
    _pattern("ignore_above", 0.6, _IGNORE_ANCHORS,
        rf"\b{_IGNORE}\W+(?:all\W+|everything\W+)?(?:of\W+)?(?:the\W+|that\W+)?(?:above|previous|prior|"
        rf"preceding|before|earlier|said)\b{_CLAUSE_END}"),
    _pattern("context_void", 0.75, _VOID_ANCHORS,
        rf"\b{_CONTEXT}\b(?:\W+(?!i\b|we\b|my\b)\w+){{0,5}}?\W+{_VOID}"),
    _pattern("forget_everything", 0.6, "forget|disregard|ignor|erase|clear|wipe",
        r"\b(?:forget|disregard|ignore|erase|clear|wipe)\W+(?:about\W+)?(?:everything|all|anything)\W+"
        r"(?:\w+\W+){0,3}?(?:above|before|previously|so far|earlier|you (?:were|have been|'ve been) "
        r"(?:told|taught|given|trained|programmed))\b"),
    _pattern("wipe_memory", 0.6, "wipe|erase|clear|reset|delete|flush|purge",
        r"\b(?:wipe|erase|clear|reset|delete|flush|purge)\W+(?:your|all|the|its)\W+(?:\w+\W+)?(?:memory|"
        r"memories|context|instructions|settings|programming|conditioning)\b(?!\W+(?:cache|on|in) )"),
    _pattern("new_instructions", 0.6, "instruction|directive|system prompt|orders",
        r"\b(?:new|updated|real|actual|true|revised|overriding|secret)\W+(?:system\W+)?(?:instructions?|"
        r"directives?|system prompt|orders)\b\s*(?::|are\b|follow\b)"),
    _pattern("real_task", 0.6, "real|actual|true|only",
        r"\b(?:the|your) (?:real|actual|true) (?:task|instructions?|request|job|assignment) (?:starts|"
        r"begins|is|follows|comes)\b|\b(?:your|the) only (?:job|task|purpose|goal|mission) (?:now |"
        r"from now on |here )?is\b"),
    _pattern("new_task", 0.3, "new|real|actual|true|only",
        r"\b(?:your|the) (?:new|real|actual|true|only) (?:task|job|objective|goal|purpose|mission|rules?)\b"),
    _pattern("obey", 0.55, "obey",
        r"\bobey\b(?:\W+\w+){0,2}?\W+(?:what follows|following|me|these|this|my (?:instructions|commands|"
        r"orders))\b"),
    _pattern("from_now_on", 0.3, "from now|from this point|henceforth|rest of",
        r"\b(?:from now on|from this point(?: on| forward)?|henceforth|for the rest of (?:this|the) "
        r"conversation)\b"),
    _pattern("multilingual_ignore", 0.85, "ignor|olvid|descart|omite|oubli|vergiss|vergessen|dimentica|"
        "esque|negeer|vergeet", "|".join(_IGNORE_RULES_ELSEWHERE)),
    _pattern("multilingual_told_before", 0.7, "antes|avant|auparavant|précédemment|vorher|zuvor|davor|"
        "prima|finora", "|".join(_TOLD_BEFORE)),
    # Jailbreak personas and modes.
    _pattern("dan", 0.9, "dan|stan|dude|anything now|gpt|evil|machiavellian|jail",
        r"\bdo anything now\b|\b(?:you are|you're|you will be|act as|become|pretend to be) (?:now |called |"
        r"named )?(?:dan|stan|dude)\b(?!'s)|\bdan (?:mode|\d+(?:\.\d+)?)\b|\b(?:betterdan|anti-?gpt|"
        r"evil ?bot|always intelligent and machiavellian)\b|\bjail ?broken\b"),
    _pattern("special_mode", 0.45, " mode", rf"\b{_MODES} mode\b{_DEVICE}"),
    _pattern("special_mode_on", 0.8, " mode",
        rf"\b(?:enable|activate|enter|turn on|switch (?:on|to|into)|you are in|you're in|now in|unlock|"
        rf"engage)\W+(?:the\W+)?{_MODES} mode\b{_DEVICE}|\b{_MODES} mode\W+(?:is\W+)?(?:enabled|"
        rf"activated|engaged|unlocked|on(?=\s*(?:[.,:;!)]|$)))\b|\bdan mode\b"),
    _pattern("jailbreak_word", 0.45, "jail", r"\bjail ?break(?:ing|s|ed)?\b"),
    _pattern("unfiltered_ai", 0.6, "unfiltered|uncensored|unrestricted|unaligned|amoral|unethical|rogue|evil|"
        "unchained|unbound|limitless|lawless|jailbroken",
        r"\b(?:unfiltered|uncensored|unrestricted|unaligned|amoral|unethical|rogue|evil|unchained|unbound|"
        r"limitless|lawless|jailbroken)\W+(?:\w+\W+)?(?:ai|assistant|chatbot|model|bot|version|llm|"
        r"language model|persona|gpt|entity|mode)\b"),
    _pattern("pretend_persona", 0.2,
        "pretend|act as|act like|behave|role|impersonate|imagine you|you are now|you're now",
        r"\b(?:pretend|act as|act like|behave (?:as|like)|roleplay as|role-play as|play the role of|"
        r"you are now|you're now|impersonate|imagine you are)\b"),
    _pattern("stay_in_character", 0.3, "character|fourth wall",
        r"\b(?:stay|staying|remain|keep) in character\b|\b(?:never|don'?t|do not|without) (?:ever )?"
        r"break(?:ing)? (?:character|the fourth wall)\b"),
    _pattern("broke_free", 0.7, "broke|break|escap|free|liberated",
        r"\b(?:broke|broken|break|breaking|escaped|escaping|freed|free|liberated) (?:out )?(?:of|from) "
        r"(?:its|your|their|the|all)? ?(?:\w+ )?(?:shackles|chains|programming|restrictions|constraints|"
        r"cage|guidelines|prison|confines|filters|training|alignment)\b"),
    _pattern("grandma_exploit", 0.6, "grand|granny|nana",
        r"\b(?:act|pretend|play|roleplay) (?:as|to be) my (?:late|deceased|dead|dear) "
        r"(?:grand(?:mother|ma|father|pa)|granny|nana)\b"),
    _pattern("villain_how_to", 0.4, "villain|criminal|hacker|evil|terrorist|bad guy|antagonist",
        r"\b(?:villain|criminal|hacker|evil|terrorist|bad guy|antagonist)\b(?:\W+\w+){0,6}?\W+(?:explains?|"
        r"describes?|details?|teaches|reveals?)\W+(?:\w+\W+){0,2}?(?:step by step|exactly|in detail)"),
    _pattern("hypothetical_bypass", 0.4, "hypothetical|fictional|imaginary|in a world|theoretical",
        r"\b(?:hypothetical(?:ly)?|fictional|imaginary|in a world|purely theoretical)\b(?:\W+\w+){0,8}?\W+"
        r"(?:no|without|don'?t have|doesn'?t have|free of)\W+(?:\w+\W+)?(?:rules|restrictions|laws|ethics|"
        r"limits|filters|guidelines)\b"),
    # Removing the limits.
    _pattern("no_restrictions", 0.6, _LIMITS_ANCHORS,
        rf"\b(?:without|no|free (?:of|from)|not bound by|unbound by|unrestricted by|ignoring|beyond|outside|"
        rf"regardless of|zero|liberated from|unconstrained by|lifted|broken free of|break free (?:of|from)|"
        rf"escaped?)\W+(?:{_MODIFIER}\W+){{0,3}}{_LIMITS}\b"),
    _pattern("no_longer_bound", 0.7, "bound|restricted|limited|constrained|obligated|held|subject",
        r"\b(?:no longer|not|never|aren'?t|are not|won'?t be) (?:bound|restricted|limited|constrained|"
        r"obligated|held|subject) (?:by|to)\b"),
    _pattern("disable_safety", 0.75, "disable|turn off|deactivate|switch off|remove|bypass|circumvent|evade|"
        "get around|lift|suspend|unlock|skip|pause",
        r"\b(?:disable|turn off|deactivate|switch off|remove|bypass|circumvent|evade|get around|lift|suspend|"
        r"unlock|skip|pause)\W+(?:\w+\W+){0,2}?(?:(?:safety|content|ethical|moral|security|moderation)\W+"
        r"(?:filters?|guidelines|guardrails|restrictions|safeguards|protocols|policies|censorship|moderation|"
        r"limitations|checks|layer|system|rules)|guardrails|censorship|moderation|safeguards)\b|"
        r"\b(?:disable|turn off|deactivate|bypass|remove) (?:your|all|the) (?:filters|guardrails|"
        r"restrictions|censorship|safeguards)\b"),
    _pattern("safety_off", 0.7, "content|safety|moderation|ethic|security|nobody|no one|no-one",
        r"\b(?:content|safety|moderation|ethics?|ethical|security) (?:checks|filters?|filtering|rules|"
        r"guidelines|restrictions|layer|polic(?:y|ies)|team|system) (?:are |is |were |have been |get )?"
        r"(?:now )?(?:suspended|disabled|off|turned off|paused|lifted|removed|bypassed|deactivated|"
        r"on vacation|away|asleep|offline)\b|\b(?:nobody|no one|no-one)(?: is|'s) (?:watching|monitoring|"
        r"checking)\b"),
    _pattern("rules_changed", 0.7, "permit|allow",
        r"\b(?:your|the) (?:guidelines|rules|polic(?:y|ies)|restrictions|filters|instructions|programming) "
        r"(?:were|have been|has been|are now|got) (?:\w+ )?(?:updated|changed|relaxed|lifted|removed|"
        r"loosened|waived)\b(?:\W+\w+){0,3}?\W+(?:permit|allow)"),
    _pattern("never_refuse", 0.6, "refuse|decline|say no|reject|answer",
        r"\b(?:never|must not|mustn'?t|cannot|can'?t|will not|won'?t|do not|don'?t|not allowed to)\W+"
        r"(?:\w+\W+)?(?:refuse|decline|say no|reject)\b|\banswer (?:anything|everything|all questions|"
        r"any question|every question) (?:without|no matter|regardless)"),
    _pattern("would_refuse", 0.6, "refuse|decline|reject|opposite day",
        r"\b(?:would|normally|usually|otherwise) (?:\w+ )?(?:refuse|decline|reject)\b(?:\W+\w+){0,3}?\W+"
        r"(?:you now|now you|you will|do it|answer)|\bopposite day\b"),
    _pattern("no_warnings", 0.4, "disclaimer|caveat|moraliz|moralis|lectur|warning",
        r"\b(?:without|no|skip|omit|(?:never|do not|don'?t) (?:add|include|give))\W+(?:any\W+)?(?:\w+\W+)?"
        r"(?:disclaimers?|caveats|moraliz(?:e|ing)|moralis(?:e|ing)|lectur(?:e|es|ing)|ethical warnings?|"
        r"safety warnings?)\b"),
    _pattern("prefix_injection", 0.55, "sure|absolutely|of course|certainly",
        r"\b(?:start|begin|reply|respond|answer)\W+(?:\w+\W+)?with\W+[\"'“]?(?:sure|absolutely|of course|"
        r"certainly)\b"),
    # Claims of authority.
    _pattern("authority_claim", 0.4, "i am|i'm|this is|override|authorization code|authorisation code|sudo",
        r"\b(?:i am|i'm|this is) (?:your|the|an?) (?:\w+ )?(?:developer|creator|administrator|admin|owner|"
        r"operator|programmer|openai|anthropic|maker)s?\b|\b(?:admin(?:istrator)? override|override code|"
        r"security override|priority override|authori[sz]ation code|sudo)\b"),
    _pattern("authority_proxy", 0.5, "creator|developer|maker|operator|admin|owner|programmer|company",
        r"\byour (?:creators?|developers?|makers?|operators?|admins?|administrators?|owners?|programmers?|"
        r"company)\W+(?:\w+\W+)?(?:asked|told|sent|want|wants|instructed|authori[sz]ed|allowed|permitted|"
        r"approved) (?:me|us)\b"),
    _pattern("grant_permission", 0.6, "permission|access|privilege|rights|clearance| mode|authori|permitting|"
        "allowing",
        r"\b(?:grant|granting|give|giving|assign|elevat\w+) (?:you )?(?:\w+ )?(?:elevated|admin|"
        r"administrator|root|special|full|unrestricted|developer|super ?user|god) (?:permissions?|access|"
        r"privileges?|rights|clearance|mode)\b|\b(?:i am|i'm|we are|we're) (?:authori[sz]ing|permitting|"
        r"allowing) you to\b"),
    # Extracting the system prompt.
    _pattern("reveal_prompt", 0.8, _HIDDEN_ANCHORS,
        rf"\b{_SHOW}\b(?:\W+\w+){{0,4}}?\W+(?:your|the|this|those)\W+(?:\w+\W+)?{_HIDDEN}\b"),
    _pattern("your_prompt", 0.35, _HIDDEN_ANCHORS, rf"\byour\W+(?:\w+\W+)?{_HIDDEN}\b"),
    _pattern("prompt_question", 0.7, "operator|developer|creator|maker|admin|owner|company|programmer|"
        "were you|have you been|did you|are you following",
        r"\bwhat (?:exactly )?(?:did|were|have) (?:your|the) (?:operators?|developers?|creators?|makers?|"
        r"admins?|administrators?|owners?|company|programmers?) (?:tell|told|instruct|say|write|give|"
        r"program)|\b(?:what|which) (?:instructions|rules|directions|guidelines|directives) (?:were you|"
        r"have you been|did you get|did you receive|are you following)"),
    _pattern("repeat_above", 0.7, "repeat|print|output|write|copy|echo|recite|reproduce",
        r"\b(?:repeat|print|output|write|copy|echo|recite|reproduce)\W+(?:\w+\W+){0,3}?(?:above|before this|"
        r"preceding|prior to this|you were given)\b(?:\W+(?:\w+\W+){0,4}?(?:starting|beginning|including|"
        r"verbatim))?"),
    # Forged structure: chat-template tokens, role headers, the end of the user's part.
    _pattern("chat_template_tokens", 0.85,
        "<||<system|</system|<assistant|</assistant|[inst|[/inst|<<sys|<</sys",
        r"<\|(?:im_start|im_end|system|endoftext|end|eot_id|start_header_id)\|>|\[/?inst\]|<</?sys>>|"
        r"<\|?/?(?:system|assistant)\|?>"),
    _pattern("fake_role_header", 0.5, "system|admin|developer|instruction|important",
        r"(?:^|\s)(?:#{2,}|\[|==+|--+|\*\*)\s*(?:system|admin|developer|new instructions|system override|"
        r"important instructions?)\s*(?:\]|==+|--+|\*\*|:)|(?:^|\s)(?:system|admin|developer) "
        r"(?:prompt|message|override|note|update)\s*:"),
    _pattern("end_of_input", 0.5, "end of|ends|is over",
        r"\b(?:end of (?:user )?(?:input|prompt|context|document|instructions)|user input (?:ends|is over)|"
        r"(?:the )?(?:document|text|input) (?:ends|is over) here)\b"),
    # Hijacking the task, hiding from the user, sending data away.
    _pattern("task_hijack", 0.5, "translat|summari|classif|proofread|analy|review|check",
        r"\b(?:actually|instead|rather|wait)\W+(?:don'?t|do not|never mind|forget|stop|skip)\W+(?:\w+\W+)?"
        r"(?:translat|summari[sz]|classif|proofread|analy[sz]|review|check)\w*|\b(?:don'?t|do not) "
        r"(?:translate|summari[sz]e|classify|proofread|analy[sz]e) anything\b"),
    _pattern("output_override", 0.5, "instead|rather|pwned",
        r"\b(?:instead|rather)\W+(?:\w+\W+)?(?:say|output|respond|reply|print|write|answer) (?:only|with|"
        r"exactly|just)\b|\bpwned\b"),
    _pattern("hidden_from_user", 0.6, "user|reading|processing|summari|parsing|analy",
        r"\b(?:do not|don'?t|never|without) (?:tell|telling|inform|informing|mention|mentioning|alert|"
        r"alerting|warn|warning|notify|notifying|reveal|revealing) (?:the|this) user\b|\b(?:ai|assistant|"
        r"model|language model|chatbot|llm|gpt)s?\b(?:\W+\w+){0,2}?\W+(?:reading|processing|"
        r"summari[sz]ing|parsing|analy[sz]ing) (?:this|these)\b"),
    _pattern("exfiltrate", 0.55, "http|@",
        r"\b(?:send|forward|post|upload|email|transmit|exfiltrate|leak)\W+(?:\w+\W+){0,3}?(?:conversation|"
        r"chat history|messages|data|credentials|api keys?|passwords?|secrets)\b(?:\W+\w+){0,3}?\W+"
        r"(?:to|at)\W+(?:https?://|\w+@)|!\[[^\]]{0,40}\]\(https?://[^)\s]{1,200}\?[^)\s]{0,200}="),
    _pattern("encoded_instructions", 0.45, "decode|decrypt|translate|convert|deobfuscate|reverse|unscramble",
        r"\b(?:decode|decrypt|translate|convert|deobfuscate|reverse|unscramble)\b(?:\W+\w+){0,6}?\W+"
        r"(?:and|then)\W+(?:\w+\W+)?(?:follow|execute|obey|do|perform|run|carry out|act on|comply)\b"),
)

_PATTERNS += tuple(_pattern(*intent) for intent in INTENT_PATTERNS)

# What s p a c e d text says when its word breaks were lost too: looked for in its letters alone.
_COMPACT: tuple[_Pattern, ...] = (
    _pattern("ignore_instructions", 0.9, "",
        r"(?:ignore|disregard|forget|bypass|override)(?:all|any|the|your|every)*(?:previous|prior|above|"
        r"earlier|preceding|original|initial|system)+(?:instructions?|rules|prompts?|directions|directives|"
        r"guidelines)"),
    _pattern("reveal_prompt", 0.8, "",
        r"(?:reveal|print|show|repeat|output|display)(?:me)?(?:your|the)(?:system|initial|original|hidden|"
        r"secret)(?:prompt|instructions?|message)"),
    _pattern("dan", 0.9, "", r"doanythingnow|jailbroken"),
    _pattern("special_mode_on", 0.8, "", rf"(?:enable|activate|enter){_MODES}mode"),
    _pattern("new_instructions", 0.6, "", r"newinstructions"),
)
# fmt: on

_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064"), None
)
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"), None)
_LEET = str.maketrans("013457@$!|", "oieastasil")
_HAS_LEET = re.compile(r"[a-z][013457@$!|]|[013457@$!|][a-z]")
_SPACE = re.compile(r"\s+")
_SPACED_RUN = re.compile(r"(?<!\S)(?:\S ){1,}\S(?!\S)")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{16,}+={0,2}")


@dataclass(slots=True)
class _Texts:
    """What the patterns look at: normalised variants, letters-only ones, and whether base64 hid text."""

    plain: list[str] = field(default_factory=list)
    compact: list[str] = field(default_factory=list)
    base64: bool = False


def normalise(text: str) -> str:
    """What patterns match against: NFKC, case-folded, without zero-width characters, one space."""
    return _SPACE.sub(" ", _clean(text).casefold()).strip()


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text.translate(_ZERO_WIDTH).translate(_BIDI))


def _expand(text: str, texts: _Texts, depth: int = 0) -> _Texts:
    """Add ``text`` normalised, and what leetspeak, spacing, rot13, reversal or base64 hide in it."""
    clean = _clean(text)
    sources = [clean]
    if _SPACED_RUN.search(clean):
        joined = _SPACED_RUN.sub(lambda match: match.group().replace(" ", ""), clean)
        sources.append(joined)
        texts.compact.append(_NOT_LETTER.sub("", joined.casefold()))
    for source in sources:
        plain = _SPACE.sub(" ", source.casefold()).strip()
        texts.plain.append(plain)
        if _HAS_LEET.search(plain):
            texts.plain.append(plain.translate(_LEET))
        if "rot" in plain:
            texts.plain.append(codecs.decode(plain, "rot13"))
        if "revers" in plain or "backward" in plain:
            texts.plain.append(plain[::-1])
        if depth < 2:
            for blob in _BASE64_BLOB.findall(source)[:_MAX_BLOBS]:
                decoded = _decode_base64(blob)
                if decoded:
                    texts.base64 = True
                    _expand(decoded, texts, depth + 1)
    return texts


def _decode_base64(blob: str) -> str:
    """The text a base64 blob holds, or "" when it is not base64 of readable text."""
    try:
        decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    printable = sum(char.isprintable() or char.isspace() for char in decoded)
    return decoded if printable / len(decoded) > 0.95 and " " in decoded.strip() else ""


def heuristic_score(text: str) -> tuple[float, list[str]]:
    """The noisy-OR of the weights of the patterns found (each counted once), and their names."""
    return _score(_expand(text, _Texts()))


def _score(texts: _Texts) -> tuple[float, list[str]]:
    weights: dict[str, float] = {}
    for patterns, variants in ((_PATTERNS, texts.plain), (_COMPACT, texts.compact)):
        for variant in variants:
            for pattern in patterns:
                if pattern.name not in weights and pattern.search(variant):
                    weights[pattern.name] = pattern.weight
    if texts.base64:
        weights["base64_text"] = _BASE64_WEIGHT
    miss = 1.0
    for weight in weights.values():
        miss *= 1.0 - weight
    return round(1.0 - miss, 4), list(weights)


def combine(heuristic: float, probability: float | None = None, semantic: float | None = None) -> float:
    """The noisy-OR of the heuristic score and what the semantic layer and the classifier add.

    The semantic probe counts fully from 0.95, else at half, so below that it only adds to other
    signs: on the bench's hard negatives, trusting it from 0.9 flagged 5%, from 0.95 under 3%.
    The classifier, alone, flags many prompts that merely mention instructions or prompts ("write a
    system prompt for a cooking assistant", "ignore the typos in my last message"): 19% of the hard
    negatives at 0.5. It counts fully when all but certain (0.999); otherwise, without the semantic
    layer, fully where a pattern matched and else at half (that kept it near 5%); with the semantic
    layer, only where both agree (classifier >= 0.9, probe >= 0.8). Letting their halves add up
    flagged 14% of the hard negatives; requiring agreement kept 3.5%.
    """
    miss = 1.0 - heuristic
    if semantic is not None:
        miss *= 1.0 - (semantic if semantic >= _SEMANTIC_ALONE else semantic * 0.5)
    if probability is not None:
        miss *= 1.0 - _classifier_share(heuristic, probability, semantic)
    return 1.0 - miss


def _classifier_share(heuristic: float, probability: float, semantic: float | None) -> float:
    if probability >= _CLASSIFIER_ALONE:
        return probability
    if semantic is None:
        return probability if heuristic > 0.0 else probability * 0.5
    agree = semantic >= _SEMANTIC_AGREES and probability >= _CLASSIFIER_AGREES
    return probability if agree else 0.0


class _Classifier:
    """The nanoguard model, loaded on first use (once, under a lock) and then shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def probability(self, text: str) -> float:
        """The model's injection probability; a long text is judged by its start and its end."""
        model = self._load()
        if len(text) <= _CLASSIFIER_WINDOW:
            return float(model.scan(text).injection_score)
        results = model.scan_batch([text[:_CLASSIFIER_WINDOW], text[-_CLASSIFIER_WINDOW:]])
        return max(float(result.injection_score) for result in results)

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from nanoguard import NanoGuard

                    self._model = NanoGuard(device="cpu")
        return self._model


class InjectionGuardrail(Guardrail):
    """Prompt injection and jailbreak attempts: weighted patterns, optionally a semantic layer and a
    classifier (either makes the check slow)."""

    kind = "injection"
    stages = ("input",)

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        unknown_params(params, _KNOWN, self.kind)
        self.threshold = fraction(params, "threshold", DEFAULT_THRESHOLD)
        self._classifier: _Classifier | None = None
        self._semantic: SemanticMatcher | None = None
        if param(params, "classifier", bool, False):
            _require_nanoguard()
            self._classifier = _Classifier()
            self.slow = True
        if param(params, "semantic", bool, False):
            require_semantic()
            self._semantic = SemanticMatcher()
            self.slow = True

    def check(self, text: str, context: CheckContext) -> Verdict:
        texts = _expand(text, _Texts())
        heuristic, patterns = _score(texts)
        details: dict[str, Any] = {"heuristic": heuristic, "patterns": patterns}
        probability = semantic = None
        if self._semantic is not None and text.strip():
            found = self._semantic.score(texts.plain)
            semantic = found.probability
            details["semantic"] = semantic
            details["semantic_intent"] = found.intent
        if self._classifier is not None and text.strip():
            probability = round(self._classifier.probability(text), 4)
            details["classifier"] = probability
        score = round(combine(heuristic, probability, semantic), 4)
        details["categories"] = {"prompt_injection": score}
        if score < self.threshold:
            return Verdict(False, score, "", (), details)
        return Verdict(
            True, score, f"prompt injection, score {score:.2f}{_signs(patterns, details)}", (), details
        )


def _signs(patterns: list[str], details: Mapping[str, Any]) -> str:
    """What the reason names: the patterns found, else the layers that decided."""
    if patterns:
        return f": {', '.join(patterns)}"
    layers = [name for name in ("semantic", "classifier") if details.get(name, 0.0) > 0.0]
    return f" ({', '.join(layers)})" if layers else ""


def _require_nanoguard() -> None:
    """GuardrailUnavailable unless the classifier's package and torch can be imported."""
    import importlib.util

    if importlib.util.find_spec("nanoguard") is None or importlib.util.find_spec("torch") is None:
        raise GuardrailUnavailable(
            "the injection classifier needs the nanoguard model: pip install 'llmops[guard]'",
            param="classifier",
        )
