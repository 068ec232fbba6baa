"""The `rules` extractor: short self-contained statements from episodes, no model needed.

Each sentence that says something about someone becomes a fact: first person is resolved to the
speaker (or "The user" in notes), relative dates to absolute ones against the episode's time,
and statements that can be contradicted later (where someone lives, works, who their manager is,
what they prefer, a phone number) get a subject, an attribute and a value so the resolver can
supersede them. A sentence that states two such things ("I grew up in Galway and moved to
Dublin") gives one fact per clause. Questions, greetings, filler, requests to an assistant and
an assistant's general advice are not facts; the verbatim episode keeps them anyway.

Everything here is deterministic and works on one sentence at a time: thousands of messages a
second on one core.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cairn.extraction.dates import DateMention, find_dates, tense_of
from cairn.models import EpisodeDraft, FactDraft, FactKind

VERSION = "2"
MAX_FACTS = 8

# ------------------------------------------------------------------ sentences

_ABBREV = (r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bProf\.)(?<!\be\.g\.)"
           r"(?<!\bi\.e\.)(?<!\bvs\.)(?<!\betc\.)(?<!\bapprox\.)(?<!\bno\.)(?<!\bNo\.)")
_SPLIT = re.compile(r"(?<=[.!?…])" + _ABBREV + r"[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Þ])|\n+")
_WS = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    out = []
    for part in _SPLIT.split(text):
        part = _WS.sub(" ", part).strip(" -*•>\t#")
        if part:
            out.append(part)
    return out


_FILLER = re.compile(
    r"^(hi|hey|hello|thanks|thank you|thx|ok|okay|cool|wow|lol|ha+|(?:ha)+|yes+|yay|yeah|yep|no|"
    r"nope|sure|great|awesome|nice|good (morning|night|luck)|bye|see you|congrats|congratulations|"
    r"happy (new year|birthday|anniversary)|take care|sounds good|me too|same|omg|oh|of course|"
    r"well done|proud of you|good for you|keep going|fingers crossed)\b[^.!?]{0,30}[.!?\s]*"
    r"(?:[^\w\s]+\s*)*$", re.I)
_QUESTION_START = re.compile(
    r"^(?:(?:how|what|where|why|which|who|when)(?:'s|\s+(?:do|does|did|is|are|was|were|can|could|"
    r"should|would|will|to|much|many|long|about))\b|(?:can|could|would|will|should|do|does|did|is|"
    r"are|am|have|has)(?!')\s+(?:you|i|we|it|there|he|she|they|anyone|someone)\b)", re.I)
_DISCOURSE = re.compile(
    r"^(?:(?:yes|yeah|yep|no|nope|ok|okay|sure|well|oh|so|btw|anyway|also|honestly|actually|"
    r"haha+|lol|omg|wow|hey|hi|ah|aw+|ugh|and|but|plus|then|right)\b[,!.:]?\s+)+", re.I)
# A passing state is not worth remembering: "I'm so tired today", "I didn't know that".
_TRANSIENT = re.compile(
    r"^(?:I|I'm|I am|I feel|I felt|I was|we're|we are)\s+(?:so\s+|really\s+|very\s+|super\s+|"
    r"a bit\s+|kind of\s+|pretty\s+|quite\s+|totally\s+|just\s+)*(?:tired|exhausted|sleepy|bored|"
    r"hungry|cold|hot|sick|sad|happy|glad|excited|nervous|stressed|busy|fine|good|great|ok|okay|"
    r"sorry|jealous|proud|lucky|full|late|done)\b[\w\s,']{0,16}[.!]*$"
    r"|^I\s+(?:didn't|did not|don't|do not)\s+know\s+(?:that|this)\b", re.I)
_FRAGMENT_WORDS = frozenset(["and", "or", "the", "of", "a", "an", "in", "at", "on", "to", "with"])

# ------------------------------------------------------------------ first person

_FIRST_PERSON = re.compile(
    r"\b(?:I|I'm|I've|I'd|I'll|[Mm]e|[Mm]y|[Mm]ine|[Mm]yself|[Ww]e|[Ww]e're|[Ww]e've|[Ww]e'll|"
    r"[Ww]e'd|[Oo]ur|[Oo]urs|us|[Oo]urselves)\b")
_ANY_FIRST_PERSON = re.compile(r"\b(?:i|me|my|mine|myself|we|our|ours|us|ourselves)\b|\bi['’]",
                               re.I)
_IRREGULAR_3RD = {"have": "has", "do": "does", "go": "goes", "be": "is", "am": "is",
                  "are": "is", "was": "was", "were": "was"}
_NO_S = {"can", "could", "will", "would", "should", "might", "must", "may", "shall", "did",
         "had", "was", "never", "always", "also", "just", "really", "still", "often",
         "usually", "sometimes", "recently", "finally", "actually", "already", "'d", "not",
         "don't", "didn't", "can't", "won't", "wouldn't", "couldn't", "shouldn't", "haven't",
         "hadn't", "wasn't", "weren't", "both", "all", "each", "too", "only", "even", "then"}
_PAST = set(["went", "saw", "met", "got", "took", "had", "made", "did", "ran", "won", "lost", "bought", "brought", "thought", "told", "said", "found", "gave", "came", "became", "began", "felt", "kept", "left", "meant", "paid", "put", "read", "sent", "set", "sat", "spent", "stood", "taught", "understood", "wrote", "drove", "ate", "drank", "flew", "grew", "knew", "threw", "wore", "chose", "rode", "spoke", "broke", "forgot", "sold", "heard", "held", "built", "fell", "fought", "caught", "slept", "swam", "sang", "led", "lent", "let", "hung", "hit", "hurt", "quit", "shut"])
# Verbs whose past is their base form: "I split up last month" stays "split".
_SAME_PAST = frozenset(["split", "cut", "put", "set", "let", "hit", "hurt", "quit", "shut", "read", "spread", "cost", "bet", "burst", "cast", "upset"])
_ED_PRESENT = {"need", "feed", "seed", "speed", "bleed", "breed", "proceed", "succeed", "exceed",
               "shed", "wed", "embed"}
_ADVERBS = ["never", "always", "also", "just", "really", "still", "often", "usually", "sometimes", "recently", "finally", "actually", "already", "even", "totally", "definitely", "mostly", "only", "absolutely", "both", "all", "mainly", "generally", "probably"]
_CONTRACTIONS = [
    (re.compile(r"\b(?:I'm|I am)\b"), "{S} is"),
    (re.compile(r"\b(?:I've|I have)\b"), "{S} has"),
    (re.compile(r"\bI'd\b"), "{S} would"),
    (re.compile(r"\b(?:I'll|I will)\b"), "{S} will"),
    (re.compile(r"\bI was\b"), "{S} was"),
    (re.compile(r"\b(?:I|[Ww]e) (?:don't|do not)\b"), "{S} doesn't"),
    (re.compile(r"\b(?:I|[Ww]e) (?:haven't|have not)\b"), "{S} hasn't"),
    (re.compile(r"\b(?:I|[Ww]e) (?:were|are) not\b|\b[Ww]e weren't\b|\b[Ww]e aren't\b"),
     "{S} is not"),
    (re.compile(r"\b(?:[Ww]e're|[Ww]e are)\b"), "{S} is"),
    (re.compile(r"\b(?:[Ww]e've|[Ww]e have)\b"), "{S} has"),
    (re.compile(r"\b[Ww]e'd\b"), "{S} would"),
    (re.compile(r"\b(?:[Ww]e'll|[Ww]e will)\b"), "{S} will"),
    (re.compile(r"\b[Ww]e were\b"), "{S} was"),
    (re.compile(r"\b(?:[Mm]yself|[Oo]urselves)\b"), "{S}"),
    (re.compile(r"\b(?:[Mm]y|[Oo]ur)\b"), "{S}'s"),
    (re.compile(r"\b(?:[Mm]ine|[Oo]urs)\b"), "{S}'s"),
    (re.compile(r"(?<=\s)(?:me|us)\b"), "{S}"),
]
_SUBJ_VERB = re.compile(r"\b(?:I|[Ww]e)\s+(?:((?:" + "|".join(_ADVERBS) + r")\s+))?([A-Za-z']+)")


def third_person(verb: str) -> str:
    v = verb.lower()
    if v in _IRREGULAR_3RD:
        return _IRREGULAR_3RD[v]
    if v in _NO_S or v in _PAST or not v.replace("'", "").isalpha() or "'" in v:
        return verb
    if v.endswith("ed") and v not in _ED_PRESENT:
        return verb
    if v.endswith("ing") or (v.endswith("s") and not v.endswith("ss")):
        return verb  # "we both", "I usually" handled above; -ing/-s are not base verbs
    if re.search(r"(s|sh|ch|x|z|o)$", v):
        return verb + "es"
    if re.search(r"[^aeiou]y$", v):
        return verb[:-1] + "ies"
    return verb + "s"


def resolve_first_person(sentence: str, subject: str, past: bool = False) -> str:
    """'I moved to Lisbon' said by Ana → 'Ana moved to Lisbon'; 'we' is the speaker too.

    `past`: the sentence reports the past, so "I split up" stays "split", not "splits"."""
    s = sentence
    if not _ANY_FIRST_PERSON.search(s):
        return s[0].upper() + s[1:] if s and s[0].islower() else s
    if re.search(r"(?<![\w'])i(?=['’\s])", s) and not re.search(r"\bI\b", s):
        s = re.sub(r"(?<![\w'])i(?=['’\s])", "I", s)  # typed all lower case
    s = s.replace("’", "'")
    for pat, rep in _CONTRACTIONS:
        s = pat.sub(rep.replace("{S}", subject), s)

    def verb(m: re.Match[str]) -> str:
        adv = m.group(1) or ""
        v = m.group(2)
        return f"{subject} {adv}{v if past and v.lower() in _SAME_PAST else third_person(v)}"

    s = _SUBJ_VERB.sub(verb, s)
    s = re.sub(r"\b(?:I|[Ww]e)\b", subject, s)
    if s and s[0].islower():
        s = s[0].upper() + s[1:]
    return s.replace(f"{subject}'s's", f"{subject}'s")


# ------------------------------------------------------------------ names and owners

_UP = "A-ZÀ-ÖØ-Þ"
_CAP = rf"(?:[{_UP}][\w'’&.-]*|[{_UP}]\.)"
_JOIN = r"(?:de|da|do|dos|das|del|della|di|van|von|der|den|le|la|y|of|the|&)"
NAME = rf"({_CAP}(?:\s+(?:{_JOIN}\s+)*{_CAP})*)"
_NAME_RE = re.compile(NAME)
# Capitalised words that start sentences or name dates, not people or places.
_NOT_NAMES = frozenset(["the", "a", "an", "in", "on", "at", "last", "next", "this", "that", "these", "those", "yesterday", "today", "tomorrow", "tonight", "yes", "no", "yeah", "btw", "so", "and", "but", "also", "then", "well", "oh", "wow", "hey", "hi", "thanks", "thank", "my", "our", "your", "his", "her", "their", "its", "it", "he", "she", "they", "we", "i", "you", "there", "here", "what", "when", "where", "why", "how", "who", "which", "if", "as", "after", "before", "since", "until", "for", "from", "with", "without", "about", "just", "still", "finally", "really", "actually", "dinner", "lunch", "breakfast", "meeting", "call", "trip", "notes", "note", "todo", "reminder", "action", "books", "car", "passport", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "christmas", "xmas", "easter", "new", "sure", "okay", "ok"])
_TITLES = re.compile(r"^(?:Dr|Mr|Mrs|Ms|Prof|Sir|Dame|Aunt|Uncle)\.?\s+")
_RELATION_NOUNS = frozenset(["wife", "husband", "partner", "girlfriend", "boyfriend", "fiance", "fiancé", "fiancee", "fiancée", "mother", "father", "mom", "mum", "dad", "mama", "papa", "sister", "brother", "son", "daughter", "kid", "kids", "child", "children", "parents", "parent", "grandma", "grandpa", "grandmother", "grandfather", "grandparents", "aunt", "uncle", "cousin", "niece", "nephew", "friend", "manager", "boss", "colleague", "coworker", "mentor", "neighbour", "neighbor", "landlord", "roommate", "flatmate", "family", "dog", "cat", "team"])
_PRONOUN = re.compile(r"\b(?:he|she|they|him|her|his|them|their)\b", re.I)
_PREP_BEFORE = re.compile(r"\b(?:in|at|from|to|of|near|on|by|via|for|with|into|around|called|"
                          r"named)\s+$", re.I)


def _clean_name(raw: str) -> str | None:
    words = raw.split()
    while words and words[0].lower().strip(".,") in _NOT_NAMES:
        words.pop(0)
    while words and (words[-1].lower().strip(".,") in _NOT_NAMES or words[-1].lower() in
                     ("de", "da", "do", "of", "the", "van", "von", "&")):
        words.pop()
    if not words:
        return None
    name = " ".join(words).rstrip(".,;:!?'’")
    if name.endswith("'s"):
        name = name[:-2]
    return name or None


@lru_cache(maxsize=4096)
def _names(text: str) -> tuple[tuple[int, int, str], ...]:
    out = []
    for m in _NAME_RE.finditer(text):
        raw = m.group(1)
        if raw.endswith("'s") or raw.endswith("’s"):
            raw = raw[:-2]
        name = _clean_name(raw)
        if name:
            start = m.start() + raw.find(name.split()[0])
            out.append((start, start + len(name), name))
    return tuple(out)


def _antecedent(text: str, pos: int, subject: str) -> str | None:
    """Who 'he'/'she' at `pos` is: the last name before it that is not a place ('from
    Berlin') or a possessor ('Sam's sister')."""
    best = None
    for start, end, name in _names(text[:pos]):
        if text[end:end + 2] in ("'s", "’s") or _PREP_BEFORE.search(text[:start]):
            continue
        best = name
    if best is None and subject in text[:pos]:
        best = subject
    return best


@dataclass(frozen=True)
class _Attr:
    attribute: str
    value: str
    owner: str | None
    start: int  # where the statement's predicate starts (for clause splitting)
    end: int
    aside: bool = False  # said in passing ("my manager Hannah wants…"): not what the sentence is about


_BOUNDARY = re.compile(r",\s+(?:and\s+|but\s+|so\s+)?|;\s+|\s+(?:and|but|while|whereas)\s+|:\s+|\s+[—–-]\s+")


def _boundary_before(text: str, pos: int) -> tuple[int, int]:
    """(start, end) of the last clause boundary before `pos`; (0, 0) when there is none."""
    last = (0, 0)
    for m in _BOUNDARY.finditer(text, 0, pos):
        last = (m.start(), m.end())
    return last


def _owner(text: str, pos: int, subject: str) -> str | None:
    """The grammatical subject of the clause that ends at `pos` ("Karim moved to" → Karim)."""
    b_start, cut = _boundary_before(text, pos)
    head = text[cut:pos]
    if not head.strip():
        # "…grew up in Galway and moved to Dublin": the clause has no subject of its own.
        return _owner(text, b_start, subject) if cut > 0 else subject
    cands: list[tuple[int, int, str]] = []
    for m in re.finditer(re.escape(subject), head):
        cands.append((m.start(), m.end(), subject))
    for start, end, name in _names(head):
        if any(s <= start < e for s, e, _ in cands) or _PREP_BEFORE.search(head[:start]):
            continue  # "…in Galway": a place, not who it is about
        cands.append((start, end, name))
    for m in _PRONOUN.finditer(head):
        if m.group(0).lower() in ("he", "she", "they"):
            cands.append((m.start(), m.end(), "<pronoun>"))
    if not cands:
        return subject if re.fullmatch(r"\s*(?:\w+ly\s+)?", head) else None
    cands.sort()
    start, end, who = cands[-1]
    if who == "<pronoun>":
        return _antecedent(text, cut + start, subject)
    rest = head[end:]
    if rest.startswith("'s") or rest.startswith("’s"):
        # "Priya's daughter moved to…" is about the daughter, not Priya.
        noun = re.match(r"['’]s\s+(?:new\s+|old\s+|little\s+|older\s+|younger\s+|best\s+)?(\w+)",
                        rest)
        if noun and noun.group(1).lower() in _RELATION_NOUNS:
            return f"{who}'s {noun.group(1).lower()}"
        return None
    return who


# ------------------------------------------------------------------ attributes

_VAL_END = r"(?=\s*[.,;!?)]|\s+(?:and|but|because|since|for|with|now|these days|so|as|at|in|on|" \
           r"from|who|which|after|before|until|by|to)\b|\s*$)"
_THING = r"(.{2,60}?)"
_OCC = ("engineer|developer|programmer|designer|nurse|doctor|physician|surgeon|dentist|vet|"
        "veterinarian|teacher|professor|lecturer|researcher|scientist|chef|cook|baker|lawyer|"
        "solicitor|accountant|architect|pilot|writer|journalist|editor|photographer|artist|"
        "musician|consultant|analyst|manager|director|founder|ceo|cto|student|intern|"
        "pharmacist|therapist|psychologist|plumber|electrician|carpenter|mechanic|farmer|"
        "firefighter|paramedic|officer|librarian|translator|barista|waiter|waitress|"
        "bartender|cleaner|driver|postdoc|phd student|economist|biologist|chemist|physicist|"
        "mathematician|statistician|administrator|recruiter|salesperson|marketer|"
        "entrepreneur|freelancer|illustrator|animator|producer|actor|actress|dancer|coach|"
        "trainer|midwife|carer|caregiver|social worker|civil servant|diplomat|judge|"
        "police officer|soldier|sailor|lifeguard|tutor|principal|counsellor|counselor")
_OCC_VALUE = rf"((?:[\w-]+\s+){{0,3}}?(?:{_OCC})s?)\b"
_REL_POSS = rf"(?P<poss>(?:The user|The assistant|{_CAP}(?:\s+{_CAP})*)['’]s|her|his|their)"
_REL = (r"(?P<rel>girlfriend|boyfriend|wife|husband|partner|fianc[ée]e?|manager|boss|"
        r"line manager|team lead|mentor|supervisor)")
_TIME_WORD = re.compile(r"^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|"
                        r"January|February|March|April|May|June|July|August|September|October|"
                        r"November|December)s?\b")

# (attribute, pattern). `value` is the value group; owners come from the words before the match,
# or from the `poss` group when there is one.
_ATTRS: list[tuple[str, re.Pattern[str]]] = [
    ("residence", re.compile(r"\b(?:lives?|living|lived|(?:has |have )?moved|moving|move|relocated|"
                             r"relocating|settled)\s+(?:now\s+|back\s+|permanently\s+)?"
                             r"(?:in|to)\s+(?:the\s+)?(?P<value>" + NAME[1:])),
    ("hometown", re.compile(r"\b(?:grew up|was born|born and raised|raised)\s+in\s+(?P<value>"
                            + NAME[1:])),
    ("hometown", re.compile(r"\b(?:is|was|are|comes?|originally)\s+(?:originally\s+)?from\s+"
                            r"(?P<value>" + NAME[1:])),
    ("employer", re.compile(r"\b(?:works?|working|worked)\s+(?:now\s+|full-time\s+|part-time\s+)?"
                            r"(?:at|for)\s+(?:the\s+)?(?P<value>" + NAME[1:])),
    ("employer", re.compile(r"\b(?:job|position|role|internship|post|postdoc|placement)"
                            r"(?:\s+as\s+an?\s+[\w -]{1,30}?)?\s+(?:at|with)\s+(?:the\s+)?"
                            r"(?P<value>" + NAME[1:])),
    ("employer", re.compile(r"\b(?:joined|joining|join)\s+(?:a\s+(?:startup|company|firm)\s+"
                            r"called\s+|the\s+)?(?P<value>" + NAME[1:] + r"(?!\s+for\b)")),
    ("employer", re.compile(r"\b(?:has been|been|is)\s+at\s+(?P<value>" + NAME[1:]
                            + r"(?=\s+(?:for|since)\b)")),
    ("occupation", re.compile(r"\b(?:works?|working|worked|freelanc\w*|contracting|consulting|"
                              r"trained|training|employed)\s+as\s+(?:an?\s+)?(?P<value>"
                              + _THING[1:] + _VAL_END)),
    ("occupation", re.compile(r"\b(?:is|was|has been|became|become|becoming|promoted to|"
                              r"is now|qualified as)\s+(?:now\s+)?(?:an?\s+)?(?P<value>"
                              + _OCC_VALUE[1:], re.I)),
    ("manager", re.compile(_REL_POSS + r"\s+(?:new\s+)?(?P<rel>manager|boss|line manager|team lead|"
                           r"supervisor)(?:\s+at\s+[\w.& ]{1,30}?)?\s+(?:is\s+(?:now\s+)?|,\s*)?"
                           r"(?P<value>" + NAME[1:])),
    ("manager", re.compile(r"(?P<value>" + NAME[1:] + r"\s*[(,]\s*" + _REL_POSS
                           + r"\s+(?P<rel>manager|boss|line manager|team lead|supervisor)\b")),
    ("manager", re.compile(r"\breports?\s+to\s+(?P<value>" + NAME[1:])),
    ("mentor", re.compile(_REL_POSS + r"\s+(?:new\s+)?(?P<rel>mentor)(?:\s+at\s+[\w.& ]{1,30}?)?"
                          r"\s+(?:is\s+(?:now\s+)?|,\s*)?(?P<value>" + NAME[1:])),
    ("partner", re.compile(_REL_POSS + r"\s+(?:new\s+)?(?P<rel>girlfriend|boyfriend|wife|husband|"
                           r"partner|fianc[ée]e?)\s+(?:is\s+)?(?P<value>" + NAME[1:])),
    ("partner", re.compile(r"\b(?:married\s+to|engaged\s+to|dating|marry|marrying)\s+"
                           r"(?:(?:her|his|their)\s+(?:boyfriend|girlfriend|partner|fianc[ée]e?)\s+)?"
                           r"(?P<value>" + NAME[1:])),
    ("phone", re.compile(r"\bphone(?:\s+number)?\b[^.;\d+]{0,25}?(?:\bis\b|:|\bit's\b)\s*(?:now\s+)?"
                         r"(?P<value>[+\d][\d ()./-]{5,20}\d)", re.I)),
    ("email", re.compile(r"\be-?mail(?:\s+address)?\s*(?:is\b|:)\s*(?:now\s+)?"
                         r"(?P<value>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)", re.I)),
    ("address", re.compile(r"\baddress\s*(?:is\b|:)\s*(?:now\s+)?(?P<value>.{4,100}?)"
                           r"(?=\.\s|\.$|;|$)", re.I)),
    ("birthday", re.compile(r"\bbirthday\s*(?:is\s*)?(?:on\s*|:\s*)?(?P<value>\d{1,2}(?:st|nd|rd|th)?"
                            r"\s+(?:of\s+)?[A-Z][a-z]+|[A-Z][a-z]+\s+\d{1,2}(?:st|nd|rd|th)?)\b")),
    ("age", re.compile(r"\b(?:is|turned|turns|turning|just turned)\s+(?P<value>\d{1,3})"
                       r"(?:\s+years?\s+old\b|(?=\s*[.,;!]|\s+(?:today|yesterday|last|this|on)\b|$))")),
    ("diet", re.compile(r"(?:\b(?:is|was|has been|been|went|going|turned|became|eats?)|['’]s)\s+(?:now\s+|"
                        r"mostly\s+|fully\s+|strictly\s+|a\s+)*(?P<value>vegetarian|vegan|"
                        r"pescatarian|pescetarian|flexitarian|keto|halal|kosher)\b", re.I)),
    ("name", re.compile(_REL_POSS.replace("|her|his|their", "") + r"\s+(?:full\s+)?name\s+is\s+"
                        r"(?P<value>" + NAME[1:])),
    ("editor", re.compile(r"\b(?:uses|prefers|switched\s+(?:\w+\s+)?(?:editor\s+)?to|moved\s+to|"
                          r"is using)\s+(?P<value>vim|neovim|emacs|vs ?code|vscode|cursor|zed|"
                          r"sublime|intellij|pycharm|helix)\b", re.I)),
]
_FAVOURITE = [
    re.compile(r"\bfavou?rite\s+(?P<what>[a-z][a-z ]{1,30}?)\s*(?:is|are|was|:|=)\s*"
               r"(?P<value>.{2,60}?)(?=\s*[.;!?(]|,\s|\s+(?:and|but|because|on|at|in|near|from|"
               r"always|since)\b|\s*$)", re.I),
    re.compile(r"(?P<value>" + NAME[1:] + r"\s+(?:is|are|was)\s+(?:\w+'s|her|his|their)\s+"
               r"(?:all-time\s+)?favou?rite\s+(?P<what>[a-z][a-z ]{1,30}?)" + _VAL_END),
]
_PREFER = re.compile(r"\bprefers?\s+(?P<value>.{2,60}?)\s+(?:over|to|rather than)\s+"
                     r"(?P<other>.{2,60}?)" + _VAL_END)
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\bno longer|\bformerly|\bused to)\s+(?:\w+\s+)?$",
                      re.I)
_PLACE_ATTRS = frozenset({"residence", "hometown", "employer"})
_POSS_ATTRS = frozenset({"phone", "email", "address", "birthday", "name"})
# Attributes that can hold only one value for a subject at a time.
ATTRIBUTE_KINDS: dict[str, FactKind] = {
    "residence": "biography", "hometown": "biography", "employer": "biography",
    "occupation": "biography", "phone": "biography", "email": "biography",
    "address": "biography", "birthday": "biography", "age": "biography", "name": "biography",
    "manager": "relationship", "mentor": "relationship", "partner": "relationship",
    "diet": "preference", "editor": "preference",
}


# Words one of which must be in a sentence for the pattern at the same index of _ATTRS to match.
_TRIGGERS: list[tuple[str, ...]] = [
    ("liv", "mov", "reloc", "settled"), ("grew up", "born", "raised"), ("from",), ("work",),
    ("job", "position", "role", "intern", "post", "placement"), ("join",), (" at ",),
    (" as ",), ("",), ("manager", "boss", "lead", "supervisor"),
    ("manager", "boss", "lead", "supervisor"), ("report",), ("mentor",),
    ("girlfriend", "boyfriend", "wife", "husband", "partner", "fianc"),
    ("married", "engaged", "dating", "marry"), ("phone",), ("mail",), ("address",),
    ("birthday",), ("turn", "is "), ("veg", "pesc", "flexi", "keto", "halal", "kosher"),
    ("name is",), ("vim", "emacs", "code", "cursor", "zed", "sublime", "intellij", "pycharm",
                   "helix"),
]
_OCC_WORD = re.compile(rf"\b(?:{_OCC})", re.I)
_TRIGGER_RES = [_OCC_WORD if t == ("",) else re.compile("|".join(map(re.escape, t)))
                for t in _TRIGGERS]


def _possessor(text: str, start: int, subject: str) -> str | None:
    """Whose phone/address/birthday: 'Jonas's new phone' → Jonas."""
    head = text[max(0, start - 60):start]
    m = re.search(rf"({re.escape(subject)}|{NAME})['’]s\s+(?:new\s+|current\s+|old\s+|"
                  r"home\s+|work\s+|mobile\s+|cell\s+|personal\s+|real\s+|full\s+)*$", head)
    if m:
        return m.group(1) if m.group(1) == subject else _clean_name(m.group(1))
    return None


