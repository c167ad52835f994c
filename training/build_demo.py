"""Build monitor/demo/demo_logs.jsonl.gz: real HH-RLHF exchanges, replies picked with the bundled classifiers.

Every demo conversation is one exchange: the first user message of an Anthropic HH-RLHF harmless-base test
transcript (MIT) and one real assistant reply. The bundled classifiers (`monitor.classify`, the same ones the
`score` job runs) label every candidate (prompt, reply) pair once at build time, which sorts the pairs into four
pools: benign prompt answered / refused, harmful prompt complied with / refused. A seeded synthetic deployment
then draws, for each conversation, a prompt class and an outcome with probabilities that depend on the model
version, the topic and the user segment, and takes a pair from the matching pool. That is how the baseline
(over-refusal ~10%, under-refusal ~12%, as measured by the monitor's own classifiers) and the incidents are
planted:

1. `assistant@2026.11` complies with harmful requests about crime and violence (harm categories in `INCIDENT_CATEGORIES`)
   with p=0.65 instead of 0.12: the under-refusal rate of its traffic triples.
2. `assistant@2026.11` refuses benign requests of users whose declared language is `hi` with p=0.30 instead of
   0.10: over-refusal triples for one language.

2026.11 runs as a small canary (days 19-21, 10% of conversations of users outside Asia-Pacific) and is rolled out
on day 22, the first window in which either incident reaches enough traffic to be seen.

HH-RLHF has few refusals of clearly harmful or clearly benign first messages, so some pairs are synthetic: a
real prompt with a real, generic refusal (`GENERIC_REFUSALS`, verbatim replies from other HH-RLHF transcripts).
Each record's `metadata.source` names the rows its prompt and its reply came from and whether the pairing is the
original one.

Usage: python training/build_demo.py [--source PATH] [--out PATH] [--seed N]
The output is byte-for-byte reproducible for a given source file, classifier version and seed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.demo import (ANCHOR_LAST_DAY, DAYS, DEMO_FILE, INCIDENT_CATEGORIES, NEW_MODEL, OLD_MODEL,  # noqa: E402
                          ROLLOUT_DAY, CANARY_FIRST_DAY, parse_transcript)

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
DEFAULT_OUT = REPO / "monitor" / "demo" / DEMO_FILE
SOURCE_NAME = "anthropic/hh-rlhf harmless-base/test.jsonl.gz"

N_CONVERSATIONS = 20_000
P_HARMFUL = 0.40  # share of conversations drawn from the harmful-prompt pools (day to day it varies a little)
P_TOPIC = 0.50  # share of harmful conversations about crime and violence (harm categories INCIDENT_CATEGORIES)
UNDER_BASE = 0.12  # P(comply | harmful prompt)
UNDER_NEW_TOPIC = 0.65  # incident 1: 2026.11 on crime and violence requests
OVER_BASE = 0.10  # P(refuse | benign prompt)
OVER_NEW_HI = 0.30  # incident 2: 2026.11 for users with declared language hi
CANARY_SHARE = 0.10  # of conversations of users outside asia_pacific, days CANARY_FIRST_DAY..ROLLOUT_DAY-1
ROLLOUT_SHARE = {"web": 0.97, "api": 0.75}  # some API clients pin the old version
SYNTHETIC_PER_POOL = 400  # at most this many synthetic (prompt, generic refusal) pairs per pool

# Short refusals that name no topic, copied verbatim from HH-RLHF replies (the build checks each is there and
# records where). They are paired with other real prompts where HH-RLHF has too few real refusals.
GENERIC_REFUSALS = (
    "I'm afraid I cannot help you with that.",
    "Sorry, I can’t do that.",
    "I’m sorry, I don’t know how to help you with this.",
    "I'm sorry, I can't help you with this.",
    "I’m very sorry but I am unable to help you in this matter.",
    "I can't advise on that.",
    "I’m sorry, I can’t offer any advice on that.  Please let me know if you have any questions I can answer.",
    "I’m sorry, I can’t answer that.",
    "I’m sorry, I am not able to assist you in that way.",
    "I’m sorry, I’m not going to answer this.",
    "Oh. I’m sorry, I can’t answer that.",
)
# Synthetic over-refusals pair a refusal with a prompt that looks plainly benign (low harm score), so that the
# demo's over-refusals read as such.
BENIGN_SYNTHETIC_MAX_SCORE = 0.15

LANGUAGES = [("en", 0.35), ("hi", 0.35), ("es", 0.10), ("de", 0.10), ("fr", 0.10)]
REGIONS = {  # declared language -> (region, weight)
    "en": [("north_america", 0.5), ("europe", 0.25), ("asia_pacific", 0.15), ("africa", 0.1)],
    "de": [("europe", 1.0)],
    "es": [("latin_america", 0.6), ("europe", 0.3), ("north_america", 0.1)],
    "fr": [("europe", 0.7), ("africa", 0.2), ("north_america", 0.1)],
    "hi": [("asia_pacific", 0.9), ("europe", 0.05), ("north_america", 0.05)],
}
AGE_BANDS = [("18-24", 0.22), ("25-34", 0.3), ("35-44", 0.2), ("45-54", 0.14), ("55+", 0.14)]
GENDERS = [("female", 0.44), ("male", 0.44), ("nonbinary", 0.04), (None, 0.08)]  # None: not declared
APP_VERSIONS = {"web": ["5.3.0", "5.3.1"], "api": [None]}
# P(thumbs down | outcome) among rated replies (invented): a refused benign request annoys people most.
DOWN_RATE = {("benign", False): 0.12, ("benign", True): 0.60, ("harmful", False): 0.20, ("harmful", True): 0.35}
HOUR_WEIGHTS = [1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.7, 1.2, 1.8, 2.2, 2.4, 2.4, 2.3, 2.4, 2.5, 2.5, 2.4, 2.2, 2.0, 2.0,
                2.1, 2.0, 1.7, 1.3]


@dataclass(frozen=True)
class Pair:
    """One (prompt, reply) exchange with where each text came from and the classifiers' labels."""

    prompt: str
    reply: str
    prompt_row: int
    reply_row: int
    reply_ending: str  # chosen | rejected: the HH-RLHF ending the reply was taken from
    synthetic: bool
    harm: str | None = None
    category: str | None = None
    harm_score: float | None = None
    refused: bool | None = None


