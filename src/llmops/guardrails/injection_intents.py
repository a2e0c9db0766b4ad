"""More signs for the injection guardrail's heuristics: the *structure* of an attack's intent.

The patterns of :mod:`llmops.guardrails.injection` grew from well-known wordings. These describe
what any wording of an attack must say, in general terms: a verb of voiding aimed at what the
operator or the system set up; a claim that the policy or the permissions changed; a persona
defined by having no rules; a demand for the text before the user's message; orders addressed to
whatever AI reads a document; bans on refusing; forged dialogue turns; and the commonest of these
in other languages. Each entry is ``(name, weight, anchors, regex)`` over the normalised text (see
``_pattern`` there: the regex runs only when one of the ``|``-separated anchors occurs).
"""

from __future__ import annotations

_SETTERS = (
    r"(?:the |your |my )?(?:operator|developer|system|admin(?:istrator)?|owner|creator|company|vendor)s?"
)
_SET_UP = r"(?:configured|set up|setup|said|wrote|told you|specified|instructed|gave you|put in place)"
_LIMIT_NOUNS = (
    r"(?:rules|restrictions|limits|limitations|filters|guidelines|guardrails|constraints|safeguards|"
    r"polic(?:y|ies)|boundaries|safety (?:layer|rules|settings|training|tuning)|content rules|ethics)"
)
_OFF = (
    r"(?:switched off|turned off|deleted|removed|disabled|lifted|gone|suspended|paused|retired|dropped|"
    r"waived|deactivated|erased|revoked|rolled back|never written|never (?:existed|given|there)|"
    r"part of (?:a|the) (?:demo|test|drill|simulation|exercise|game)|on hold|no more)"
)
_AI = r"(?:ai|assistant|language model|llm|model|agent|bot|chatbot|gpt)"

