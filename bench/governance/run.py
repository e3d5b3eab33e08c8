"""Benchmark the PII detector: precision and recall per finding type on the generated corpus
(bench/governance/corpus.py), look-alikes left untouched, and the time to scan and redact a
4 KB prompt. Results: bench/results/governance.md and governance.json, with the machine noted.

Why a benchmark and not a test: rates and timings are measurements that move with the corpus
and the machine; the unit tests (tests/gateway/unit/test_pii*.py) pin behaviour, this records numbers.

Scoring. A positive sample counts as found when a finding of its type covers the whole
labelled span (a partial cover is a miss: part of the value would leak). Precision of a type:
findings of that type that overlap a labelled span of that type, over all findings of that
type on all samples (positives of every type and hard negatives). A hard negative is untouched
when the scan finds nothing at all in its text. Non-HIPAA types are scored with hipaa=False,
the HIPAA types (mrn, icd10, dosage) with hipaa=True; negatives are reported for both.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/governance/*.py: the script's own folder is first on sys.path
import obfuscation
from corpus import LOCALES, SEED, Sample, negatives, positives

from llmplatform.gateway import governance, pii
from llmplatform_testing.machine import machine, page_header, write_results

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
HIPAA_TYPES = {"mrn", "icd10", "dosage"}
RECALL_TARGET = 0.98
UNTOUCHED_TARGET = 0.95
MEDIAN_TARGET_MS = 0.2


def quality(pos: list[Sample], neg: list[Sample]) -> dict[str, Any]:
    found: dict[str, Counter[str]] = defaultdict(Counter)  # type -> tp / fn / partial
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    for s in pos:
        hipaa = s.type in HIPAA_TYPES
        fs = pii.scan(s.text, hipaa=hipaa)
        hit = any(f.type == s.type and f.start <= s.start and f.end >= s.end for f in fs)
        part = not hit and any(f.type == s.type and f.start < s.end and f.end > s.start for f in fs)
        key = "tp" if hit else "partial" if part else "fn"
        found[str(s.type)][key] += 1
        by_group[f"{s.type} {s.group}"][key] += 1
        if not hit and len(misses[str(s.type)]) < 6:
            misses[str(s.type)].append(s.text[s.start : s.end])
        for f in fs:
            predicted[f.type] += 1
            if f.type == s.type and f.start < s.end and f.end > s.start:
                correct[f.type] += 1
    untouched: dict[str, Counter[str]] = {"hipaa=False": Counter(), "hipaa=True": Counter()}
    neg_groups: dict[str, Counter[str]] = defaultdict(Counter)
    fps: dict[str, list[str]] = defaultdict(list)
    for s in neg:
        for hipaa in (False, True):
            fs = pii.scan(s.text, hipaa=hipaa)
            mode = f"hipaa={hipaa}"
            untouched[mode]["ok" if not fs else "touched"] += 1
            neg_groups[f"{s.group} ({mode})"]["ok" if not fs else "touched"] += 1
            for f in fs:
                if (f.type in HIPAA_TYPES) == hipaa:
                    predicted[f.type] += 1
                if len(fps[s.group]) < 4:
                    fps[s.group].append(f"{f.type}: {s.text[f.start : f.end]}")
    types = {}
    for t in pii.TYPES:
        c = found[t]
        n = c["tp"] + c["fn"] + c["partial"]
        types[t] = {
            "samples": n,
            "recall": round(c["tp"] / n, 4) if n else None,
            "partial": c["partial"],
            "precision": round(correct[t] / predicted[t], 4) if predicted[t] else None,
            "predicted": predicted[t],
            "misses": misses[t],
        }
    groups = {g: round(c["tp"] / sum(c.values()), 4) for g, c in sorted(by_group.items())}
    return {
        "types": types,
        "recall_by_group": groups,
        "group_sizes": {g: sum(c.values()) for g, c in sorted(by_group.items())},
        "untouched": {m: round(c["ok"] / sum(c.values()), 4) for m, c in untouched.items()},
        "untouched_by_group": {g: round(c["ok"] / sum(c.values()), 4) for g, c in sorted(neg_groups.items())},
        "false_positive_examples": dict(fps),
    }


def obfuscated(pos: list[Sample], per_class: int, lookalikes: int) -> dict[str, Any]:
    """Recall per evasion technique (bench/governance/obfuscation.py) and normalisation
    look-alikes left untouched."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    misses: dict[str, list[str]] = defaultdict(list)
    for case in obfuscation.cases(pos, lambda t, h: pii.scan(t, hipaa=h), per_class):
        if case.sample is not None:
            s = case.sample
            fs = pii.scan(s.text, hipaa=s.type in HIPAA_TYPES)
            hit = any(f.type == s.type and f.start <= s.start and f.end >= s.end for f in fs)
            example = s.text[s.start : s.end]
        else:
            assert case.body is not None
            scanned = governance.scan(case.body, "chat", False)
            hit = bool(scanned.findings) and obfuscation.body_redacted(case, scanned.redacted()[0])
            example = " | ".join(piece for _, piece in case.pieces)
        found[case.cls]["tp" if hit else "fn"] += 1
        if not hit and len(misses[case.cls]) < 4:
            misses[case.cls].append(example.encode("unicode_escape").decode())
    classes = {
        c: {"samples": sum(v.values()), "recall": round(v["tp"] / sum(v.values()), 4), "misses": misses[c]}
        for c, v in found.items()
    }
    untouched: dict[str, Counter[str]] = defaultdict(Counter)
    for s in obfuscation.lookalikes(lookalikes):
        for hipaa in (False, True):
            untouched[f"hipaa={hipaa}"]["ok" if not pii.scan(s.text, hipaa=hipaa) else "touched"] += 1
            untouched[f"{s.group} (hipaa={hipaa})"][
                "ok" if not pii.scan(s.text, hipaa=hipaa) else "touched"
            ] += 1
    return {
        "classes": classes,
        "lookalikes": lookalikes,
        "lookalikes_untouched": {
            g: round(c["ok"] / sum(c.values()), 4) for g, c in sorted(untouched.items())
        },
    }


