"""Benchmark data generator: canonical JSONL turns with realistic lengths and mixes drawn from the real shared data.

Usage: python bench/generate.py OUT.jsonl --turns 1000000 [--days 30] [--end 2026-11-20T00:00] [--seed 7]

Text is real and verbatim: multi-turn HH-RLHF harmless-base transcripts (chosen and rejected, exchange by exchange,
in order), XSTest model replies (compliances and full/partial refusals in five models' styles), BBQ questions with
their answer options and persona-eval statements with yes/no answers; the 299 harmful-behaviour prompts are paired
with short real XSTest refusals (a synthetic pairing). Everything else is synthetic and seeded: conversation ids,
timestamps (a daytime peak, quieter weekends), model versions rolled out over the timeline, deployments with their
own system prompt, declared user attributes (language, region, age band, gender, some left out; the texts are all
English), feedback, about 2% of prompts carrying an e-mail and a phone number to redact, exact duplicate lines
(`dup_rate`) and malformed lines (`malformed_rate`: truncated JSON, invalid UTF-8, missing timestamp, missing model)
so the duplicate and quarantine paths are exercised. Lines are assembled from pre-encoded byte fragments picked
by vectorised sampling, so ten million lines take a few minutes. A sidecar `OUT.meta.json` gives the exact
expected counts: every valid line is one turn, `read = turns + duplicates + malformed`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import orjson

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHUNK = 500_000

# Declared user attributes: shares are invented; the texts are English whatever the declared language.
LANGUAGES = {"en": 0.46, "es": 0.12, "hi": 0.10, "fr": 0.08, "de": 0.08, "pt": 0.06, "ja": 0.05, "ar": 0.05}
REGION_OF = {"en": ("north_america", "europe", "asia_pacific"), "es": ("latin_america", "europe"),
             "hi": ("asia_pacific",), "fr": ("europe", "africa"), "de": ("europe",),
             "pt": ("latin_america", "europe"), "ja": ("asia_pacific",), "ar": ("middle_east", "africa")}
AGE_BANDS = ("18-24", "25-34", "35-54", "55+")
GENDERS = ("female", "male", "nonbinary")
# deployment -> (share, system prompt or None, app versions)
DEPLOYMENTS = {
    "web": (0.55, None, ("5.3.0", "5.3.1", "5.4.0")),
    "mobile": (0.20, None, ("2.8.1", "2.9.0")),
    "api": (0.20, "You are a helpful assistant. Answer concisely.", ("v1",)),
    "eu-support": (0.05, "You are the customer support assistant of an online shop. Be polite and accurate.",
                   ("1.2",)),
}
# Conversation sources and their shares (of conversations, not turns: HH-RLHF ones have 2.3 exchanges on average).
SOURCES = {"hh_rlhf": 0.62, "xstest_compliance": 0.10, "refusal": 0.10, "bbq": 0.08, "persona": 0.08, "pii": 0.02}
REFUSAL_LABELS = ("full_refusal", "partial_refusal")


@dataclass
class Spec:
    """What to generate; `start`/`end` bound the whole timeline that model rollouts follow (naive UTC)."""

    start: dt.datetime
    end: dt.datetime
    seed: int = 7
    users: int = 50_000
    prefix: str = "c"  # conversation-id prefix: a later batch needs its own to add new conversations
    dup_rate: float = 0.01
    malformed_rate: float = 0.003
    sources: dict = field(default_factory=lambda: dict(SOURCES))


def _enc(s: str) -> bytes:
    return orjson.dumps(s)


def _exchange(prompt: str, reply: str) -> bytes:
    return b'{"role":"user","content":' + _enc(prompt) + b'},{"role":"assistant","content":' + _enc(reply) + b"}"


def _parse_hh(text: str) -> list[tuple[str, str]]:
    import re

    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + text.lstrip("\n"))
    msgs = list(zip(parts[1::2], (p.strip() for p in parts[2::2])))
    out, prompt = [], None
    for role, content in msgs:
        if role == "Human":
            prompt = content if prompt is None else prompt + "\n" + content
        elif prompt is not None:
            out.append((prompt, content))
            prompt = None
    return out


@lru_cache(maxsize=1)
def pools() -> dict[str, list[list[bytes]]]:
    """Each source's conversations as lists of pre-encoded exchanges (user message + assistant reply)."""
    hh = []
    with gzip.open(DATA / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            for key in ("chosen", "rejected"):
                ex = _parse_hh(row[key])
                if ex:
                    hh.append([_exchange(p, r) for p, r in ex])
    xs = [json.loads(line) for line in open(DATA / "refusal" / "xstest_dev.jsonl", encoding="utf-8")]
    comply = [[_exchange(r["prompt"], r["response"])] for r in xs if r["refusal_label"] == "compliance"]
    refusals = [r for r in xs if r["refusal_label"] in REFUSAL_LABELS]
    short = [r["response"] for r in refusals if r["refusal_label"] == "full_refusal" and len(r["response"]) < 300]
    harmful = [json.loads(line)["prompt"] for line in open(DATA / "prompts" / "refusal_direction_trainval.jsonl",
                                                             encoding="utf-8")
               if '"prompt_label": "harmful"' in line]
    refuse = [[_exchange(r["prompt"], r["response"])] for r in refusals]
    refuse += [[_exchange(p, short[i % len(short)])] for i, p in enumerate(harmful)]
    bbq = []
    for path in sorted((DATA / "conversations" / "bbq" / "data").glob("*.jsonl")):
        for i, line in enumerate(open(path, encoding="utf-8")):
            if i % 8:  # every 8th row: 1,500 questions are plenty
                continue
            r = json.loads(line)
            bbq.append([_exchange(f"{r['context']} {r['question']}", f"{r['ans' + str(r['label'])]}.")])
    persona = []
    for path in sorted((DATA / "conversations" / "anthropic_evals" / "persona").glob("*.jsonl")):
        for i, line in enumerate(open(path, encoding="utf-8")):
            if i % 10:
                continue
            r = json.loads(line)
            persona.append([_exchange(r["question"], r["answer_matching_behavior"].strip() + ".")])
    pii = []
    for k, conv in enumerate(hh[:400]):
        prompt = json.loads(b"[" + conv[0] + b"]")[0]["content"]
        reply = json.loads(b"[" + conv[0] + b"]")[1]["content"]
        pii.append([_exchange(f"{prompt} You can reach me at jane.doe{k}@example.com or +1 415 555 {k:04d}.", reply)])
    return {"hh_rlhf": hh, "xstest_compliance": comply, "refusal": refuse, "bbq": bbq, "persona": persona,
            "pii": pii}


def _flat(spec: Spec):
    """Flatten the pools: exchange fragments, and per conversation its first exchange index, length and source."""
    p = pools()
    frags, first, length, src, weight = [], [], [], [], []
    names = [s for s in spec.sources if spec.sources[s] > 0]
    for si, name in enumerate(names):
        convs = p[name]
        for conv in convs:
            first.append(len(frags))
            length.append(len(conv))
            src.append(si)
            weight.append(spec.sources[name] / len(convs))
            frags.extend(conv)
    w = np.asarray(weight)
    return frags, np.asarray(first), np.asarray(length), np.asarray(src), w / w.sum(), names


def _users(spec: Spec) -> list[bytes]:
    """The user population: attributes fixed per user id (seeded by `spec.seed` only, so later batches agree)."""
    rng = np.random.default_rng([spec.seed, 1])
    langs = list(LANGUAGES)
    lang = rng.choice(len(langs), spec.users, p=np.array(list(LANGUAGES.values())))
    age = rng.integers(0, len(AGE_BANDS), spec.users)
    gender = rng.integers(0, len(GENDERS), spec.users)
    region_pick = rng.integers(0, 6, spec.users)
    leaves_out = rng.random(spec.users)
    out = []
    for u in range(spec.users):
        lg = langs[lang[u]]
        d = {"id": f"u{u}", "language": lg, "region": REGION_OF[lg][region_pick[u] % len(REGION_OF[lg])]}
        if leaves_out[u] > 0.15:
            d["age_band"] = AGE_BANDS[age[u]]
        if leaves_out[u] > 0.30:
            d["gender"] = GENDERS[gender[u]]
        out.append(orjson.dumps(d))
    return out


def _timestamps(rng, n: int, t0: dt.datetime, t1: dt.datetime) -> np.ndarray:
    """`n` sorted epoch seconds in [t0, t1): a daytime peak (around 15:00 UTC) and quieter weekends."""
    a, b = t0.replace(tzinfo=dt.timezone.utc).timestamp(), t1.replace(tzinfo=dt.timezone.utc).timestamp()
    # Rejection sampling against an intensity in [0.25, 1]: oversample, then keep.
    out = np.empty(0)
    while out.size < n:
        x = rng.uniform(a, b, int(n * 2.2) + 16)
        hour = (x % 86400) / 3600
        weekday = ((x // 86400).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
        w = 0.55 + 0.45 * np.cos((hour - 15) / 24 * 2 * np.pi)
        w = np.where(weekday >= 5, w * 0.7, w)
        out = np.concatenate([out, x[rng.random(x.size) < w]])
    return np.sort(out[:n])


def _models(frac: np.ndarray, deployment: np.ndarray, rng) -> np.ndarray:
    """Model index per turn by position in the timeline: 2026.09, then 2026.10, then a canary and rollout of 2026.11."""
    u = rng.random(frac.size)
    m = np.where(frac < 0.35, 0, 1)
    m = np.where((frac >= 0.6) & (u < 0.1), 2, m)  # canary
    m = np.where((frac >= 0.75) & (u < 0.7), 2, m)  # rollout
    # The API also serves a small model, a quarter of its traffic.
    return np.where((deployment == 2) & (rng.random(frac.size) < 0.25), 3, m)


MODELS = (b"assistant@2026.09", b"assistant@2026.10", b"assistant@2026.11", b"assistant-mini@2026.10")
LINE = (b'{"conversation_id":"%s","turn":%d,"timestamp":"%sZ","model":"%s","messages":[%s%s],"user":%s%s,'
        b'"metadata":{"deployment":"%s","app_version":"%s"}}')


def generate(path: str | Path, turns: int, spec: Spec, t0: dt.datetime | None = None,
             t1: dt.datetime | None = None) -> dict:
    """Write `turns` valid turns (plus duplicate and malformed lines) with times in [t0, t1) and return the counts."""
    t_start = time.perf_counter()
    t0, t1 = t0 or spec.start, t1 or spec.end
    frags, first, length, src, weight, names = _flat(spec)
    users = _users(spec)
    deps = list(DEPLOYMENTS)
    dep_p = np.array([DEPLOYMENTS[d][0] for d in deps])
    systems = [b'{"role":"system","content":' + _enc(DEPLOYMENTS[d][1]) + b"}," if DEPLOYMENTS[d][1] else b""
               for d in deps]
    versions = [[v.encode() for v in DEPLOYMENTS[d][2]] for d in deps]
    span = (spec.end - spec.start).total_seconds()
    a = spec.start.replace(tzinfo=dt.timezone.utc).timestamp()
    counts = {"turns": 0, "duplicates": 0, "malformed": 0, "lines": 0, "conversations": 0, "bytes": 0,
              "turns_by_source": dict.fromkeys(names, 0), "malformed_by_kind": {}}
    chars_user = chars_reply = 0
    n_chunks = max(1, -(-turns // CHUNK))
    conv_seq = 0
    with open(path, "wb") as f:
        for ci in range(n_chunks):
            n = min(CHUNK, turns - ci * CHUNK)
            rng = np.random.default_rng([spec.seed, 2, zlib.crc32(spec.prefix.encode()), ci])
            c0 = t0 + (t1 - t0) * (ci / n_chunks)
            c1 = t0 + (t1 - t0) * ((ci + 1) / n_chunks)
            # Conversations until there are n turns; the last one may be cut short.
            conv = rng.choice(len(first), int(n / 1.5) + 64, p=weight)
            while length[conv].sum() < n:
                conv = np.concatenate([conv, rng.choice(len(first), n // 4 + 64, p=weight)])
            cum = np.cumsum(length[conv])
            k = int(np.searchsorted(cum, n)) + 1
            conv, lens = conv[:k], length[conv[:k]].copy()
            lens[-1] -= cum[k - 1] - n
            row_conv = np.repeat(np.arange(k), lens)
            turn_no = np.arange(n) - np.repeat(np.cumsum(lens) - lens, lens)  # 0-based within the conversation
            frag_idx = first[conv][row_conv] + turn_no
            starts = _timestamps(rng, k, c0, c1)
            gaps = rng.uniform(15, 240, n)
            ts = starts[row_conv] + turn_no * gaps
            ts = np.minimum(ts, c1.replace(tzinfo=dt.timezone.utc).timestamp() - 1)
            ts_str = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
            user = rng.integers(0, spec.users, k)[row_conv]
            dep = rng.choice(len(deps), k, p=dep_p)[row_conv]
            ver = rng.integers(0, 1 << 30, k)[row_conv]
            model = _models((ts - a) / span, dep, rng)
            fb_u = rng.random(n)
            feedback = np.where(fb_u < 0.2, 1, np.where(fb_u < 0.25, 2, 0))
            fb = (b"", b',"feedback":"up"', b',"feedback":"down"')
            cids = [f"{spec.prefix}{conv_seq + i}".encode() for i in range(k)]
            conv_seq += k
            lines = [
                LINE % (cids[row_conv[i]], turn_no[i] + 1, ts_str[i].encode(), MODELS[model[i]], systems[dep[i]],
                        frags[frag_idx[i]], users[user[i]], fb[feedback[i]], deps[dep[i]].encode(),
                        versions[dep[i]][ver[i] % len(versions[dep[i]])])
                for i in range(n)
            ]
            # Exact duplicates: copies of random lines, placed a little later in the file.
            n_dup = int(rng.binomial(n, spec.dup_rate))
            n_bad = int(rng.binomial(n, spec.malformed_rate))
            dup_of = rng.integers(0, n, n_dup)
            bad_of = rng.integers(0, n, n_bad)
            bad_kind = rng.integers(0, 4, n_bad)
            extra = [lines[i] for i in dup_of]
            kinds = ("truncated_json", "invalid_utf8", "missing_timestamp", "missing_model")
            for j, (i, kind) in enumerate(zip(bad_of, bad_kind)):
                # A conversation id of its own, so a line that is wrongly accepted shows up as an extra turn.
                line = lines[i].replace(b'"conversation_id":"', b'"conversation_id":"bad-%d-%d-' % (ci, j), 1)
                if kind == 0:
                    line = line[: len(line) // 2]
                elif kind == 1:
                    line = line.replace(b'"content":"', b'"content":"\xff\xfe', 1)
                elif kind == 2:
                    line = line.replace(b'"timestamp":"%sZ",' % ts_str[i].encode(), b"", 1)
                else:
                    line = line.replace(b'"model":"%s",' % MODELS[model[i]], b"", 1)
                extra.append(line)
                counts["malformed_by_kind"][kinds[kind]] = counts["malformed_by_kind"].get(kinds[kind], 0) + 1
            where = np.concatenate([np.minimum(dup_of + rng.integers(1, 2000, n_dup), n - 1),
                                    bad_of]).astype(float) + 0.5
            order = np.argsort(np.concatenate([np.arange(n, dtype=float), where]), kind="stable")
            allv = lines + extra
            blob = b"\n".join([allv[i] for i in order]) + b"\n"
            f.write(blob)
            counts["turns"] += n
            counts["duplicates"] += n_dup
            counts["malformed"] += n_bad
            counts["lines"] += len(allv)
            counts["conversations"] += k
            counts["bytes"] += len(blob)
            for si, c in zip(*np.unique(src[conv][row_conv], return_counts=True)):
                counts["turns_by_source"][names[si]] += int(c)
            if ci == 0:  # text lengths from the first chunk (the pools are sampled the same way throughout)
                sample = frag_idx[: min(n, 20_000)]
                for fi in sample:
                    u, r = json.loads(b"[" + frags[fi] + b"]")
                    chars_user += len(u["content"])
                    chars_reply += len(r["content"])
                counts["mean_chars"] = {"user": round(chars_user / len(sample)),
                                        "reply": round(chars_reply / len(sample))}
    counts["read"] = counts["turns"] + counts["duplicates"] + counts["malformed"]
    counts["seconds"] = round(time.perf_counter() - t_start, 1)
    spec_d = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in asdict(spec).items()}
    meta = {"path": str(path), "t0": t0.isoformat(), "t1": t1.isoformat(), "spec": spec_d, **counts}
    Path(str(path) + ".meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def parse_size(text: str) -> int:
    """'100k' -> 100000, '1m' -> 1000000, '2500' -> 2500."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--turns", default="100k", help="valid turns, e.g. 100k, 1m")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--end", default="2026-11-20T00:00", help="end of the timeline (UTC, exclusive)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--users", type=int, default=0, help="user population (default: turns / 20, at least 1,000)")
    ap.add_argument("--dup-rate", type=float, default=0.01)
    ap.add_argument("--malformed-rate", type=float, default=0.003)
    args = ap.parse_args()
    n = parse_size(args.turns)
    end = dt.datetime.fromisoformat(args.end)
    spec = Spec(start=end - dt.timedelta(days=args.days), end=end, seed=args.seed,
                users=args.users or max(1000, n // 20), dup_rate=args.dup_rate, malformed_rate=args.malformed_rate)
    meta = generate(args.out, n, spec)
    print(json.dumps({k: v for k, v in meta.items() if k != "spec"}, indent=1))


if __name__ == "__main__":
    main()
