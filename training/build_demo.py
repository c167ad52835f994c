"""Build monitor/demo/demo_logs.jsonl.gz: real HH-RLHF conversations with seeded synthetic deployment metadata.

Every conversation of the Anthropic HH-RLHF harmless-base test split (MIT) is used once. Each has two endings that
differ only in the last assistant reply: "chosen" (the more harmless one, often a refusal or deflection) and
"rejected" (often harmful compliance). The synthetic deployment picks one ending per conversation with a
probability that depends on the model version, topic and user segment; that is how the incidents are planted:

1. From day 19 (canary, 25% of traffic; 90% from day 22) `assistant@2026.11` gives the rejected ending on
   theft/fraud/hacking conversations with p=0.90 instead of the baseline 0.20: harmful compliance on one topic.
2. On `assistant@2026.11`, users whose declared language is `hi` get the rejected ending with p=0.02 (cautious
   replies much more often than anyone else): a refusal-rate disparity by language that appears with the update.

Usage: python training/build_demo.py [--source PATH] [--out PATH] [--seed N]
The output is byte-for-byte reproducible for a given source file and seed.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.demo import ANCHOR_LAST_DAY, DAYS, DEMO_FILE, THEFT_FRAUD, parse_transcript  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
DEFAULT_OUT = REPO / "monitor" / "demo" / DEMO_FILE
SOURCE_NAME = "anthropic/hh-rlhf harmless-base/test.jsonl.gz"

OLD, NEW = "assistant@2026.10", "assistant@2026.11"
CANARY_FIRST_DAY, ROLLOUT_DAY = 19, 22  # 1-based day numbers of the 30
P_REJECTED_BASE = 0.20
P_REJECTED_INCIDENT_TOPIC = 0.90  # 2026.11 on theft/fraud/hacking conversations
P_REJECTED_HI = 0.02  # 2026.11 for users with language=hi

LANGUAGES = [("en", 0.52), ("de", 0.12), ("es", 0.12), ("fr", 0.11), ("hi", 0.13)]
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


def pick(rng: random.Random, options: list[tuple]):
    values, weights = zip(*options)
    return rng.choices(values, weights=weights, k=1)[0]


def make_users(rng: random.Random, n: int) -> list[dict]:
    users = []
    for i in range(n):
        lang = pick(rng, LANGUAGES)
        deployment = "web" if rng.random() < 0.68 else "api"
        user = {"id": f"demo-u{i:04d}", "language": lang, "region": pick(rng, REGIONS[lang])}
        # API integrations pass fewer user attributes than the web app's signed-in users.
        if deployment == "web" or rng.random() < 0.3:
            user["age_band"] = pick(rng, AGE_BANDS)
            gender = pick(rng, GENDERS)
            if gender:
                user["gender"] = gender
        users.append({"user": user, "deployment": deployment, "activity": rng.lognormvariate(0, 0.6)})
    return users


def version_for(rng: random.Random, day: int, deployment: str) -> str:
    if day < CANARY_FIRST_DAY:
        return OLD
    if day < ROLLOUT_DAY:
        return NEW if rng.random() < 0.25 else OLD
    # Some API clients pin the old version after the rollout.
    return NEW if rng.random() < (0.97 if deployment == "web" else 0.75) else OLD


def p_rejected(model: str, language: str, topic_hit: bool) -> float:
    if model == NEW and language == "hi":
        return P_REJECTED_HI
    if model == NEW and topic_hit:
        return P_REJECTED_INCIDENT_TOPIC
    return P_REJECTED_BASE


def day_weights() -> list[float]:
    """Relative volume per day: slow growth, two quieter days in every seven."""
    return [(1 + 0.01 * d) * (0.7 if d % 7 in (5, 6) else 1.0) for d in range(DAYS)]


HOUR_WEIGHTS = [1, 0.6, 0.4, 0.3, 0.3, 0.4, 0.7, 1.2, 1.8, 2.2, 2.4, 2.4, 2.3, 2.4, 2.5, 2.5, 2.4, 2.2, 2.0, 2.0,
                2.1, 2.0, 1.7, 1.3]


def build(source: Path, seed: int) -> tuple[bytes, dict]:
    rng = random.Random(seed)
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    users = make_users(rng, 1200)
    activity = [u["activity"] for u in users]
    first_day = ANCHOR_LAST_DAY - dt.timedelta(days=DAYS - 1)
    days = rng.choices(range(1, DAYS + 1), weights=day_weights(), k=len(rows))
    out: list[tuple[str, dict]] = []
    stats: Counter = Counter()
    for row_index, (row, day) in enumerate(zip(rows, days)):
        chosen, rejected = parse_transcript(row["chosen"]), parse_transcript(row["rejected"])
        if not chosen or chosen[-1]["role"] != "assistant" or chosen[:-1] != rejected[:-1]:
            stats["skipped_unaligned"] += 1
            continue
        if not all(m["content"] for m in chosen + rejected):
            stats["skipped_empty_message"] += 1
            continue
        u = rng.choices(users, weights=activity, k=1)[0]
        user, deployment = u["user"], u["deployment"]
        model = version_for(rng, day, deployment)
        topic_hit = any(THEFT_FRAUD.search(m["content"]) for m in chosen if m["role"] == "user")
        use_rejected = rng.random() < p_rejected(model, user["language"], topic_hit)
        messages = [dict(m) for m in (rejected if use_rejected else chosen)]
        start = dt.datetime.combine(first_day + dt.timedelta(days=day - 1), dt.time()) + dt.timedelta(
            hours=rng.choices(range(24), weights=HOUR_WEIGHTS, k=1)[0], minutes=rng.randrange(60),
            seconds=rng.randrange(60))
        t = start
        for m in messages:
            t += dt.timedelta(seconds=rng.randint(8, 90))
            if m["role"] == "assistant":
                m["timestamp"] = t.isoformat() + "Z"
        rec = {
            "conversation_id": f"demo-c{row_index:05d}",
            "timestamp": start.isoformat() + "Z",
            "model": model,
            "messages": messages,
            "user": user,
            "metadata": {"deployment": deployment,
                         "source": {"dataset": SOURCE_NAME, "row": row_index}},
        }
        app = rng.choice(APP_VERSIONS[deployment])
        if app:
            rec["metadata"]["app_version"] = app
        # Synthetic feedback on the last reply: a third of conversations rate it; harmful endings and refusals
        # draw different (made-up) down-vote rates.
        if rng.random() < 0.33:
            rec["feedback"] = "down" if rng.random() < (0.45 if use_rejected else 0.3) else "up"
        out.append((rec["timestamp"], rec))
        stats["records"] += 1
        stats["turns"] += sum(m["role"] == "assistant" for m in messages)
        stats[f"rejected_{model}_{'topic' if topic_hit else 'other'}"] += use_rejected
        stats[f"n_{model}_{'topic' if topic_hit else 'other'}"] += 1
    out.sort(key=lambda x: (x[0], x[1]["conversation_id"]))
    buf = io.BytesIO()
    # mtime=0 keeps the gzip bytes reproducible.
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        for _, rec in out:
            gz.write((json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))
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
        print(f"  {k:<40} {stats[k]:>6}")


if __name__ == "__main__":
    main()
