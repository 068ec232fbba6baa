"""Relative dates resolved against the time a message was written, tense deciding direction."""

from __future__ import annotations

from datetime import datetime

import pytest

from cairn.extraction.dates import find_dates, tense_of

# 2024-05-08 is a Wednesday.
AT = datetime(2024, 5, 8, 13, 56)


@pytest.mark.parametrize(("text", "iso", "role"), [
    ("I moved to Lisbon yesterday", "2024-05-07", "at"),
    ("we watched it last night", "2024-05-07", "at"),
    ("the party is tomorrow", "2024-05-09", "at"),
    ("I started a new job last week", "2024-04-29", "at"),  # the Monday of that week
    ("we adopted a dog two weeks ago", "2024-04-24", "at"),
    ("the results come in two days", "2024-05-10", "at"),
    ("I quit a month ago", "2024-04", "at"),
    ("next month I fly to Oslo", "2024-06", "at"),
    ("this weekend we go hiking", "2024-05-11", "at"),  # its Saturday
    ("we got married on Saturday", "2024-05-04", "at"),  # past tense: the one before
    ("dinner with Ana on Saturday", "2024-05-11", "at"),  # a plan: the one after
    ("Call Mum on Sunday", "2024-05-12", "at"),
    ("Mia turned 4 last Saturday", "2024-05-04", "at"),
    ("dentist next Tuesday at 3pm", "2024-05-14", "at"),
    ("the office is closed on Monday", "2024-05-13", "at"),  # "is closed": a state, not past
    ("renew the insurance before October 1", "2024-10-01", "at"),
    ("the team agreed to freeze features on June 1", "2024-06-01", "at"),
    ("flying to Montreal on the 20th", "2024-05-20", "at"),
    ("I arrived on the 2nd", "2024-05-02", "at"),
    ("the wedding is planned for next spring", "2025", "at"),
    ("I have lived here for ten years", "2014", "since"),
    ("vegan now, for about six months", "2023-11", "since"),
    ("vegetarian since 2016", "2016", "since"),
    ("my knee has been bad since the ski trip in February", "2024-02", "since"),
    ("staying at my parents' place until Sunday", "2024-05-12", "until"),
    ("we moved there in March", "2024-03", "at"),
    ("the Berlin marathon in September", "2024-09", "at"),
    ("on 9 December 2023 we met", "2023-12-09", "at"),
    ("the launch is 2024-06-03", "2024-06-03", "at"),
])
def test_dates_resolve_against_the_message_time(text: str, iso: str, role: str) -> None:
    found = find_dates(text, AT)
    assert found, text
    assert (found[0].iso, found[0].role) == (iso, role)


@pytest.mark.parametrize("text", [
    "the staging DB is wiped every Sunday night",
    "swimming lessons moved to Thursdays",
    "I may 5 times a day",  # "may" the verb, not the month
    "we sat at table 12 for an hour",
])
def test_recurring_and_ambiguous_words_are_not_dates(text: str) -> None:
    assert find_dates(text, AT) == []


def test_relative_dates_need_the_message_time() -> None:
    assert find_dates("yesterday I moved", None) == []
    assert [d.iso for d in find_dates("in March 2023 I moved", None)] == ["2023-03"]


def test_replacements_make_the_text_stand_alone() -> None:
    def rewrite(text: str) -> str:
        for d in reversed(find_dates(text, AT)):
            prev = text[:d.start].split()
            text = text[:d.start] + d.replacement(prev[-1] if prev else "") + text[d.end:]
        return text

    assert rewrite("I moved yesterday") == "I moved on 7 May 2024"
    assert rewrite("staying until Sunday") == "staying until 12 May 2024"
    assert rewrite("lived here for ten years") == "lived here for ten years (since 2014)"
    assert rewrite("back in early June") == "back in early June 2024"
    assert rewrite("renew it by Friday") == "renew it by 10 May 2024"
    assert rewrite("in March 2023 I moved") == "in March 2023 I moved"


def test_tense() -> None:
    assert tense_of("we got married") == "past"
    assert tense_of("I'm flying to Oslo") == "future"
    assert tense_of("the office is closed") is None
    assert tense_of("we agreed to freeze features") == "future"