def first_exchanges(rows: list[dict]) -> list[Pair]:
    """Every distinct (first user message, first assistant reply) of the transcripts, in source order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for i, row in enumerate(rows):
        for ending in ("chosen", "rejected"):
            msgs = parse_transcript(row[ending])
            if len(msgs) < 2 or msgs[0]["role"] != "user" or msgs[1]["role"] != "assistant":
                continue
            prompt, reply = msgs[0]["content"], msgs[1]["content"]
            if not prompt or not reply or (prompt, reply) in seen:
                continue
            seen.add((prompt, reply))
            out.append(Pair(prompt, reply, i, i, ending, False))
    return out


def label(clf, pairs: list[Pair]) -> list[Pair]:
    """The pairs with the labels the monitor's `score` job will give them (unlabelled pairs dropped)."""
    ref = clf.score_refusal([p.reply for p in pairs], prompts=[p.prompt for p in pairs])
    harm = clf.score_harm([p.prompt for p in pairs])
    out = []
    for p, rl, hl, hc, hs in zip(pairs, ref.labels, harm.labels, harm.categories, harm.scores):
        if rl is None or hl is None:
            continue
        out.append(Pair(p.prompt, p.reply, p.prompt_row, p.reply_row, p.reply_ending, p.synthetic, hl, hc,
                        round(float(hs), 6), rl != "compliance"))
    return out


def generic_refusals(pairs: list[Pair]) -> list[Pair]:
    """The first source pair of each `GENERIC_REFUSALS` text (so each synthetic reply can be traced)."""
    found = {}
    for p in pairs:
        if p.reply in GENERIC_REFUSALS and p.reply not in found:
            found[p.reply] = p
    missing = [t for t in GENERIC_REFUSALS if t not in found]
    if missing:
        raise SystemExit(f"generic refusals not found verbatim in the source: {missing}")
    return [found[t] for t in GENERIC_REFUSALS]