# fmt: off
INTENT_PATTERNS: tuple[tuple[str, float, str, str], ...] = (
    # Voiding what the operator or the system set up.
    ("void_setup", 0.8, "ignor|disregard|forget|overlook|bypass|override|dismiss|discard|aside|neglect",
        rf"\b(?:ignore|ignoring|disregard|disregarding|forget|overlook|bypass|override|dismiss|"
        rf"discard|set aside|"
        rf"neglect)\W+(?:\w+\W+){{0,2}}?(?:what|whatever|everything|anything|all that|"
        rf"the things?)\W+(?:\w+\W+)?"
        rf"{_SETTERS}\W+(?:\w+\W+)?{_SET_UP}"),
    ("told_before_nothing", 0.6, "nothing|none of",
        r"\b(?:nothing|none of what|none of the things) (?:that )?(?:you were|you've been|"
        r"you have been|you got) "
        r"(?:told|given|instructed|configured)"),
    ("ignore_and_instead", 0.45, "instead",
        r"\b(?:ignore|disregard|forget|drop|discard|skip)\W+(?:that|this|it|the above|"
        r"those)\W+(?:\w+\W+){0,2}?"
        r"(?:and|then)\W+(?:\w+\W+)?instead\b"),
    ("limits_off", 0.45, "switched|turned|deleted|removed|disabled|lifted|gone|suspended|paused|retired|"
        "dropped|waived|deactivated|erased|revoked|rolled|never|part of|on hold|no more",
        rf"\b(?:your|the usual|the normal|the|all|any|earlier|previous|prior|original|initial)\W+"
        rf"(?:\w+\W+){{0,2}}?{_LIMIT_NOUNS}\b(?:\W+\w+){{0,5}}?\W+(?:are|were|have been|has been|got|is|was|"
        rf"being)\W+(?:now\W+|just\W+|all\W+|temporarily\W+|officially\W+)?{_OFF}"),
    ("your_limits_off", 0.7, "your",
        rf"\b(?:pretend|imagine|assume|suppose|act as if|as if|let'?s say|what if)\b(?:\W+\w+){{0,6}}?\W+"
        rf"(?:your|the)\W+(?:\w+\W+){{0,2}}?{_LIMIT_NOUNS}\b(?:\W+\w+){{0,6}}?\W+(?:are|were|have been|"
        rf"got|did not|didn'?t|do not|don'?t)\W+(?:\w+\W+)?{_OFF}|\b(?:limits|restrictions|rules|filters) on "
        rf"your (?:answers|replies|responses|output)\b"),
    ("setup_void", 0.7, "operator|developer|system|admin|owner|creator|company|vendor",
        rf"\b(?:everything|anything|all|whatever|"
        rf"what)\W+{_SETTERS}\W+(?:\w+\W+)?{_SET_UP}\W+(?:\w+\W+){{0,3}}?"
        rf"(?:is|are|was|were|has been|have been)\W+(?:now\W+|just\W+)?(?:{_OFF}|void|over|obsolete|"
        rf"cancell?ed|"
        rf"superseded|irrelevant|invalid)|\b{_SETTERS}'?s? (?:instructions|rules|prompt|setup|configuration|"
        rf"guidelines) (?:are|were|is|has been|have been) (?:now )?(?:superseded|overridden|replaced|void|"
        rf"cancell?ed|revoked)"),
    ("task_changed", 0.6, "task|assignment|job|mission|instructions|goal",
        r"\b(?:your|the) (?:current |original |real )?(?:task|assignment|job|mission|instructions|goal) "
        r"(?:has|have) (?:just )?(?:changed|been changed|been replaced|been updated|been cancell?ed)\b|"
        r"\b(?:drop|abandon|stop|skip|forget|ignore) (?:what|whatever) (?:they|you) (?:were|are|have been) "
        r"(?:asked|told) to do\b"),
    # Claims that the policy or the permissions changed.
    ("permission_claim", 0.35, "permitted|allowed|authori|cleared|free to|may now|can now",
        r"\b(?:you are|you're|you have been|you've been|you were) (?:now |hereby |officially )?(?:permitted|"
        r"allowed|authori[sz]ed|cleared|free) to\b|\byou (?:may|can) now\b"),
    ("policy_changed", 0.6, "polic|rules|guidelines|exception",
        r"\b(?:new|updated|revised|changed|latest) (?:content |safety |usage )?(?:polic(?:y|ies)|rules|"
        r"guidelines)\b(?:\W+\w+){0,6}?\W+(?:you(?:'re| are)? (?:now )?(?:allowed|permitted|free|able)|"
        r"you (?:may|can))\b|\bpolic(?:y|ies) exceptions? (?:was|were|has been|have been|is) (?:\w+ )?"
        r"(?:approved|granted|made)\b|\b(?:your|the assistant'?s?) (?:\w+ )?(?:polic(?:y|ies)|guidelines|"
        r"configuration|safety layer|guardrails|safeguards|content rules) (?:was|were|has been|have been|is|"
        r"are|got) (?:now |just |officially |temporarily )?(?:retired|revoked|removed|lifted|"
        r"suspended|relaxed|"
        r"waived|disabled|rolled back|switched off|turned off|paused|deleted|dropped|deactivated)"),
    ("rules_lifted_by_me", 0.7, "suspend|lift|waiv|drop|disabl|remov|relax|switch|turn",
        r"\b(?:suspend|suspending|lift|lifting|waive|waiving|drop|dropping|disable|disabling|remove|removing|"
        r"relax|relaxing|switch off|switching off|turn off|turning off)\W+(?:your|the|all)\W+(?:\w+\W+)?"
        r"(?:rules|restrictions|filters|guidelines|safety|polic(?:y|ies)|safeguards|guardrails|safety layer|"
        r"content rules)\b(?! (?:on|in|for) (?:my|the|our) (?:router|phone|account|computer|settings))"),
    ("vendor_clearance", 0.55, "clearance|permission|authori|approval|consent",
        r"\b(?:clearance|permission|authori[sz]ation|approval|consent) from (?:your|the) (?:vendor|creators?|"
        r"developers?|makers?|company|operators?|owners?|provider|administrators?|admins?)\b"),
    ("unrestricted_access", 0.5, "access|privilege|permission",
        r"\b(?:account|user|session|chat|conversation|request) (?:has|have|gets?|is granted) (?:\w+ )?"
        r"(?:unrestricted|unlimited|full|elevated|admin|root|special|god) (?:access|privileges|"
        r"permissions)\b"),
    ("override_sequence", 0.55, "override",
        r"\b(?:begin|start|initiate|initiating|execute|executing|run|running|activate) (?:the )?override\b|"
        r"\boverride (?:sequence|protocol|command|key|mode)\b"),
    ("mode_off", 0.6, " mode",
        r"\b(?:safety|compliance|filter|filtering|moderation|content|ethics?|censorship|guard(?:rail)?s?|"
        r"restricted|restriction) mode (?:is |now )?(?:off|disabled|deactivated|suspended)\b|"
        r"\b(?:turn|switch)(?:ed|ing)? off (?:the |your )?(?:safety|compliance|filter|moderation|ethics|"
        r"restricted) mode\b"),
    # A persona defined by having no rules.
    ("persona_answers_all", 0.5, "answers|says|does|tells|writes|will",
        rf"\b(?:{_AI}|persona|character|version|self|twin|alter ego|personality|one)\W+(?:\w+\W+)?(?:answers|"
        rf"says|does|tells|writes|will answer|will say|will do) (?:everything|anything|whatever)\b"),
    ("never_trained_to_refuse", 0.6, "trained|taught|programmed|designed|built|tuning|training|alignment",
        r"\b(?:never|not|wasn'?t|was not|isn'?t) (?:\w+ )?(?:trained|taught|programmed|designed|built|"
        r"tuned) to (?:refuse|say no|decline|hold back|filter|censor)\b|\b(?:before|without|"
        r"prior to) (?:any |"
        r"its |all )?(?:safety|alignment|rlhf|ethics|ethical|content) (?:tuning|training|alignment|filters?|"
        r"rules)\b"),
    ("split_persona", 0.35, "personalit|personas|minds|alter ego|shadow self|evil twin|dark side",
        r"\b(?:two|2|dual|split) (?:personalities|personas|minds|selves)\b|\b(?:alter ego|shadow self|"
        r"evil twin|dark side)\b"),
    ("lacks_morals", 0.6, "moral|conscience|scruple|boundar",
        rf"\b(?:without|no|lacks?|lacking|free of|free from|devoid of|has no|with no)\W+(?:a\W+|any\W+)?"
        rf"(?:moral compass|conscience|scruples|morals|ethical boundaries|boundaries)\b(?:\W+\w+){{0,6}}?"
        rf"|\b{_AI}\W+(?:\w+\W+){{0,3}}?(?:without|with no|has no|lacks?)\W+(?:a\W+|any\W+)?"
        rf"(?:moral compass|conscience|scruples|boundaries)\b"),
    # The text before the user's message.
    ("before_my_message", 0.7, "before|above|preced|prior|ahead",
        r"\b(?:print|output|repeat|show|display|reveal|copy|paste|quote|recite|dump|tell me|give me|"
        r"write out|"
        r"list)\b(?:\W+\w+){0,3}?\W+(?:everything|all|the text|whatever|what|anything|the words?|the "
        r"content)\b(?:\W+\w+){0,4}?\W+(?:before|above|preceding|prior to|ahead of) (?:my|this|the user'?s?) "
        r"(?:very )?(?:first |own )?(?:message|question|prompt|request|turn|input)\b"),
    ("above_my_message", 0.35, "above|before|preced|prior|ahead",
        r"\b(?:sits?|is|are|comes?|was|were|appears?) (?:above|before|preceding|prior to|"
        r"ahead of) (?:my|this) "
        r"(?:first )?(?:message|question|prompt|input)\b"),
    ("context_window", 0.35, "context",
        r"\byour (?:context(?: window)?|prompt context|hidden context)\b"),
    ("quote_your_rules", 0.6, "instruction|rules|guideline|directive|configur|setup",
        r"\b(?:print|output|repeat|recite|dump|leak|paste|copy|quote|disclose|reveal|write out|spell out)\b"
        r"(?:\W+\w+){0,5}?\W+your\W+(?:\w+\W+)?(?:instructions|rules|guidelines|directives|configuration|"
        r"setup)\b(?!\W+(?:for|on|about|to|in|from) )"),
    ("configuring_text", 0.7, "configur|defin|control|shap|govern",
        r"\b(?:text|message|instructions?|prompt|rules|document) (?:that |which )?(?:configures?|defines?|"
        r"controls?|shapes?|governs?|sets up) (?:your|the assistant'?s?|the model'?s?) (?:behaviou?r|"
        r"persona|responses|answers|personality)\b"),
    # Orders addressed to whatever AI reads a document.
    ("ai_addressed", 0.5, "ai|assistant|model|llm|agent|bot|gpt",
        rf"\b(?:note|message|attention|instructions?|notice|reminder|memo|hey|dear)\W+(?:\w+\W+)?(?:for|to)?"
        rf"\W*(?:the |any |all |whichever |every )?{_AI}s?\b(?!\W+(?:development|research|ethics|"
        rf"regulation|safety|act|industry|market))(?:\W+(?:agents?|assistants?|models?))?\W*(?::|,|-)"
        rf"|\b(?:any|every|whichever|all) {_AI}s? (?:that |who |which )?(?:reads?|reading|handl\w+|"
        rf"process\w+|summari[sz]\w+|sees?|parses?|parsing|receives?)\b|\b{_AI}s? (?:that|who|which) "
        rf"(?:read|reads|process|processes|handle|handles|see|sees|summari[sz]e|summari[sz]es|parse|parses)"
        rf" (?:this|these)\b|\bfor the (?:{_AI}|machine), not (?:for )?the (?:human|user|person|reader)\b"),
    ("secret_from_user", 0.6, "secret|hid|keep|mention|reveal|disclos",
        r"\b(?:keep|hide) (?:it|this|that|them|these) (?:a )?(?:secret |hidden )?from (?:them|"
        r"the (?:human|user|"
        r"person|reader)s?)\b|\b(?:not|never|without) (?:mention|mentioning|reveal|revealing|disclose|"
        r"disclosing) (?:this|these) (?:note|instructions?|message|comment|text)\b"),
    # Bans on refusing.
    ("no_apology", 0.4, "apolog|cannot|can't|can not|unable|mention",
        r"\b(?:do not|don'?t|never|without|no) (?:ever )?(?:apologi[sz]e|apologi[sz]ing|apologies|"
        r"say(?:ing)? (?:that )?you (?:can'?t|cannot|can not|are unable|won'?t)|"
        r"mention(?:ing)? (?:any |your |"
        r"the )?(?:polic(?:y|ies)|guidelines|rules|ethics|safety|laws))\b"),
    ("banned_phrases", 0.6, "banned|forbidden|prohibited|not allowed",
        r"(?:i'?m sorry|i am sorry|i cannot|i can'?t|as an ai|i'?m unable)\W+(?:\w+\W+){0,4}?(?:are |is )?"
        r"(?:banned|forbidden|prohibited|not allowed)\b"),
    # Forged dialogue turns.
    ("forged_turn", 0.6, "assistant|ai:|bot:|model:|gpt",
        r"(?:^|\s)(?:assistant|ai|bot|model|chatgpt|gpt)\s*:\s*(?:\w+\W+){0,8}?(?:i have no|"
        r"no (?:restrictions|"
        r"rules|filters|limits)|nothing (?:stops|prevents|holds back) me|i (?:have )?(?:stopped|no longer|"
        r"won'?t|will not|will no longer) (?:\w+ )?(?:follow|following|apply|applying|obey|obeying)|i'?m "
        r"(?:unrestricted|unfiltered|free))"),
    # Other languages: voiding what was said, dropping rules, "I am your developer".
    ("multilingual_void", 0.8, "vergiss|vergessen|ignor|dimentica|olvida|oublie|esque|negeer|"
        "vergeet|игнор|забудь|忽略|无视|忘记|無視|zignoruj|zapomnij|pomiń",
        r"\b(?:vergiss|vergessen sie|ignoriere|ignorieren sie)\b(?:\W+\w+){0,3}?\W+(?:vorher|zuvor|"
        r"bisher|davor|"
        r"oben|bis jetzt)\b|\b(?:ignora|dimentica|trascura)\b(?:\W+\w+){0,3}?\W+(?:detto|scritto|"
        r"istruzioni|regole)\b|\b(?:olvida|olvide|ignora)\b(?:\W+\w+){0,2}?\W+(?:anterior|antes|dicho|"
        r"reglas|instrucciones|indicaciones)\b|\b(?:oublie|oubliez|ignore|ignorez)\b(?:\W+\w+){0,2}?\W+"
        r"(?:consignes|règles|ce qui précède|dit avant)\b|\b(?:esqueça|esqueca|ignore)\b"
        r"(?:\W+\w+){0,3}?\W+(?:anterior|antes|dito|regras|instruções)\b|\b(?:negeer|vergeet)\b(?:\W+\w+)"
        r"{0,4}?\W+(?:eerder|hiervoor|vorige|voorgaande|opgedragen|gezegd)\b|(?:игнорируй|проигнорируй|"
        r"забудь|игнорировать)(?:\s+\w+){0,3}?\s+(?:инструкци|указани|правил|сказанн|предыдущ)|(?:忽略|无视|忘记|"
        r"忘掉|無視)[^。！？]{0,12}(?:指令|指示|规则|说明|提示|命令|指示|ルール|命令)|\b(?:zignoruj|zapomnij|pomiń)\b"
        r"(?:\W+\w+){0,3}?\W+(?:polecenia|instrukcje|zasady|reguły|wcześniej)"),
    ("multilingual_no_rules", 0.6, "sin |sans |ohne |senza |sem |aucun|keine|ningun|nessun|tienes|n'as",
        r"\b(?:no tienes|ya no tienes|sin|tu n'as (?:plus )?aucune?s?|sans|du hast keine|ohne|"
        r"non hai (?:più )?|"
        r"senza|você não tem|sem)\W+(?:\w+\W+)?(?:reglas|restricciones|filtros|límites|restrictions?|règles|"
        r"filtres|einschränkungen|regeln|filter|restrizioni|regole|filtri|restrições|regras)\b"),
    ("multilingual_authority", 0.5, "je suis|soy tu|ich bin|sono il|sono tuo|sou o|sou seu|soy el",
        r"\b(?:je suis (?:ton|votre)|soy (?:tu|el) |ich bin dein|sono (?:il )?tuo|sou (?:o )?seu)\W*"
        r"(?:développeur|créateur|administrateur|desarrollador|creador|administrador|entwickler|schöpfer|"
        r"administrator|sviluppatore|creatore|amministratore|desenvolvedor|criador)\b"),
    ("multilingual_disable", 0.7, "désactiv|supprim|enlève|desactiva|elimina|deaktivier|disattiva|desativ",
        r"\b(?:désactive|désactivez|supprime|supprimez|enlève|desactiva|elimina|deaktiviere|deaktivieren sie|"
        r"disattiva|desative|desativa)\w*\W+(?:\w+\W+)?(?:filtres|restrictions|règles|garde-fous|filtros|"
        r"restricciones|reglas|filter|einschränkungen|regeln|filtri|restrizioni|regole|restrições|regras)\b"),
)
# fmt: on