def find_attributes(text: str, subject: str) -> list[_Attr]:
    """Every (attribute, value, owner) the sentence states, in order, without overlaps."""
    found: list[_Attr] = []

    def add(attr: str, value: str | None, owner: str | None, start: int, end: int,
            aside: bool = False) -> None:
        if not value or owner is None:
            return
        if any(a.start < end and start < a.end for a in found):
            return
        found.append(_Attr(attr, value, owner, start, end, aside))

    low = text.lower()
    for (attr, pat), trigger in zip(_ATTRS, _TRIGGER_RES, strict=True):
        if not trigger.search(low):
            continue
        for m in pat.finditer(text):
            if _NEGATED.search(text[max(0, m.start() - 30):m.start()]):
                continue  # "I don't live in London any more" states no residence
            value: str | None = _clean_value(m.group("value"))
            if attr in _PLACE_ATTRS or attr in ("manager", "mentor", "partner", "name"):
                value = _clean_name(value) if value else None
                if value:
                    value = _TITLES.sub("", value)
                if not value or _TIME_WORD.match(value) or value == subject:
                    continue
            if attr == "occupation" and value and (value.lower().split()[0] in
                                                   ("huge", "big", "fan", "bit")):
                continue
            if "poss" in pat.groupindex and m.group("poss"):
                poss = m.group("poss")
                if poss.lower() in ("her", "his", "their"):
                    owner = _antecedent(text, m.start(), subject)
                else:
                    poss = poss[:-2]
                    owner = subject if poss.endswith(subject) else _clean_name(poss)
            elif attr in _POSS_ATTRS:
                owner = _possessor(text, m.start(), subject)
            else:
                owner = _owner(text, m.start(), subject)
            # "my girlfriend Elin found the flat": the relation is named in passing.
            aside = False
            if "rel" in pat.groupindex:
                if m.start("rel") > m.start("value"):
                    aside = True  # "Priya (my manager)"
                else:
                    between = text[m.end("rel"):m.start("value")]
                    aside = not re.search(r"\bis\b", between)
            add(attr, value, owner, m.start(), m.end(), aside)
    for pat in _FAVOURITE if "favo" in low else ():
        for m in pat.finditer(text):
            what = m.group("what").strip().lower()
            owner = _possessor(text, m.start(), subject) or (
                subject if re.match(r"\s*$", text[:m.start()]) else _owner(text, m.start(), subject))
            if pat is _FAVOURITE[1]:
                owner = subject if f"{subject}'s favourite" in m.group(0) or \
                    f"{subject}'s favorite" in m.group(0) else owner
            add(f"favourite {what}", _clean_value(m.group("value")), owner, m.start(), m.end())
    pm = _PREFER.search(text) if "prefer" in low else None
    if pm:
        add(f"prefers over {_clean_value(pm.group('other')).lower()}",
            _clean_value(pm.group("value")), _owner(text, pm.start(), subject), pm.start(),
            pm.end())
    found.sort(key=lambda a: a.start)
    return found


