"""PII scrub: Presidio with spaCy NER (`full`) vs its pattern recognizers only (`patterns`)
vs the hand-written regexes it replaced, on the hand-made corpus in tests/fixtures/pii.

    python bench/scrub.py [--reviews 1000] [--json] [--ml100k]

Reports, per scrubber: recall per entity type (a piece of personal data counts as caught
when none of its words of 3+ characters is left in the output), the phrases that had to
stay readable and did not (false positives: a film title, '8.5/10', '1997'), how many were
caught under the right placeholder (the old regexes wrote [phone] for cards), the catalog
titles changed by the catalog path (`scrub`), and seconds per 1,000 reviews (reviews made of
three corpus texts each, about 160 characters, scrubbed as profiles scrub them, after a
warm-up; engine load time apart), wall and CPU. One process, one core; on a shared machine
the wall time is noisy, the CPU time less so.

Then the catalog path (`scrub`, what recommend's reasons and every prompt's titles go
through) with and without the screen that clears texts no recognizer can match
(`pii.might_hold`): how many titles still reach Presidio, whether any output differs, CPU
seconds per 1,000 titles (uncached). The titles are the fixture's, and with --ml100k also
the 1,682 of the MovieLens-100K sample inside recbole.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pii"
_WORD = re.compile(r"[^\W_]{3,}")
PLACEHOLDER = {
    "PERSON": "[name]", "ADDRESS": "[address]", "CARD": "[card]", "IBAN": "[iban]",
    "PHONE": "[phone]", "EMAIL": "[email]", "URL": "[url]", "SSN": "[ssn]", "IP": "[ip]",
}  # fmt: skip
"""The placeholder that names each kind (the old regexes wrote [phone] for cards)."""


@dataclass(frozen=True)
class Case:
    text: str
    pii: list[tuple[str, str]]
    keep: list[str]
    title: str | None = None


def load_corpus(folder: Path = CORPUS) -> list[Case]:
    cases = []
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        pii = [(kind, value) for kind, value in row["pii"]]
        cases.append(Case(row["text"], pii, row["keep"], row.get("title")))
    return cases


def catalog_titles(folder: Path = CORPUS) -> list[str]:
    return [t for t in (folder / "catalog_titles.txt").read_text("utf-8").splitlines() if t]


def leaked(value: str, output: str, original: str) -> bool:
    """Some word of `value` is still in `output` (words found elsewhere in the original
    text, outside `value`, do not count: 'Street' may be said twice)."""
    rest = original.replace(value, " ")
    return any(word in output and word not in rest for word in _WORD.findall(value))


@dataclass
class Scores:
    name: str
    caught: Counter[str] = field(default_factory=Counter)
    labelled: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    titles_changed: list[str] = field(default_factory=list)
    seconds_per_1000: float = 0.0
    cpu_seconds_per_1000: float = 0.0
    load_seconds: float = 0.0

    def recall(self) -> dict[str, float]:
        return {kind: round(self.caught[kind] / n, 3) for kind, n in sorted(self.total.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scrubber": self.name,
            "recall": self.recall(),
            "recall_all": round(sum(self.caught.values()) / max(1, sum(self.total.values())), 3),
            "caught_and_named_right": {
                kind: f"{self.labelled[kind]}/{n}" for kind, n in sorted(self.total.items())
            },
            "missed": self.missed,
            "false_positives": len(self.lost),
            "lost": self.lost,
            "titles_changed": self.titles_changed,
            "seconds_per_1000_reviews": round(self.seconds_per_1000, 2),
            "cpu_seconds_per_1000_reviews": round(self.cpu_seconds_per_1000, 2),
            "load_seconds": round(self.load_seconds, 2),
        }


Scrubber = Callable[[Case], str]


def evaluate(name: str, scrub_case: Scrubber, scrub_title: Callable[[str], str]) -> Scores:
    scores = Scores(name)
    started = time.perf_counter()
    scrub_title("warm up at 555-0100")  # text the screen passes on, so the engines load here
    scrub_case(Case("warm up John Smith, 12 Main Street, 555-0100", [], []))
    scores.load_seconds = time.perf_counter() - started
    for case in load_corpus():
        out = scrub_case(case)
        for kind, value in case.pii:
            scores.total[kind] += 1
            if leaked(value, out, case.text):
                scores.missed.append(f"{kind}: {value!r} -> {out!r}")
            else:
                scores.caught[kind] += 1
                scores.labelled[kind] += PLACEHOLDER[kind] in out
        scores.lost += [f"{k!r} -> {out!r}" for k in case.keep if k not in out]
    for title in catalog_titles():
        out = scrub_title(title)
        if out != title:
            scores.titles_changed.append(f"{title!r} -> {out!r}")
    return scores


def reviews(n: int, seed: int = 0) -> list[Case]:
    cases = load_corpus()
    rng = random.Random(seed)
    return [Case(" ".join(c.text for c in rng.sample(cases, 3)), [], []) for _ in range(n)]


def time_per_1000(scrub_case: Scrubber, n: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) per 1,000 reviews: on a shared machine
    the CPU time is the steadier of the two."""
    batch = reviews(n)
    started, cpu = time.perf_counter(), time.process_time()
    for case in batch:
        scrub_case(case)
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return wall * 1000 / n, used * 1000 / n


