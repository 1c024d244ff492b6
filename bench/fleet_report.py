#!/usr/bin/env python3
"""Write the fleet simulation's report: docs/fleet.md and the plot docs/fleet-storm.svg.

Usage: fleet_report.py OUT_DIR RUNS_DIR NODES COMMAND

The prose is bench/fleet.md.in. RUNS_DIR holds the simulator's output per policy and fleet
size: now-N.json and before-N.json (one object each), and for N = NODES now-N.csv and
before-N.csv, the per-second upstream calls over the storm (second,calls,throttled). The plot is plain SVG written here,
so the report needs nothing beyond the standard library.
"""
import csv
import json
import os
import sys
import time

GOALS = [
    ("all_ready_seconds", "all nodes hold a token within", 900, "s", lambda v: v is not None and v <= 900),
    ("tokens_expired_in_use", "tokens expired while in use", 0, "", lambda v: v == 0),
    ("calls_per_node_per_day", "upstream calls per node per day (the 7 days after the storm)", 3, "", lambda v: v <= 3),
    ("throttled_share", "throttled share of all upstream calls", 0.5, "", lambda v: v <= 0.5),
]


def series(path, smooth=10):
    rows = [(int(r["second"]), int(r["calls"]), int(r["throttled"])) for r in csv.DictReader(open(path))]
    # Average over `smooth` seconds so the plot shows rates, not per-second noise.
    out = []
    for i in range(0, len(rows), smooth):
        chunk = rows[i:i + smooth]
        out.append((i, sum(c for _, c, _ in chunk) / len(chunk), sum(t for _, _, t in chunk) / len(chunk)))
    return out


def svg(cur, before, path):
    w, h, left, bottom, top, right = 900, 420, 60, 40, 30, 20
    xmax = max(s for s, _, _ in cur + before) + 10
    ymax = max(max(c for _, c, _ in cur + before), 25)
    ymax = (int(ymax / 50) + 1) * 50

    def x(s):
        return left + (w - left - right) * s / xmax

    def y(v):
        return h - bottom - (h - bottom - top) * v / ymax

    def line(points, color, dash=""):
        pts = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{d} points="{pts}"/>'

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>']
    for v in range(0, ymax + 1, 50 if ymax > 100 else 10):
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for s in range(0, xmax + 1, 300):
        parts.append(f'<text x="{x(s):.1f}" y="{h - bottom + 16}" text-anchor="middle">{s}</text>')
    parts.append(f'<text x="{(w + left) / 2}" y="{h - 6}" text-anchor="middle">seconds since the first node booted</text>')
    parts.append(f'<text x="14" y="{(h - bottom + top) / 2}" transform="rotate(-90 14 {(h - bottom + top) / 2})" text-anchor="middle">upstream calls per second (10 s mean)</text>')
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(20):.1f}" y2="{y(20):.1f}" stroke="#2a2" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{w - right - 4}" y="{y(20) - 4:.1f}" text-anchor="end" fill="#2a2">ECR quota: 20/s sustained</text>')
    parts.append(line([(s, c) for s, c, _ in before], "#c33"))
    parts.append(line([(s, t) for s, _, t in before], "#c33", "3,3"))
    parts.append(line([(s, c) for s, c, _ in cur], "#23c"))
    parts.append(line([(s, t) for s, _, t in cur], "#23c", "3,3"))
    legend = [("#c33", "", "before: all calls"), ("#c33", "3,3", "before: throttled"),
              ("#23c", "", "now: all calls"), ("#23c", "3,3", "now: throttled")]
    for i, (color, dash, label) in enumerate(legend):
        ly = top + 14 + i * 16
        d = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{w - 220}" x2="{w - 190}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="1.5"{d}/>')
        parts.append(f'<text x="{w - 184}" y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    open(path, "w").write("\n".join(parts) + "\n")


def fmt(v):
    if v is None:
        return "never"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    return f"{v:,}"


def main():
    out, runs, nodes, command = sys.argv[1:5]
    cur, bef = json.load(open(f"{runs}/now-{nodes}.json")), json.load(open(f"{runs}/before-{nodes}.json"))
    svg(series(f"{runs}/now-{nodes}.csv"), series(f"{runs}/before-{nodes}.csv"), f"{out}/fleet-storm.svg")
    sizes = sorted({int(f.split("-")[1].split(".")[0]) for f in os.listdir(runs) if f.endswith(".json")})
    size_rows = []
    for n in sizes:
        for pol in ("before", "now"):
            r = json.load(open(f"{runs}/{pol}-{n}.json"))
            size_rows.append(f"| {n:,} | {pol} | {fmt(r['all_ready_seconds'])} | {fmt(r['ready_p99_seconds'])} | {fmt(r['storm_calls_per_node'])} "
                             f"| {fmt(r['storm_throttled_share'])} | {fmt(r['calls_per_node_per_day'])} | {fmt(r['throttled_share'])} | {fmt(r['tokens_expired_in_use'])} |")
    rows = []
    for key, label, goal, unit, ok in GOALS:
        rows.append(f"| {label} | {fmt(bef[key])}{unit} | {fmt(cur[key])}{unit} | {'<=' if goal else '='} {goal}{unit} | {'pass' if ok(cur[key]) else 'FAIL'} |")
    extra = ["ready_p50_seconds", "ready_p99_seconds", "nodes_ready", "upstream_calls", "throttled_calls", "failed_calls",
             "storm_calls", "storm_calls_per_node", "storm_throttled_share", "wall_seconds"]
    more = [f"| {k} | {fmt(bef.get(k))} | {fmt(cur.get(k))} |" for k in extra]
    text = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fleet.md.in")).read()
    text = text.replace("@DATE@", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    text = text.replace("@COMMAND@", command)
    text = text.replace("@NODES@", fmt(cur["nodes"])).replace("@GOALS@", "\n".join(rows)).replace("@MORE@", "\n".join(more)).replace("@SIZES@", "\n".join(size_rows))
    text = text.replace("@CURRENT_JSON@", json.dumps(cur, sort_keys=True)).replace("@BEFORE_JSON@", json.dumps(bef, sort_keys=True))
    open(f"{out}/fleet.md", "w").write(text)


if __name__ == "__main__":
    main()