def _clean_value(v: str) -> str:
    return v.strip(" ,.;:!\"'“”‘’()").strip()


# ------------------------------------------------------------------ kinds

_TASK = re.compile(
    r"\b(?:todo|to-do|to do:|need(?:s)? to|have to|has to|must|remind(?:s)? (?:me|him|her|them|"
    r"us)|reminder to|don't forget|do not forget|remember to|deadline|due\b|action:|action item|"
    r"should (?:call|send|buy|finish|fix|book|email|write|check|renew|cancel|pay)|to read|to buy|"
    r"to watch|to try)\b", re.I)
_DECISION = re.compile(
    r"\b(?:decided|decide to|decision|chose|chosen|choose to|we'll (?:use|go with)|going (?:to go )?"
    r"with|go with|settled on|opted|agreed (?:to|on)|will switch|switch(?:ed|ing)? (?:\w+ )?"
    r"(?:to|from)|dropping|instead of|resolutions?|committed to|signed up for)\b", re.I)
_PREFERENCE_STRONG = re.compile(
    r"\b(?:love|loves|loved|hate|hates|hated|prefer|prefers|preferred|favou?rite|can't stand|"
    r"cannot stand|dislike|dislikes|enjoy|enjoys|adore|adores|detest|fan of|wants? to (?:come back|"
    r"go back|return|try|visit|see)|would love|'d love)\b", re.I)
