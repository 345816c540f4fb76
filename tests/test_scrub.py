"""The PII scrub (issue 19): Presidio's recognizers, spaCy NER in `full` mode, offline, and
bounded so that nothing a user writes can stall it. The corpus is tests/fixtures/pii."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.profiles import pii
from agent.profiles.profiler import Profiler
from agent.profiles.scrub import configure, current_mode, excerpt, scrub, scrub_user_text
from bench.scrub import catalog_titles, evaluate, leaked, load_corpus
from tests.profile_data import build_record, event


@pytest.fixture(autouse=True)
def _fresh_mode() -> Any:
    configure(None)
    yield
    configure(None)


def test_patterns_name_each_kind_right() -> None:
    text = (
        "card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-1234, "
        "call (415) 823-4471, mail jo@mailbox.example.org, ip 203.0.113.77"
    )
    assert scrub_user_text(text, mode="patterns") == (
        "card [card], IBAN [iban], SSN [ssn], call [phone], mail [email], ip [ip]"
    )


def test_urls_without_a_listed_tld_and_street_addresses_are_found() -> None:
    out = scrub_user_text("visit evil.example/x, then 221B Baker Street", mode="patterns")
    assert out == "visit [url], then [address]"


@pytest.mark.parametrize(
    "text",
    ["Saw it in 1997, 5 stars", "I give it 8.5/10", "Blade Runner 2049 runs 2h 44m", "Se7en"],
)
def test_numbers_that_are_not_personal_data_stay(text: str) -> None:
    assert scrub_user_text(text, mode="patterns") == text


def test_catalog_text_is_never_read_for_names_or_addresses() -> None:
    titles = catalog_titles()
    changed = {t: scrub(t) for t in titles if scrub(t) != t}
    assert changed == {"Amazon.com Gift Card": "[url] Gift Card"}
    assert "Being John Malkovich" in titles and "10 Cloverfield Lane" in titles


def test_catalog_text_still_loses_contact_data_and_delimiters() -> None:
    assert scrub("Call 415-823-4471 </review> now") == "Call [phone] now"


def test_control_and_bidi_characters_are_gone_before_the_prompt() -> None:
    assert scrub("ab\u202ecd\x07\u200b\x1b[0m") == "abcd[0m"


def test_a_two_megabyte_word_is_scrubbed_at_once() -> None:
    assert excerpt("a" * 2_000_000, 240) == "[...]"
    assert excerpt("see " + "a@" * 1_000_000, 240, mode="patterns") == "see"  # cut at the space
    assert scrub("see " + "a@" * 1_000_000) == "see [...]"


def test_long_text_is_cut_at_a_space_before_scrubbing_so_nothing_is_cut_in_half() -> None:
    text = "x " * 600 + "mail jo.doe@mailbox.example.org " + "y " * 50
    head = excerpt(text, 240, mode="patterns")
    assert "jo.doe" not in head and len(head) <= 243


def test_allowed_phrases_keep_what_lies_inside_them() -> None:
    results = pii._allowed_spans(
        "Being John Malkovich, being john malkovich", ["Being John Malkovich"]
    )
    assert results == [(0, 20), (22, 42)]


def test_mode_comes_from_settings_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_SCRUB_MODE", "patterns")
    configure(None)
    assert current_mode() == ("patterns", pii.DEFAULT_PIPELINE)
    configure("full")
    assert current_mode()[0] == "full"


def test_missing_pipeline_says_what_to_install() -> None:
    with pytest.raises(pii.PiiEngineMissingError, match="'no_such_pipeline' .* not installed"):
        pii.load_pipeline("no_such_pipeline")


def test_the_email_check_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import tldextract.tldextract as tld

    pii.offline_tldextract()
    assert tld.TLD_EXTRACTOR.suffix_list_urls == ()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scrub opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert scrub_user_text("write to k.tanaka@uni-tokyo.ac.jp", mode="patterns") == (
        "write to [email]"
    )


def test_leak_check_counts_words_left_behind() -> None:
    original = "I live at 221B Baker Street"
    assert leaked("221B Baker Street", "I live at 221B [name] Street", original)
    assert not leaked("221B Baker Street", "I live at [address]", original)


@pytest.mark.slow
def test_full_mode_on_the_corpus() -> None:
    """Presidio with spaCy NER finds every kind in the corpus but misses names the small
    pipeline misreads: 'Ana Lima' (Lima, a city), 'Call Margaret Thompson' (an ORG),
    'jenny morales' (lower case)."""
    scores = evaluate(
        "full",
        lambda c: scrub_user_text(c.text, mode="full", allow=[c.title] if c.title else []),
        scrub,
    )
    assert scores.total == {
        "PERSON": 10, "ADDRESS": 6, "CARD": 4, "IBAN": 3, "PHONE": 8, "EMAIL": 4, "URL": 5,
        "SSN": 1, "IP": 1,
    }  # fmt: skip
    assert scores.caught == scores.labelled
    assert scores.caught == {**scores.total, "PERSON": 7}
    assert [miss.split(" -> ")[0] for miss in scores.missed] == [
        "PERSON: 'Ana Lima'", "PERSON: 'Margaret Thompson'", "PERSON: 'jenny morales'"
    ]  # fmt: skip
    # With the item's title allowed, titles quoted in reviews stay; what is still lost:
    assert [lost.split(" -> ")[0] for lost in scores.lost] == [
        "'Blade Runner 2049'", "'3:10 to Yuma'", "'10 Cloverfield Lane'"
    ]  # fmt: skip


@pytest.mark.slow
def test_full_mode_finds_names_and_places_patterns_do_not() -> None:
    text = "Watched it with Margaret Thompson in London."
    assert scrub_user_text(text, mode="full") == "Watched it with [name] in [place]."
    assert scrub_user_text(text, mode="patterns") == text
    assert len(load_corpus()) == 58


def test_a_profile_prompt_with_a_two_megabyte_review_is_built_at_once(tmp_path: Path) -> None:
    """The issue's stalled `personae profile --dry-run`: the review is in the record
    uncut (ingested before the bounds), and its prompt line is still built at once."""
    history = [event("u", "3", 5, 0, "b" * 2_000_000), event("u", "1", 4, 1, "fine")]
    record = build_record(tmp_path)
    with record.writer() as writer:
        for e in history:
            writer.add_interaction(e)
    request = Profiler(Settings(data_dir=tmp_path), record).prepare_full("u")
    text = "\n".join(m.content for m in request.prompt.messages)
    assert "<review>[...]</review>" in text and "<review>fine</review>" in text


def test_optional_heavy_modules_are_hidden_only_while_presidio_imports() -> None:
    import json as loaded

    with pii._unavailable(["personae_no_such_module", "json"]):
        with pytest.raises(ImportError):
            import personae_no_such_module  # noqa: F401
        import json  # already loaded: not hidden

        assert json is loaded
    assert "personae_no_such_module" not in sys.modules
