"""The `rules` extractor: short self-contained statements from episodes, no model needed.

Each sentence that says something about someone becomes a fact: first person is resolved to the
speaker (or "The user" in notes), relative dates to absolute ones against the episode's time,
and statements that can be contradicted later (where someone lives, works, who their manager is,
what they prefer) get a subject and attribute so the resolver can supersede them.
Questions, greetings and filler are not facts; the verbatim episode keeps them anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from cairn.extraction.dates import find_dates
from cairn.models import EpisodeDraft, FactDraft

VERSION = "1"

_ABBREV = r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\betc)"
_SPLIT = re.compile(_ABBREV + r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_WS = re.compile(r"\s+")
_FIRST_PERSON = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself|we|we're|we've|our|us)\b",
                           re.I)
_FILLER = re.compile(
    r"^(hi|hey|hello|thanks|thank you|thx|ok|okay|cool|wow|lol|haha+|yes|yeah|yep|no|nope|sure|"
    r"great|awesome|nice|good (morning|night|luck)|bye|see you|congrats|congratulations|"
    r"take care|sounds good|me too|same)\b[\s\w!,.']{0,30}$", re.I)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b")
_NUMBERISH = re.compile(r"\d")

# kind ← the first pattern that matches (order matters: the most specific first).
_KINDS: list[tuple[str, re.Pattern[str]]] = [
    ("task", re.compile(r"\b(todo|to-do|need to|needs to|have to|has to|must|remind me|"
                        r"don't forget|deadline|due (on|by)|should (call|send|buy|finish|fix|"
                        r"book|email|write|check))\b", re.I)),
    ("decision", re.compile(r"\b(decided|decide to|chose|choose to|we'll (use|go with)|"
                            r"going (to go )?with|settled on|opted|picked|agreed to|"
                            r"will switch|switched to)\b", re.I)),
    ("preference", re.compile(r"\b(love|loves|like|likes|enjoy|enjoys|prefer|prefers|hate|"
                              r"hates|dislike|dislikes|favou?rite|can't stand|fan of|into|"
                              r"passionate about|allergic|vegetarian|vegan)\b", re.I)),
    ("relationship", re.compile(r"\b(wife|husband|partner|girlfriend|boyfriend|friend|friends|"
                                r"mother|father|mom|mum|dad|sister|brother|son|daughter|kids?|"
                                r"children|parents?|grand(ma|pa|mother|father)|aunt|uncle|"
                                r"cousin|manager|boss|colleague|coworker|mentor|neighbou?r|"
                                r"married|dating|engaged|divorced|dog|cat|pet)\b", re.I)),
    ("biography", re.compile(r"\b(live|lives|lived|living|moved|move|born|grew up|from|work|"
                             r"works|worked|working|job|career|studied|study|studies|"
                             r"graduated|degree|school|university|college|years old|age|"
                             r"name is|called|phone|address|email|identify|transgender|"
                             r"nationality|speak|speaks)\b", re.I)),
    ("event", re.compile(r"\b(went|go|going|visited|visit|attended|attend|met|meet|saw|"
                         r"traveled|travelled|trip|party|concert|wedding|race|ran|joined|"
                         r"started|finished|bought|got|took|had|made|painted|won|lost|"
                         r"celebrated|signed up|adopted|yesterday|last week|tomorrow)\b", re.I)),
]

_PLACE = r"([A-Z][\w'-]*(?:[ ,]+(?:[A-Z][\w'-]*|de|da|do|of|the))*)"
_THING = r"(.{2,80}?)"
_END = r"(?=[.,;!?]|\s+(?:and|but|because|since|for|with|now|these days)\b|$)"

# (attribute, pattern over the resolved sentence with {S} the subject, value group)
_ATTRS: list[tuple[str, re.Pattern[str]]] = [
    ("residence", re.compile(r"\b(?:lives?|living|(?:has |have )?moved|relocated)\s+(?:now\s+)?"
                             r"(?:in|to)\s+" + _PLACE)),
    ("employer", re.compile(r"\b(?:works?|working|(?:has |have )?started)\s+(?:now\s+)?"
                            r"(?:at|for)\s+" + _PLACE)),
    ("employer", re.compile(r"\b(?:joined|got a job at)\s+" + _PLACE)),
    ("occupation", re.compile(r"\b(?:works?|working) as an?\s+" + _THING + _END)),
    ("manager", re.compile(r"\b(?:manager|boss) is\s+" + _PLACE)),
    ("manager", re.compile(r"\breports? to\s+" + _PLACE)),
    ("phone", re.compile(r"\bphone(?: number)? is\s+([+\d][\d ()./-]{5,20}\d)")),
    ("email", re.compile(r"\bemail(?: address)? is\s+(\S+@\S+\.\w+)")),
    ("address", re.compile(r"\baddress is\s+" + _THING + r"(?=[.;!?]|$)")),
    ("name", re.compile(r"\bname is\s+" + _PLACE)),
    ("age", re.compile(r"\bis (\d{1,3}) years old\b")),
    ("partner", re.compile(r"\b(?:married to|engaged to|dating)\s+" + _PLACE)),
    ("hometown", re.compile(r"\b(?:is from|grew up in|was born in)\s+" + _PLACE)),
    ("editor", re.compile(r"\b(?:uses|prefers|switched to)\s+(vim|neovim|emacs|vs ?code|"
                          r"vscode|cursor|zed|sublime|intellij|pycharm|helix)\b", re.I)),
]
_FAVOURITE = re.compile(r"\bfavou?rite\s+([a-z][a-z ]{1,30}?)\s+(?:is|are)\s+" + _THING + _END)
_PREFER = re.compile(r"\bprefers?\s+" + _THING + r"\s+(?:over|to|rather than)\s+(.{2,60}?)" + _END)

_IRREGULAR_3RD = {"have": "has", "do": "does", "go": "goes", "be": "is", "am": "is",
                  "was": "was", "were": "was"}
_NO_S = {"can", "could", "will", "would", "should", "might", "must", "may", "shall", "did",
         "had", "was", "never", "always", "also", "just", "really", "still", "often",
         "usually", "sometimes", "recently", "finally", "actually", "already", "love", "'d"}
_PAST = set("""went saw met got took had made did ran won lost bought brought thought told said
found gave came became began felt kept left meant paid put read sent set sat spent stood taught
understood wrote drove ate drank flew grew knew threw wore chose rode spoke broke forgot sold
heard held built fell fought caught slept swam sang led lent let hung hit hurt quit shut
""".split())
_ED_PRESENT = {"need", "feed", "seed", "speed", "bleed", "breed", "proceed", "succeed", "exceed",
               "shed", "wed", "embed"}
_ADVERBS = {"never", "always", "also", "just", "really", "still", "often", "usually",
            "sometimes", "recently", "finally", "actually", "already", "even", "totally",
            "definitely", "mostly", "only", "absolutely"}


def third_person(verb: str) -> str:
    v = verb.lower()
    if v in _IRREGULAR_3RD:
        return _IRREGULAR_3RD[v]
    if v in _NO_S or v in _PAST or not v.isalpha():
        return verb
    if v.endswith("ed") and v not in _ED_PRESENT:
        return verb
    if re.search(r"(s|sh|ch|x|z|o)$", v):
        return verb + "es"
    if re.search(r"[^aeiou]y$", v):
        return verb[:-1] + "ies"
    return verb + "s"


_I_VERB = re.compile(r"\bI\s+(?:((?:" + "|".join(_ADVERBS) + r")\s+))?([A-Za-z']+)")
_CONTRACTIONS = [
    (re.compile(r"\bI'm\b|\bI am\b", re.I), "{S} is"),
    (re.compile(r"\bI've\b|\bI have\b", re.I), "{S} has"),
    (re.compile(r"\bI'd\b", re.I), "{S} would"),
    (re.compile(r"\bI'll\b|\bI will\b", re.I), "{S} will"),
    (re.compile(r"\bI was\b", re.I), "{S} was"),
    (re.compile(r"\bmyself\b", re.I), "{S}"),
    (re.compile(r"\bmy\b", re.I), "{S}'s"),
    (re.compile(r"\bmine\b", re.I), "{S}'s"),
    (re.compile(r"(?<=\s)me\b", re.I), "{S}"),
]


def resolve_first_person(sentence: str, subject: str) -> str:
    """'I moved to Lisbon' said by Ana → 'Ana moved to Lisbon'."""
    s = sentence
    for pat, rep in _CONTRACTIONS:
        s = pat.sub(rep.replace("{S}", subject), s)

    def verb(m: re.Match[str]) -> str:
        adv = m.group(1) or ""
        return f"{subject} {adv}{third_person(m.group(2))}"

    s = _I_VERB.sub(verb, s)
    s = re.sub(r"\bI\b", subject, s)
    if s and s[0].islower():
        s = s[0].upper() + s[1:]
    return s.replace(f"{subject}'s's", f"{subject}'s")


def split_sentences(text: str) -> list[str]:
    out = []
    for part in _SPLIT.split(text):
        part = _WS.sub(" ", part).strip(" -*•>\t")
        if part:
            out.append(part)
    return out


def _is_statement(s: str) -> bool:
    if s.endswith("?") or len(s) < 12 or len(s) > 400:
        return False
    words = s.split()
    if len(words) < 4:
        return False
    if _FILLER.match(s):
        return False
    return True


def _about_someone(s: str) -> bool:
    return bool(_FIRST_PERSON.search(s) or _NAME.search(s) or _NUMBERISH.search(s))


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _clean_value(v: str) -> str:
    return v.strip(" ,.;:!\"'").strip()


class RulesExtractor:
    """Deterministic and fast (thousands of messages a second); see the module docstring."""

    name = "rules"
    version = VERSION

    def extract(self, episodes: Sequence[EpisodeDraft]) -> list[list[FactDraft]]:
        return [self.extract_one(e) for e in episodes]

    def extract_one(self, ep: EpisodeDraft) -> list[FactDraft]:
        if ep.role == "assistant":
            speaker_is_user = False
        else:
            speaker_is_user = True
        subject = ep.speaker if ep.speaker and ep.speaker.lower() not in ("user", "me") else None
        if subject is None:
            subject = "The user" if speaker_is_user else "The assistant"
        at = _parse_time(ep.occurred_at)
        facts: list[FactDraft] = []
        seen: set[str] = set()
        for sent in split_sentences(ep.text):
            if not _is_statement(sent) or not _about_someone(sent):
                continue
            facts_for = self._facts_from_sentence(sent, subject, at, ep.role)
            for f in facts_for:
                key = f.text.lower()
                if key not in seen:
                    seen.add(key)
                    facts.append(f)
            if len(facts) >= 8:
                break
        return facts

    def _facts_from_sentence(self, sent: str, subject: str, at: datetime | None,
                             role: str) -> list[FactDraft]:
        text = resolve_first_person(sent, subject)
        valid_from = None
        mentions = find_dates(text, at)
        if mentions:
            # Rewrite relative dates so the fact stands on its own ("yesterday" → "on 7 May 2023").
            for m in reversed(mentions):
                if not re.match(r"\d|on \d|in \d", m.text) and not re.search(r"\d{4}", m.text):
                    tail = "." if m.text.endswith(".") else ""
                    text = text[:m.start] + m.render() + tail + text[m.end:]
            valid_from = mentions[0].iso
        text = text[0].upper() + text[1:] if text else text
        kind = "knowledge"
        for k, pat in _KINDS:
            if pat.search(sent):
                kind = k
                break
        attribute = value = None
        subj: str | None = subject
        low = text
        for attr, pat in _ATTRS:
            m = pat.search(low)
            if m and self._subject_first(low, m.start(), subject):
                attribute, value = attr, _clean_value(m.group(1))
                if attr == "residence" or attr == "hometown" or attr == "employer":
                    value = value.split(" and ")[0]
                break
        if attribute is None and (m := _FAVOURITE.search(low)):
            attribute, value = f"favourite {m.group(1).strip().lower()}", _clean_value(m.group(2))
            kind = "preference"
        if attribute is None and (m := _PREFER.search(low)):
            attribute, value = f"prefers over {_clean_value(m.group(2)).lower()}", \
                _clean_value(m.group(1))
            kind = "preference"
        if attribute in ("residence", "employer", "occupation", "name", "age", "hometown",
                         "phone", "email", "address"):
            kind = "biography"
        elif attribute in ("manager", "partner"):
            kind = "relationship"
        if attribute is None and not _FIRST_PERSON.search(sent) and not sent.startswith(subject):
            subj = None
        if value is not None and not value:
            attribute = value = None
        confidence = 0.7 if attribute else 0.5
        if role == "assistant":
            confidence -= 0.2
        return [FactDraft(text=text, kind=kind, subject=subj, attribute=attribute, value=value,  # type: ignore[arg-type]
                          valid_from=valid_from, confidence=round(confidence, 2))]

    @staticmethod
    def _subject_first(text: str, pos: int, subject: str) -> bool:
        """The attribute must be about the subject: it appears before the match, in the clause."""
        head = text[:pos]
        return subject in head[-80:] or head.strip() == ""