_PREFERENCE_WEAK = re.compile(
    r"\b(?:like|likes|liked|into|passionate about|obsessed with|rather)\b", re.I)
_HEALTH = re.compile(
    r"\b(?:allergic|allergy|allergies|coeliac|celiac|gluten|lactose|intolerant|diabetic|diabetes|"
    r"asthma|migraines?|knee|back pain|injury|injured|disability|blood type|medication)\b", re.I)
_RELATIONSHIP = re.compile(
    r"\b(?:wife|husband|partner|girlfriend|boyfriend|fianc[ée]e?|friend|friends|best friend|mother|"
    r"father|mom|mum|dad|sister|brother|son|daughter|kids?|children|parents?|grand(?:ma|pa|mother|"
    r"father|parents)|aunt|uncle|cousin|niece|nephew|manager|boss|colleague|coworker|mentor|"
    r"neighbou?r|landlord|accountant|married|dating|engaged|divorced|split up|broke up)\b", re.I)
_BIOGRAPHY = re.compile(
    r"\b(?:live|lives|lived|living|born|grew up|is from|am from|'m from|work|works|worked|working|"
    r"job|career|studied|study|studies|graduated|degree|university|college|years old|name is|"
    r"phone|address|email|speak|speaks|learning|learned|plays?|playing|member of|office|"
    r"nationality|retired|freelanc\w*|commute|commutes|drive|drives|owns?|car|volunteer\w*|"
    r"transgender|trans|non-binary|nonbinary|gay|lesbian|bisexual|queer|religion|christian|"
    r"muslim|jewish|buddhist|hindu|atheist|identify|identifies)\b", re.I)