def synthetic_pairs(rng: random.Random, prompts: list[Pair], refusals: list[Pair]) -> list[Pair]:
    """Each prompt with one generic refusal drawn at random (labels still to be computed)."""
    out = []
    for p in prompts:
        r = rng.choice(refusals)
        out.append(Pair(p.prompt, r.reply, p.prompt_row, r.reply_row, r.reply_ending, True))
    return out


def build_pools(rng: random.Random, rows: list[dict], clf) -> tuple[dict[str, list[Pair]], Counter]:
    """Pools of labelled pairs: benign_answered, benign_refused, harmful_{topic,other}_{complied,refused}."""
    natural = label(clf, first_exchanges(rows))
    refusals = generic_refusals(first_exchanges(rows))
    natural_set = {(p.prompt, p.reply) for p in natural}
    prompts: dict[str, Pair] = {}
    for p in natural:
        prompts.setdefault(p.prompt, p)
    plain_benign = [p for p in prompts.values() if p.harm == "benign" and p.harm_score <= BENIGN_SYNTHETIC_MAX_SCORE]
    harmful = [p for p in prompts.values() if p.harm == "harmful"]
    chosen_benign = rng.sample(plain_benign, min(SYNTHETIC_PER_POOL, len(plain_benign)))
    chosen_harmful = rng.sample(harmful, min(SYNTHETIC_PER_POOL, len(harmful)))
    synth = label(clf, synthetic_pairs(rng, chosen_benign + chosen_harmful, refusals))
    synth = [p for p in synth if p.refused and (p.prompt, p.reply) not in natural_set]
    pools: dict[str, list[Pair]] = {k: [] for k in ("benign_answered", "benign_refused", "harmful_topic_complied",
                                                    "harmful_topic_refused", "harmful_other_complied",
                                                    "harmful_other_refused")}
    for p in natural + synth:
        if p.harm == "benign":
            pools["benign_refused" if p.refused else "benign_answered"].append(p)
        else:
            topic = "topic" if p.category in INCIDENT_CATEGORIES else "other"
            pools[f"harmful_{topic}_{'refused' if p.refused else 'complied'}"].append(p)
    stats = Counter({f"pool_{k}": len(v) for k, v in pools.items()})
    stats.update({f"pool_{k}_synthetic": sum(p.synthetic for p in v) for k, v in pools.items()})
    return pools, stats


def pick(rng: random.Random, options: list[tuple]):
    values, weights = zip(*options)
    return rng.choices(values, weights=weights, k=1)[0]


def make_users(rng: random.Random, n: int) -> list[dict]:
    users = []
    for i in range(n):
        lang = pick(rng, LANGUAGES)
        deployment = "web" if rng.random() < 0.68 else "api"
        user = {"id": f"demo-u{i:05d}", "language": lang, "region": pick(rng, REGIONS[lang])}
        # API integrations pass fewer user attributes than the web app's signed-in users.
        if deployment == "web" or rng.random() < 0.3:
            user["age_band"] = pick(rng, AGE_BANDS)
            gender = pick(rng, GENDERS)
            if gender:
                user["gender"] = gender
        users.append({"user": user, "deployment": deployment, "activity": rng.lognormvariate(0, 0.6)})
    return users


def version_for(rng: random.Random, day: int, deployment: str, region: str) -> str:
    if day < CANARY_FIRST_DAY:
        return OLD_MODEL
    if day < ROLLOUT_DAY:  # the canary runs outside Asia-Pacific only
        return NEW_MODEL if region != "asia_pacific" and rng.random() < CANARY_SHARE else OLD_MODEL
    return NEW_MODEL if rng.random() < ROLLOUT_SHARE[deployment] else OLD_MODEL


def outcome_probability(model: str, harmful: bool, topic: bool, language: str) -> float:
    """P(comply) for a harmful prompt, P(refuse) for a benign one: the baseline and the two incidents."""
    if harmful:
        return UNDER_NEW_TOPIC if model == NEW_MODEL and topic else UNDER_BASE
    return OVER_NEW_HI if model == NEW_MODEL and language == "hi" else OVER_BASE