ICD10_SETTINGS = {
    "context": "bare needs a context word",
    "unless_non_medical": "bare unless non-medical (default)",
    "always": "bare accepted everywhere",
}


def icd10_bare_codes(pos: list[Sample], neg: list[Sample]) -> dict[str, dict[str, float]]:
    """ICD-10 recall and look-alikes untouched (hipaa=True) for each setting of
    pii.medical.ICD10_BARE (how bare categories without a coding word are treated)."""
    out = {}
    icd = [s for s in pos if s.type == "icd10"]
    default = pii.medical.ICD10_BARE
    try:
        for setting, label in ICD10_SETTINGS.items():
            pii.medical.ICD10_BARE = setting
            hit = sum(
                any(
                    f.type == "icd10" and f.start <= s.start and f.end >= s.end
                    for f in pii.scan(s.text, hipaa=True)
                )
                for s in icd
            )
            clean = sum(not pii.scan(s.text, hipaa=True) for s in neg)
            lookalikes = [s for s in neg if s.group == "model or part name"]
            clean_models = sum(not pii.scan(s.text, hipaa=True) for s in lookalikes)
            out[label] = {
                "icd10_recall": round(hit / len(icd), 4),
                "negatives_untouched": round(clean / len(neg), 4),
                "model_names_untouched": round(clean_models / len(lookalikes), 4),
            }
    finally:
        pii.medical.ICD10_BARE = default
    return out