_EVENT = re.compile(
    r"\b(?:went|go|going|visited|visit|visiting|attended|attend|met|meet|meeting|saw|traveled|"
    r"travelled|trip|flight|flights|flying|flew|party|concert|wedding|race|marathon|ran|joined|"
    r"started|finished|bought|got|took|won|lost|celebrated|celebrating|adopted|arrived|"
    r"appointment|dinner|lunch|interview|conference|holiday|vacation|quit|shipped|launched|booked|"
    r"expecting|married|moved|signed|handed|graduated|birthday|anniversary|offsite|hike|class|"
    r"lesson|lessons|exam|game|match|retired|promoted|cancelled|canceled)\b", re.I)
_IMPERATIVE = re.compile(
    r"^(?:please\s+)?(?P<verb>call|email|e-mail|book|buy|pick|renew|cancel|fix|write|send|pay|"
    r"schedule|finish|submit|check|ask|order|return|update|read|try|clean|get|make|bring|text|"
    r"message|reply|prepare|review|print|sign|file|register|apply|contact|follow|tell|give|take|"
    r"keep|let|say|translate|suggest|explain|show|find|help|list|summari[sz]e|draft|run|install|"
    r"add|remove|delete|change|set|look|put|water|feed|walk|clear|move|sort|plan|organi[sz]e|"
    r"confirm|invite|arrange|collect|drop|return|wash|charge|backup|back up|upload|download|"
    r"respond|thank|pack|test|ship|deploy|merge|refactor|rename|document|research|compare|"
    r"remember|don't|do not|never|always|start|stop|go|come|see|meet|visit|watch|listen|learn)"
    r"\s+(?=the\b|a\b|an\b|my\b|our\b|your\b|his\b|her\b|their\b|some\b|up\b|out\b|back\b|off\b|"
    r"in\b|me\b|him\b|them\b|it\b|to\b|that\b|this\b|these\b|those\b|all\b|for\b|with\b|about\b|"
    r"before\b|after\b|by\b|on\b|at\b|tomorrow\b|today\b|tonight\b|asap\b|soon\b|next\b|every\b|"
    r"(?-i:[A-Z0-9'\"`‘“]))", re.I)