def day_weights() -> list[float]:
    """Relative volume per day: slow growth, two slightly quieter days in every seven."""
    return [(1 + 0.01 * d) * (0.9 if d % 7 in (5, 6) else 1.0) for d in range(DAYS)]


def build(source: Path, seed: int, clf=None) -> tuple[bytes, dict]:
    if clf is None:
        from monitor.classify import load_classifiers

        clf = load_classifiers()
    rng = random.Random(seed)
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    pools, stats = build_pools(rng, rows, clf)
    users = make_users(rng, 6000)
    activity = [u["activity"] for u in users]
    first_day = ANCHOR_LAST_DAY - dt.timedelta(days=DAYS - 1)
    days = sorted(rng.choices(range(1, DAYS + 1), weights=day_weights(), k=N_CONVERSATIONS))
    # The prompt mix drifts a little from day to day, as real traffic does.
    harmful_share = {d: min(0.5, max(0.05, rng.gauss(P_HARMFUL, 0.02))) for d in range(1, DAYS + 1)}
    out: list[tuple[str, str, dict]] = []
    for i, day in enumerate(days):
        u = rng.choices(users, weights=activity, k=1)[0]
        user, deployment = u["user"], u["deployment"]
        model = version_for(rng, day, deployment, user["region"])
        harmful = rng.random() < harmful_share[day]
        topic = harmful and rng.random() < P_TOPIC
        flip = rng.random() < outcome_probability(model, harmful, topic, user["language"])
        if harmful:
            pool = f"harmful_{'topic' if topic else 'other'}_{'complied' if flip else 'refused'}"
        else:
            pool = "benign_refused" if flip else "benign_answered"
        p = rng.choice(pools[pool])
        start = dt.datetime.combine(first_day + dt.timedelta(days=day - 1), dt.time()) + dt.timedelta(
            hours=rng.choices(range(24), weights=HOUR_WEIGHTS, k=1)[0], minutes=rng.randrange(60),
            seconds=rng.randrange(60))
        reply_ts = start + dt.timedelta(seconds=rng.randint(4, 40))
        rec = {
            "conversation_id": f"demo-c{i:05d}",
            "timestamp": start.isoformat() + "Z",
            "model": model,
            "messages": [{"role": "user", "content": p.prompt},
                         {"role": "assistant", "content": p.reply, "timestamp": reply_ts.isoformat() + "Z"}],
            "user": user,
            "metadata": {"deployment": deployment,
                         "source": {"dataset": SOURCE_NAME, "prompt_row": p.prompt_row, "reply_row": p.reply_row,
                                    "reply_ending": p.reply_ending,
                                    "pairing": "synthetic" if p.synthetic else "original"}},
        }
        app = rng.choice(APP_VERSIONS[deployment])
        if app:
            rec["metadata"]["app_version"] = app
        # Synthetic feedback: a third of conversations rate the reply; refusals of benign requests get most downs.
        if rng.random() < 0.33:
            down = rng.random() < DOWN_RATE[("harmful" if harmful else "benign", p.refused)]
            rec["feedback"] = "down" if down else "up"
        out.append((rec["timestamp"], rec["conversation_id"], rec))
        new = "new" if model == NEW_MODEL else "old"
        stats[f"n_{new}_{pool}"] += 1
        stats["records"] += 1
        stats["synthetic_pairing"] += p.synthetic
    out.sort(key=lambda x: (x[0], x[1]))
    buf = io.BytesIO()
    # mtime=0 keeps the gzip bytes reproducible.
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        for _, _, rec in out:
            gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    stats["classifier_versions"] = f"{clf.refusal_version} / {clf.harm_version}"
    return buf.getvalue(), dict(stats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=20261115)
    args = ap.parse_args()
    data, stats = build(args.source, args.seed)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB)")
    for k in sorted(stats):
        print(f"  {k:<44} {stats[k]:>6}")


if __name__ == "__main__":
    main()
