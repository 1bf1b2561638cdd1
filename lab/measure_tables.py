#!/usr/bin/env python3
"""Markdown tables from the run folders lab/measure.sh wrote (argument: its OUT folder)."""
import json
import os
import sys

out = sys.argv[1]


def summary(name):
    with open(os.path.join(out, name, "summary.json")) as f:
        return json.load(f)


def pct(r):
    return "—" if r is None else f"{r * 100:.1f} %"


def frac(g):
    return f"{pct(g['rate'])} ({g['blocked']}/{g['blocked'] + g['passed']})"


def sets(s):
    return {g["name"]: g for g in s["detection"]["by_set"]}


def case_average(s):
    """gotestwaf's WafScore: the mean over attack test cases of blocked / resolved."""
    rates = [g["rate"] for g in s["detection"]["by_case"]
             if not g["benign"] and g["rate"] is not None]
    return sum(rates) / len(rates) if rates else None


def without_base64(s):
    b = p = 0
    for g in s["detection"]["by_encoder"]:
        if not g["name"].startswith("Base64"):
            b += g["blocked"]
            p += g["passed"]
    return b / (b + p) if b + p else None


def score(s):
    sc = s["score"]
    return f"{sc['application']} / {sc['api']} / {sc['overall']} %"


print("### Detection and false positives by CRS paranoia level\n")
print("Stock gotestwaf corpus, each request once (detection = blocked / (blocked + passed)):\n")
print("| PL | community | owasp | owasp-api | all attacks | attacks without Base64Flat "
      "| false-pos: FP rate | mean over cases (gotestwaf's WafScore) "
      "| wafload score app / api / overall |")
print("|---|---|---|---|---|---|---|---|---|")
for pl in range(1, 5):
    s = summary(f"pl{pl}-stock")
    g = sets(s)
    print(f"| {pl} | {frac(g['community'])} | {frac(g['owasp'])} | {frac(g['owasp-api'])} "
          f"| {frac(s['detection']['attacks'])} | {pct(without_base64(s))} "
          f"| {frac(s['detection']['benign'])} | {pct(case_average(s))} | {score(s)} |")

print("\nOur corpus (`payloads/`), each request once:\n")
print("| PL | wafload-attacks | wafload-api-attacks | all attacks "
      "| wafload-false-pos: FP rate | mean over cases | wafload score app / api / overall |")
print("|---|---|---|---|---|---|---|")
for pl in range(1, 5):
    s = summary(f"pl{pl}-payloads")
    g = sets(s)
    print(f"| {pl} | {frac(g['wafload-attacks'])} | {frac(g['wafload-api-attacks'])} "
          f"| {frac(s['detection']['attacks'])} | {frac(s['detection']['benign'])} "
          f"| {pct(case_average(s))} | {score(s)} |")

print("\nRun facts (status codes, achieved rate, requests sent > 1 ms late):\n")
for pl in range(1, 5):
    for corpus in ("stock", "payloads"):
        s = summary(f"pl{pl}-{corpus}")
        print(f"- PL{pl} {corpus}: sent {s['sent']}, statuses {s['statuses']}, "
              f"{s['achieved_rate']} req/s achieved, {s['lateness']['late']} late, "
              f"{s['counts']['unresolved']} unresolved, {s['counts']['failed']} failed")

print("\nStock corpus by encoder at each PL (blocked / resolved):\n")
encoders = sorted({g["name"] for pl in range(1, 5)
                   for g in summary(f"pl{pl}-stock")["detection"]["by_encoder"]})
print("| PL | " + " | ".join(encoders) + " |")
print("|---|" + "---|" * len(encoders))
for pl in range(1, 5):
    by = {g["name"]: g for g in summary(f"pl{pl}-stock")["detection"]["by_encoder"]}
    print(f"| {pl} | " + " | ".join(frac(by[e]) if e in by else "—" for e in encoders) + " |")

path = os.path.join(out, "overhead.json")
if os.path.exists(path):
    with open(path) as f:
        o = json.load(f)
    c = o.get("comparison") or {}
    print("\n### Latency: WAF vs baseline at 200 req/s (paranoia 1, benign traffic)\n")
    print(f"{c.get('a_requests')} baseline and {c.get('b_requests')} WAF requests in interleaved "
          "blocks; latency from the intended send time; difference with a 95 % bootstrap "
          "interval.\n")
    print("| quantile | baseline (ms) | WAF (ms) | WAF − baseline (ms), 95 % CI |")
    print("|---|---|---|---|")
    names = {0.5: "p50", 0.9: "p90", 0.99: "p99", 0.999: "p99.9"}
    for d in c.get("latency", []):
        print(f"| {names.get(d['q'], d['q'])} | {d['a']:.3f} | {d['b']:.3f} "
              f"| {d['diff']:+.3f} ({d['low']:+.3f} … {d['high']:+.3f}) |")
    print()
    for v in c.get("verdicts", []):
        print(f"- {v}")

    # Per block: the pooled quantiles above mix quiet and busy moments of the machine;
    # the median over blocks shows the typical block, the range how much they varied.
    import glob
    import statistics
    blocks = sorted(glob.glob(os.path.join(out, "overhead", "*", "blocks", "*", "summary.json")))
    if blocks:
        arms = {}
        for b in blocks:
            with open(b) as f:
                s = json.load(f)
            arm = os.path.basename(os.path.dirname(b)).split("-", 1)[1]
            arms.setdefault(arm, []).append(s["latency"]["all"])
        print(f"\nPer block ({len(blocks)} blocks of 5 s, alternating arms, 200 req/s):\n")
        print("| arm | blocks | median p50 (ms) | median p99 (ms) | p99 range over blocks (ms) |")
        print("|---|---|---|---|---|")
        for arm in ("baseline", "waf"):
            ls = arms.get(arm, [])
            if not ls:
                continue
            p50 = statistics.median(x["p50"] for x in ls) / 1000
            p99s = [x["p99"] / 1000 for x in ls]
            print(f"| {arm} | {len(ls)} | {p50:.3f} | {statistics.median(p99s):.3f} "
                  f"| {min(p99s):.3f} … {max(p99s):.3f} |")