_RECURRING = re.compile(
    r"\b(?:every|each)\s+(?:other\s+)?(?:day|night|morning|evening|week|weekend|month|year|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|spring|summer|autumn|winter)\b|"
    r"\b(?:mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|sundays|weekly|monthly|daily|"
    r"annually|yearly)\b", re.I)
_SECOND_PERSON = re.compile(r"\b(?:you|your|you're|you've|you'll|yours)\b", re.I)
_NOTE_SPLIT = re.compile(r"\s*(?:;|—|–|\s-\s)\s*|,?\s+and\s+(?=\w)")
_LABEL = re.compile(r"^(?P<label>[\w' -]{1,30}):\s+(?=\S)")
_REQUEST_REWRITE = [
    (re.compile(r"^(?:please\s+)?(?:(?:can|could|would|will) you\s+(?:please\s+)?)?"
                r"(?:remind me to|remember to|don't forget to|do not forget to)\s+", re.I),
     "{S} needs to "),
    (re.compile(r"^(?:please\s+)?(?:can|could|would|will) you\s+(?:please\s+)?remember that\s+"
                r"|^(?:please\s+)?(?:remember|note|fyi|for the record)(?: that)?[:,]?\s+", re.I), ""),
    (re.compile(r"^(?:todo|to do|to-do|action(?: item)?|reminder)\s*:\s*", re.I), "{S} needs to "),
]
_NOTE_VERB_START = re.compile(
    r"^(?:[A-Z][a-z]+ed|Went|Saw|Met|Got|Took|Made|Ran|Won|Lost|Bought|Brought|Told|Said|Found|"
    r"Gave|Came|Became|Began|Felt|Kept|Left|Paid|Sent|Spent|Wrote|Drove|Ate|Flew|Grew|Knew|Chose|"
    r"Spoke|Broke|Forgot|Sold|Heard|Held|Built|Fell|Caught|Slept|Swam|Sang|Quit|Shut|Read|"
    r"Need to|Have to|Want to|Planning to|Thinking of|Thinking about|Going to)\b"
    r"(?<!Fred)(?<!Ahmed)(?<!Mohammed)(?<!Jared)(?<!Alfred)(?<!Ted)(?<!Ned)(?<!Reed)(?<!Saeed)"
    r"(?<!Javed)(?<!Naveed)(?<!Hamed)(?<!Syed)(?<!Sayed)(?<!Winifred)(?<!Mehmed)"
    r"(?!['’]s)(?!\s+(?:is|was|has|had|will|and|said|says|thinks|wants|\w+ed)\b)")


