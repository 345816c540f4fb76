"""The screen in front of Presidio (`pii.might_hold`): a text it clears is one that no
pattern recognizer can match, so skipping Presidio there loses nothing. Held three ways:
the library facts its proof rests on, Presidio itself on drawn and real texts (per entity),
and a fresh process that scrubs catalog titles without importing Presidio."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.profiles import pii
from agent.profiles.scrub import MAX_SCRUB_CHARS, _prepare, scrub
from bench.scrub import catalog_titles, load_corpus
from tests.fresh import modules_loaded_by


def found_by_presidio(text: str) -> dict[str, int]:
    """Entity -> detections of the `patterns` engine (every pattern recognizer), unscreened."""
    engine = pii.engines("patterns").analyzer
    counts: dict[str, int] = defaultdict(int)
    for result in engine.analyze(text, language="en", entities=list(pii.PATTERN_ENTITIES)):
        counts[result.entity_type] += 1
    return counts


def assert_screen_implies_nothing_found(text: str) -> None:
    found = found_by_presidio(text)
    for entity in pii.PATTERN_ENTITIES:
        if not pii.might_hold(text, [entity]):
            assert not found.get(entity), f"screen cleared {entity} in {text!r}: {found}"


# -- the facts the proof rests on ----------------------------------------------------------


def test_phone_screen_uses_presidios_regions_and_leniency() -> None:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    recognizer = PhoneRecognizer()
    assert tuple(recognizer.supported_regions) == pii.PHONE_REGIONS
    assert recognizer.leniency == pii.PHONE_LENIENCY


def test_no_numbering_plan_has_a_valid_number_of_two_digits() -> None:
    """Why texts with fewer than 3 digits skip the phone matcher: a viable number is exactly
    2 digits (plus an extension) or has 3 digits or more, and no plan has a 2-digit number."""
    import phonenumbers
    from phonenumbers import phonenumberutil as util

    assert util._MIN_LENGTH_FOR_NSN == 2
    assert util._VALID_PHONE_NUMBER.startswith(util._DIGITS + "{2}|")
    assert "{3,}" in util._VALID_PHONE_NUMBER.split("|", 1)[1]
    shortest = []
    for region in [*phonenumbers.SUPPORTED_REGIONS]:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        assert meta is not None and meta.general_desc is not None
        shortest.append(min(n for n in meta.general_desc.possible_length if n > 0))
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        meta = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        assert meta is not None and meta.general_desc is not None
        shortest.append(min(n for n in meta.general_desc.possible_length if n > 0))
    assert min(shortest) >= 3


def test_every_listed_top_level_name_has_two_letters_at_least() -> None:
    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    base = UrlRecognizer.BASE_URL_REGEX
    assert base.startswith(r"((www\d{0,3}[.])?[a-z0-9.\-]{1,253}[.](?:(?:com)|")
    names = re.findall(r"\(\?:([^()|]+)\)", base[base.index("(?:(?:com)") :])
    assert len(names) > 600
    assert all(len(n) >= 2 and n[:2].isalpha() for n in names)
    assert all(base in p.regex for p in UrlRecognizer.PATTERNS)


def test_iban_pattern_is_case_sensitive_and_starts_as_the_screen_does() -> None:
    from presidio_analyzer.predefined_recognizers import IbanRecognizer

    recognizer = IbanRecognizer()
    assert not (recognizer.global_regex_flags or 0) & re.IGNORECASE
    regexes = [str(pattern.regex) for pattern in IbanRecognizer.PATTERNS]
    assert len(regexes) == 1 and regexes[0].startswith(
        r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})"
    )


# -- Presidio on real and drawn texts ------------------------------------------------------


def test_screen_against_presidio_on_the_corpus_and_titles() -> None:
    texts = [c.text for c in load_corpus()] + catalog_titles()
    texts += [value for c in load_corpus() for _, value in c.pii]
    for text in texts:
        assert_screen_implies_nothing_found(_prepare(text, MAX_SCRUB_CHARS))


def test_every_pattern_kind_in_the_corpus_reaches_presidio() -> None:
    kinds = {"CARD", "IBAN", "PHONE", "EMAIL", "URL", "SSN", "IP", "ADDRESS"}
    for case in load_corpus():
        for kind, value in case.pii:
            if kind in kinds:
                assert pii.might_hold(case.text, pii.PATTERN_ENTITIES), (kind, value)


FRAGMENTS = [
    "@", ".", ":", "::", "/", "://", "-", " ", "+", "(", ")", "x", "X", "ext", "int", "#", ",",
    "0", "1", "2", "4", "7", "9", "12", "415", "555", "030", "2001", "ff", "DE89", "GB", "com",
    ".com", ".io", "www", "http", "a", "Z", "Street", "rue", "strasse", "١", "２", "８",
    "\u00a0", "ſ", "K",
]  # fmt: skip
"""Pieces every recognizer is built from, so drawn texts land near their edges."""
texts = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=14).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_screen_against_presidio_on_drawn_texts(text: str) -> None:
    assert_screen_implies_nothing_found(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    digits=st.lists(st.sampled_from("0123456789"), min_size=7, max_size=16).map("".join),
    seps=st.lists(st.sampled_from([" ", "-", ".", ""]), min_size=3, max_size=3),
    lead=st.sampled_from(["", "+", "+1 ", "+49 ", "(", "0"]),
)
def test_screen_against_presidio_on_number_shapes(digits: str, seps: list[str], lead: str) -> None:
    a, b, c = seps
    text = f"call {lead}{digits[:3]}{a}{digits[3:6]}{b}{digits[6:10]}{c}{digits[10:]} now"
    assert_screen_implies_nothing_found(text)


# -- what it saves -------------------------------------------------------------------------


def test_titles_without_contact_data_never_import_presidio() -> None:
    titles = [
        "Being John Malkovich", "Apollo 13", "101 Dalmatians", "E.T. the Extra-Terrestrial",
        "2001: A Space Odyssey", "Naked Gun 33 1/3: The Final Insult", "Drama", "Children's",
    ]  # fmt: skip
    code = (
        "from agent.profiles.scrub import scrub\n"
        f"titles = {titles!r}\n"
        "assert [scrub(t) for t in titles] == titles, [scrub(t) for t in titles]"
    )
    assert modules_loaded_by(code, ("presidio_analyzer", "presidio_anonymizer", "spacy")) == []


def test_screened_texts_are_still_scrubbed_where_they_hold_contact_data() -> None:
    assert scrub("Mail fan@example.com") == "Mail [email]"
    assert scrub("Amazon.com Gift Card") == "[url] Gift Card"
    assert scrub("call +1 415-823-4471") == "call [phone]"


@pytest.mark.parametrize("mode", ["full", "patterns"])
def test_names_are_never_screened_out(mode: Any) -> None:
    entities = pii.mode_entities(mode)
    assert pii.might_hold("no digits here", entities) is (mode == "full")