# The regex scrub that Presidio replaced (agent/profiles/scrub.py before issue 19), kept
# here as the baseline. Its e-mail pattern backtracks quadratically on long words.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|ly)(?:/\S*)?\b", re.I
)
_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d(?!\w)")


def old_regex(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _URL.sub("[url]", text)
    return _PHONE.sub("[phone]", text)


def scrubbers() -> dict[str, tuple[Scrubber, Callable[[str], str]]]:
    from agent.profiles.scrub import scrub, scrub_user_text

    return {
        "old regex": (lambda c: old_regex(c.text), old_regex),
        "presidio patterns": (lambda c: scrub_user_text(c.text, mode="patterns"), scrub),
        "presidio full": (lambda c: scrub_user_text(c.text, mode="full"), scrub),
        "presidio full, item title allowed": (
            lambda c: scrub_user_text(c.text, mode="full", allow=[c.title] if c.title else []),
            scrub,
        ),
    }


def ml100k_titles() -> list[str]:
    from agent.ingest.movielens100k import sample_dir

    (item_file,) = sample_dir().glob("*.item")
    lines = item_file.read_text(encoding="latin-1").splitlines()[1:]
    return [line.split("\t")[1] for line in lines if line.count("\t") >= 1]


def catalog_cost(titles: list[str]) -> dict[str, Any]:
    """The catalog scrub of `titles`, uncached, screened (as shipped) and unscreened."""
    from agent.profiles import pii
    from agent.profiles.scrub import MAX_SCRUB_CHARS, _prepare, _scrub_catalog

    scrub_uncached = _scrub_catalog.__wrapped__
    reaching = [
        t for t in titles if pii.might_hold(_prepare(t, MAX_SCRUB_CHARS), pii.CATALOG_ENTITIES)
    ]
    found: dict[str, Any] = {"titles": len(titles), "reach_presidio": len(reaching),
                             "reaching": reaching[:20]}  # fmt: skip
    outputs = {}
    screen = pii.might_hold
    for label, check in (("screened", screen), ("unscreened", lambda text, entities: True)):
        pii.might_hold = check  # type: ignore[assignment]
        try:
            scrub_uncached("warm up 555-0100")
            cpu = time.process_time()
            outputs[label] = [scrub_uncached(t) for t in titles]
            found[f"{label}_cpu_s_per_1000"] = round(
                (time.process_time() - cpu) * 1000 / len(titles), 3
            )
        finally:
            pii.might_hold = screen
    found["outputs_differ"] = sum(a != b for a, b in zip(*outputs.values(), strict=True))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ml100k", action="store_true", help="also the ML-100K sample titles")
    args = parser.parse_args()
    results = []
    for name, (scrub_case, scrub_title) in scrubbers().items():
        scores = evaluate(name, scrub_case, scrub_title)
        scores.seconds_per_1000, scores.cpu_seconds_per_1000 = time_per_1000(
            scrub_case, args.reviews
        )
        results.append(scores.to_dict())
        if not args.json:
            print(json.dumps(results[-1], indent=1, ensure_ascii=False))
    titles = catalog_titles() + (ml100k_titles() if args.ml100k else [])
    catalog = catalog_cost(titles)
    if args.json:
        print(json.dumps({"scrubbers": results, "catalog": catalog}, indent=1,
                         ensure_ascii=False))  # fmt: skip
    else:
        print(json.dumps({"catalog": catalog}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