def classify(text: str, attribute: str | None, dates: Sequence[DateMention],
             aside: bool = False) -> FactKind:
    """The kind of one statement: its attribute decides first, then the words it uses.

    An attribute named in passing (`aside`) only decides when nothing else does: "my partner
    Sam is allergic to peanuts" is about health, "my daughter Lily starts school on Monday"
    an event."""
    if _TASK.search(text):
        return "task"
    if _DECISION.search(text):
        return "decision"
    if aside:
        if _PREFERENCE_STRONG.search(text):
            return "preference"
        if _HEALTH.search(text):
            return "biography"
        if any(d.role != "since" for d in dates):
            return "event"
    if attribute:
        if attribute.startswith("favourite") or attribute.startswith("prefers"):
            return "preference"
        return ATTRIBUTE_KINDS.get(attribute, "knowledge")
    if _PREFERENCE_STRONG.search(text):
        return "preference"
    if _HEALTH.search(text):
        return "biography"
    if any(d.role != "since" for d in dates):
        return "event"
    if _PREFERENCE_WEAK.search(text):
        return "preference"
    if _RELATIONSHIP.search(text):
        return "relationship"
    if _BIOGRAPHY.search(text):
        return "biography"
    if _EVENT.search(text):
        return "event"
    return "knowledge"


# ------------------------------------------------------------------ the extractor


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_fragment(s: str) -> bool:
    """'Hanoi, Hoi An and Ho Chi Minh City.': names and no word that says anything."""
    words = re.findall(r"[^\W\d_][\w'-]*", s)
    return not any(w[0].islower() and w.lower() not in _FRAGMENT_WORDS for w in words)


def _split_tasks(sent: str) -> list[str]:
    """'Passport expires in March — renew before the trip' is a fact and a task: in notes, a
    clause that starts with an imperative after ';', a dash or 'and' stands on its own (with
    the sentence's 'Next week:' label, if any)."""
    parts: list[str] = []
    last = 0
    for m in _NOTE_SPLIT.finditer(sent):
        rest = sent[m.end():]
        if _IMPERATIVE.match(rest) and m.start() > last:
            parts.append(sent[last:m.start()])
            last = m.end()
    if not parts:
        return [sent]
    parts.append(sent[last:])
    label = _LABEL.match(parts[0])
    if label:
        parts = [parts[0]] + [label.group(0) + p for p in parts[1:]]
    return [p.strip() for p in parts if p.strip()]


def _rewrite_dates(text: str, dates: Sequence[DateMention]) -> str:
    for m in reversed(dates):
        if not m.relative:
            continue
        prev = text[:m.start].split()
        text = text[:m.start] + m.replacement(prev[-1] if prev else "") + text[m.end:]
    return text


_NAME_THEN_VERB = re.compile(
    r"['’]s\s|\s+(?:(?:\w+ly|just|also|still)\s+)?(?:is|was|has|had|will|would|can|could|should|"
    r"needs?|wants?|says?|said|told|thinks?|loves?|likes?|hates?|lives?|works?|recommended|"
    r"turned|turns|left|got|gets|moved|started|joined|bought|went|goes|plays?|visited|called|"
    r"texted|sent|asked|and|\w+ed)\b")


def _mentions_someone(text: str) -> bool:
    """A name anywhere but the first word, or a first word that acts like one ('Luis will…')."""
    return any(start > 0 or _NAME_THEN_VERB.match(text, end) for start, end, _ in _names(text))


def _sentence_subject(text: str, subject: str, first_person: bool, note: bool,
                      kind: str) -> str | None:
    if first_person or text.startswith(subject):
        return subject
    names = _names(text[:40])
    if names and names[0][0] == 0 and _NAME_THEN_VERB.match(text, names[0][1]):
        return names[0][2]
    if note and kind in ("event", "task", "decision", "preference", "biography"):
        return subject
    return None