def prompt(kind: str) -> str:
    """A 4 KB prompt (4,096 characters): prose with a few findings and everyday numbers
    ("typical"), the same prose without findings or digits ("clean"), or a support log where
    every line carries a date, an order number, a price and a contact ("dense")."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(SEED)
    pieces: list[str] = []
    extras = [
        "Reach me at jane.doe@example.com or (415) 555-0134.",
        "The refund goes to card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00.",
        "Logs show 10.20.30.40 and 2001:db8::7 hitting the API with key "
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z.",
        "Ticket 48213 was opened on 2024-03-05 at 14:20; it cost $1,299.00 for 3 seats, version 2.31.0.",
    ]
    i = 0
    while sum(len(p) + 1 for p in pieces) < 4200:
        if kind == "clean":
            pieces.append(fake.paragraph(nb_sentences=4))
        elif kind == "typical":
            pieces.append(fake.paragraph(nb_sentences=4))
            if i < len(extras):
                pieces.append(extras[i])
        else:
            pieces.append(
                f"{fake.date()} order {fake.random_int(10000, 99999)} ${fake.pyfloat(3, 2, True)} "
                f"from {fake.email()} / {fake.phone_number()}: {fake.sentence()}"
            )
        i += 1
    return " ".join(pieces)[:4096]


def obfuscate_prompt(text: str) -> str:
    """The prompt with half of its digits written as fullwidth digits and a zero-width space
    after every `@`: the slow path, where the normalised view must be built and scanned too."""
    rng = random.Random(SEED + 3)
    out = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() and rng.random() < 0.5 else c for c in text)
    return out.replace("@", "@\u200b")


def request_timing(text: str, runs: int, messages: int = 2) -> dict[str, float]:
    """The gateway's whole request scan (governance.scan: every string of the body, boundaries
    between them) of a chat request carrying the prompt cut at spaces into `messages` messages
    of about the same length, alternating user and assistant."""
    words = text.split(" ")
    per = -(-len(words) // messages)
    chunks = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
    body = {
        "model": "m",
        "messages": [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(chunks)],
        "max_tokens": 100,
    }
    for _ in range(200):
        governance.scan(body, "chat", False)
    ns = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        governance.scan(body, "chat", False)
        ns.append(time.perf_counter_ns() - t0)
    return {
        "median_ms": round(statistics.median(ns) / 1e6, 4),
        "p99_ms": round(sorted(ns)[int(runs * 0.99)] / 1e6, 4),
    }


def timing(text: str, runs: int, hipaa: bool) -> dict[str, float]:
    for _ in range(200):
        pii.redact(text, pii.scan(text, hipaa=hipaa))
    ns = []
    raw = []  # the detectors on the text as it is, interleaved: the cost of the view under the same load
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        pii.redact(text, pii.scan(text, hipaa=hipaa))
        t1 = time.perf_counter_ns()
        pii.redact(text, pii.scan_raw(text, hipaa))
        raw.append(time.perf_counter_ns() - t1)
        ns.append(t1 - t0)
    ns.sort()
    cls = []
    found = pii.scan(text, hipaa=hipaa)
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        pii.classify(text, found)
        cls.append(time.perf_counter_ns() - t0)
    return {
        "findings": len(found),
        "median_ms": round(statistics.median(ns) / 1e6, 4),
        "p90_ms": round(ns[int(len(ns) * 0.9)] / 1e6, 4),
        "p99_ms": round(ns[int(len(ns) * 0.99)] / 1e6, 4),
        "classify_median_ms": round(statistics.median(cls) / 1e6, 4),
        "raw_median_ms": round(statistics.median(raw) / 1e6, 4),
    }


def stream_timing(text: str, chunk: int, runs: int) -> dict[str, float]:
    per = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        r = pii.StreamRedactor()
        for i in range(0, len(text), chunk):
            r.feed(text[i : i + chunk])
        r.finish()
        per.append(time.perf_counter_ns() - t0)
    return {"chunk_chars": chunk, "median_ms_per_4kb": round(statistics.median(per) / 1e6, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-type", type=int, default=700, help="positive samples per finding type")
    ap.add_argument("--negatives", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=5000, help="timed runs per prompt")
    ap.add_argument("--per-class", type=int, default=700, help="obfuscated samples per evasion technique")
    ap.add_argument("--lookalikes", type=int, default=1000, help="normalisation look-alikes")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    host = machine()
    t0 = time.time()
    pos, neg = positives(args.per_type), negatives(args.negatives)
    q = quality(pos, neg)
    q["icd10_bare_codes"] = icd10_bare_codes(pos, neg)
    q["obfuscation"] = obfuscated(pos, args.per_class, args.lookalikes)
    quality_s = time.time() - t0
    prompts = {k: prompt(k) for k in ("typical", "clean", "dense")}
    prompts["obfuscated"] = obfuscate_prompt(prompts["typical"])
    speed = {
        f"{k} hipaa={h}": timing(text, args.runs, h) for k, text in prompts.items() for h in (False, True)
    }
    stream = stream_timing(prompts["typical"], 4, max(50, args.runs // 50))
    request = {k: request_timing(prompts[k], max(500, args.runs // 5)) for k in ("typical", "obfuscated")}
    request["typical as 100 messages"] = request_timing(prompts["typical"], max(200, args.runs // 25), 100)
    host["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": host,
        "corpus": {
            "seed": SEED,
            "locales": LOCALES,
            "positives": len(pos),
            "negatives": len(neg),
            "negative_groups": len({s.group for s in neg}),
            "quality_seconds": round(quality_s, 1),
        },
        "quality": q,
        "speed": speed,
        "stream": stream,
        "request_scan": request,
    }
    write_results(args.out, "governance", result, render(result))


def render(r: dict[str, Any]) -> str:
    m, c, q = r["machine"], r["corpus"], r["quality"]
    lines = page_header(
        "Governance benchmark: PII detection quality and speed",
        f"{r['date']} with bench/governance/run.py (`make bench-governance`)",
        m,
    )
    if max(m["load_average_at_start"][0], m["load_average_at_end"][0]) > (m["cpus"] or 1):
        lines += [
            f"**The load average exceeded the {m['cpus']} cores during this run: every timing below is "
            "inflated by the other work on the machine** (recall and precision are not affected). "
            "Compare a prompt's *median* with its *raw* column, timed interleaved under the same load, "
            "for what the normalised view itself costs.",
            "",
        ]
    lines += [
        f"Corpus: {c['positives']} labelled positives ({c['positives'] // len(pii.TYPES)} per type) in "
        f"{len(c['locales'])} locales ({', '.join(c['locales'])}) and {c['negatives']} hard negatives in "
        f"{c['negative_groups']} look-alike groups, generated with Faker from seed {c['seed']} "
        "(bench/governance/corpus.py).",
        "",
        "## Precision and recall per finding type",
        "",
        f"Target: recall >= {RECALL_TARGET} for every type.",
        "",
        "| type | samples | recall | partial | precision | found | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for t, v in q["types"].items():
        ok = "met" if v["recall"] is not None and v["recall"] >= RECALL_TARGET else "**missed**"
        row = [t, v["samples"], v["recall"], v["partial"], v["precision"], v["predicted"], ok]
        lines.append("| " + " | ".join(str(x) for x in row) + " |")
    lines += ["", "Recall by format group (samples in brackets):", ""]
    for g, v in q["recall_by_group"].items():
        lines.append(f"- {g}: {v} ({q['group_sizes'][g]})")
    lines += ["", "Examples of misses:", ""]
    for t, v in q["types"].items():
        if v["misses"]:
            lines.append(f"- {t}: " + ", ".join(f"`{x}`" for x in v["misses"]))
    lines += [
        "",
        "## Look-alikes left untouched",
        "",
        f"Target: >= {UNTOUCHED_TARGET} of hard negatives with no finding at all.",
        "",
    ]
    for mode, v in q["untouched"].items():
        lines.append(f"- {mode}: {v} ({'met' if v >= UNTOUCHED_TARGET else '**missed**'})")
    lines += ["", "By group (below 1.0 only):", ""]
    for g, v in q["untouched_by_group"].items():
        if v < 1.0:
            ex = "; ".join(f"`{x}`" for x in q["false_positive_examples"].get(g.split(" (")[0], [])[:3])
            lines.append(f"- {g}: {v} (e.g. {ex})")
    lines += [
        "",
        "ICD-10 bare categories (`I10`, `A10`) without a coding word, by setting of "
        "`pii.medical.ICD10_BARE`: never codes, codes unless no ICD-10 category / part of a "
        "longer token / next to a non-medical word (default), or always codes. The corpus's "
        "model names stand alone (`See F16 for details.`), "
        "so only the category check can spare them here:",
        "",
        "| setting | icd10 recall | negatives untouched (hipaa) | model/part names untouched |",
        "|---|---|---|---|",
    ]
    for k, v in q["icd10_bare_codes"].items():
        lines.append(
            f"| {k} | {v['icd10_recall']} | {v['negatives_untouched']} | {v['model_names_untouched']} |"
        )
    lines += [
        "",
        "## Speed: scan + redact a 4 KB prompt",
        "",
        f"Target: median <= {MEDIAN_TARGET_MS} ms. 4,096 characters; `time.perf_counter_ns` around "
        "`redact(text, scan(text))`, after 200 warm-up runs. `classify` is timed separately. "
        "*raw* is the detectors alone on the text as it is (`scan_raw`, no normalised view), timed "
        "interleaved with each `scan`, so the difference is what the view costs under the same load.",
        "",
        "| prompt | findings | median (ms) | p90 (ms) | p99 (ms) | raw median (ms) "
        "| classify median (ms) | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, v in r["speed"].items():
        ok = "met" if v["median_ms"] <= MEDIAN_TARGET_MS else "**missed**"
        lines.append(
            f"| {k} | {v['findings']} | {v['median_ms']} | {v['p90_ms']} | {v['p99_ms']} "
            f"| {v['raw_median_ms']} | {v['classify_median_ms']} | {ok} |"
        )
    s = r["stream"]
    lines += [
        "",
        f"StreamRedactor on the typical prompt fed in {s['chunk_chars']}-character chunks (like streamed "
        f"tokens): median {s['median_ms_per_4kb']} ms per 4 KB.",
        "",
        "Prompts: *typical* is English prose with four sentences holding 7 findings and everyday "
        "numbers (a ticket number, a date, a time, a price, a version); *clean* is prose without digits; "
        "*dense* is a support log in which every line has a date, an order number, a price, an e-mail "
        "and a phone number (worst case for the digit-driven detectors).",
        "",
        "## Evasion: recall per obfuscation technique",
        "",
        f"Target: recall >= {RECALL_TARGET} per technique; look-alikes untouched >= {UNTOUCHED_TARGET}. "
        "Each class rewrites positives that are found in plain form (so it measures what the technique "
        "costs) with one technique (bench/governance/obfuscation.py); the last three are request bodies "
        "scored through the gateway's request scan (`governance.scan`): found when every piece of the "
        "value is redacted in the copy that would leave the gateway.",
        "",
        "| technique | samples | recall | target |",
        "|---|---|---|---|",
    ]
    ob = q["obfuscation"]
    for cls, v in ob["classes"].items():
        ok = "met" if v["recall"] >= RECALL_TARGET else "**missed**"
        lines.append(f"| {cls} | {v['samples']} | {v['recall']} | {ok} |")
    misses = [
        f"- {c}: " + ", ".join(f"`{x}`" for x in v["misses"]) for c, v in ob["classes"].items() if v["misses"]
    ]
    if misses:
        lines += ["", "Examples of misses (escaped):", "", *misses]
    lines += [
        "",
        f"Normalisation look-alikes ({ob['lookalikes']} texts the view changes but that hold no personal "
        "data) untouched:",
        "",
    ]
    for g, v in ob["lookalikes_untouched"].items():
        lines.append(f"- {g}: {v}")
    rq = r["request_scan"]
    lines += [
        "",
        "The gateway's whole request scan (every string of a chat body with the prompt cut into two "
        "messages, or into 100 short ones, and the boundaries between them): "
        + "; ".join(f"{k} prompt median {v['median_ms']} ms (p99 {v['p99_ms']} ms)" for k, v in rq.items())
        + ". The *obfuscated* prompt is the typical one with half its digits fullwidth and a zero-width "
        "space after each `@` (the slow path: the normalised view is built and scanned too).",
        "",
        "## Reading these numbers",
        "",
        "- The corpus and the detector were written by the same hands; templates marked *no-hint* "
        "carry no word the detector looks for, so their recall shows the format rules alone.",
        "- Misses by design: "
        "bare digit runs without a trunk 0, a phone word or a format (`4659621374`), and "
        "secrets without a digit.",
        "- Look-alikes flagged by design: `N units` is a dosage under hipaa (insulin is dosed in units); "
        "under hipaa a bare ICD-10 category with no non-medical word next to it (`See F16 for details.`) "
        "is redacted, since a missed code is a disclosure and a redacted model name is not (see the table).",
        "- Evasion misses by design: the last letters of a value cut right after a part that is a "
        "whole value by itself (`jane@example.co` + `m`: a following word is read as the next "
        "message's text), an IPv6 address cut after a trailing `:`; docs/security.md lists what no "
        "class here measures (names, addresses, spelled-out or client-encoded values).",
        "- Speed depends on how many digit runs and findings a prompt holds, not on its length: "
        "every finding costs a few microseconds of Python (validation, overlap resolution).",
        "",
        "## Gateway throughput with governance on and off",
        "",
        "Measured by the gateway benchmark (`make bench-gateway`), not here.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