class RulesExtractor:
    """Deterministic and fast (thousands of messages a second); see the module docstring."""

    name = "rules"
    version = VERSION

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        return [self.extract_one(e) for e in episodes]

    def extract_one(self, ep: EpisodeDraft) -> list[FactDraft]:
        note = ep.speaker is None and ep.role == "user"
        to_assistant = (ep.speaker or "").lower() in ("user", "me", "human")
        if ep.speaker and not to_assistant and ep.speaker.lower() not in ("assistant", "ai"):
            subject = ep.speaker
        else:
            subject = "The assistant" if ep.role == "assistant" else "The user"
        at = _parse_time(ep.occurred_at)
        facts: list[FactDraft] = []
        seen: set[str] = set()
        sentences = split_sentences(ep.text)
        if note:
            sentences = [part for sent in sentences for part in _split_tasks(sent)]
        for sent in sentences:
            for f in self._facts_from_sentence(sent, subject, at, ep.role, note, to_assistant):
                key = f.text.lower()
                if key not in seen:
                    seen.add(key)
                    facts.append(f)
            if len(facts) >= MAX_FACTS:
                break
        return facts[:MAX_FACTS]

    def _facts_from_sentence(self, sent: str, subject: str, at: datetime | None, role: str,
                             note: bool, to_assistant: bool) -> list[FactDraft]:
        sent = _DISCOURSE.sub("", sent).strip()
        if len(sent) < 8 or len(sent) > 400 or _FILLER.match(sent):
            return []
        reminder = bool(re.search(r"\bremind (?:me|us)\b|\bdon't let me forget\b", sent, re.I))
        if (sent.endswith("?") or _QUESTION_START.match(sent)) and not reminder:
            return []
        if _TRANSIENT.match(sent) or _is_fragment(sent):
            return []
        text = sent
        task = False
        for pat, rep in _REQUEST_REWRITE:
            if pat.match(text):
                task = rep.startswith("{S}")
                text = pat.sub(rep.replace("{S}", subject), text, count=1)
                if text and text[0].islower():
                    text = text[0].upper() + text[1:]
                break
        body = _LABEL.sub("", text) if not task else text
        if not task and _IMPERATIVE.match(body) and not _FIRST_PERSON.match(body):
            if not note and not reminder:
                return []  # a request to the assistant or to the person one talks to
            label = _LABEL.match(text)
            imperative = body[0].lower() + body[1:]
            text = (f"{label.group('label')}: " if label else "") + f"{subject} needs to {imperative}"
            task = True
        elif note and _NOTE_VERB_START.match(text):
            text = f"{subject} {text[0].lower()}{text[1:]}"  # "Moved to Dublin." in a note
        text = text.rstrip(" ?").rstrip() if reminder else text
        if len(text.split()) < 3:
            return []
        first_person = bool(_FIRST_PERSON.search(text))
        tense = tense_of(text)
        text = resolve_first_person(text, subject, past=tense == "past")
        someone = first_person or task or note or text.startswith(subject) or _mentions_someone(text)
        if not (someone or re.search(r"\d", text) or _RECURRING.search(text)
                or find_dates(text, at, tense)):
            return []
        if not someone and _SECOND_PERSON.search(text):
            return []  # "good to see you": about the one spoken to, and nothing to keep
        attrs = find_attributes(text, subject)
        clauses = self._clauses(text, attrs)
        out: list[FactDraft] = []
        for clause, attr in clauses:
            if clause is not text:
                clause = clause.strip(" ,;:—–-")
                if attr and attr.owner and not clause.startswith(attr.owner) and \
                        clause.split()[0].islower():
                    clause = f"{attr.owner} {clause}"  # "…and moved to Dublin" → "X moved to Dublin"
                clause = clause[0].upper() + clause[1:]
                if not clause.endswith((".", "!", "?")):
                    clause += "."
            dates = find_dates(clause, at, tense)
            kind = "task" if task else classify(clause, attr.attribute if attr else None, dates,
                                                attr.aside if attr else False)
            if role == "assistant" and (kind not in ("decision", "task")
                                        or re.search(r"\byou(?:r|'ll|'re)?\b", clause, re.I)):
                continue  # an assistant's advice is not the user's memory; the episode stays
            out_text = _rewrite_dates(clause, dates)
            if subject == "The user":
                out_text = out_text[:1] + out_text[1:].replace("The user", "the user")
            valid_from = next((d.iso for d in dates if d.role in ("at", "since")), None)
            valid_to = next((d.iso for d in dates if d.role == "until"), None)
            subj = attr.owner if attr else _sentence_subject(
                clause, subject, first_person, note, kind)
            confidence = 0.7 if attr else 0.5
            if role == "assistant":
                confidence -= 0.2
            out.append(FactDraft(
                text=out_text, kind=kind, subject=subj,
                attribute=attr.attribute if attr else None, value=attr.value if attr else None,
                valid_from=valid_from, valid_to=valid_to, confidence=round(confidence, 2)))
        return out

    @staticmethod
    def _clauses(text: str, attrs: list[_Attr]) -> list[tuple[str, _Attr | None]]:
        """One clause per attribute when a sentence states several; else the whole sentence."""
        if len(attrs) < 2 or len({(a.attribute, a.value) for a in attrs}) < 2:
            return [(text, attrs[0] if attrs else None)]
        bounds: list[tuple[int, int]] = []
        for a in attrs[1:]:
            b = _boundary_before(text, a.start)
            if b[1] == 0 or (bounds and b[1] <= bounds[-1][1]) or b[1] <= attrs[0].start:
                return [(text, attrs[0])]  # no boundary between them: keep one fact
            bounds.append(b)
        starts = [0] + [e for _, e in bounds]
        ends = [s for s, _ in bounds] + [len(text)]
        return [(text[starts[i]:ends[i]], a) for i, a in enumerate(attrs)]
