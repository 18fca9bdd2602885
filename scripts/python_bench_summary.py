"""Reduces the JSON rows of scripts/python_bench.sh: medians of each side's phases and the
Python/Rust time ratios (the parity bars), and each index's q/s at the lowest swept setting
reaching recall 0.95 (the side-by-side row).

    python3 scripts/python_bench_summary.py < rows.jsonl
"""

import json
import statistics
import sys
from collections import defaultdict


def main():
    times = defaultdict(list)
    curves = defaultdict(list)
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if "side" in row and "seconds" in row:
            times[(row["side"], row["phase"])].append(row)
        elif "recall" in row and "qps" in row and "index" in row:
            curves[row["index"]].append(row)
    for phase in ("upsert", "search_batch", "search_loop"):
        rust = [r["seconds"] for r in times[("rust", phase)]]
        python = [r["seconds"] for r in times[("python", phase)]]
        if not rust or not python:
            continue
        pairs = [p / r for p, r in zip(python, rust)]
        line = (f"{phase:13} rust median {statistics.median(rust):.4f} s, python median "
                f"{statistics.median(python):.4f} s: ratio of medians "
                f"{statistics.median(python) / statistics.median(rust):.3f}, median of "
                f"{len(pairs)} paired ratios {statistics.median(pairs):.3f} "
                f"(range {min(pairs):.3f}-{max(pairs):.3f})")
        recalls = {r.get("recall") for r in times[("python", phase)] + times[("rust", phase)]}
        if phase != "upsert":
            line += f", recall {sorted(x for x in recalls if x is not None)}"
        print(line)
    for side, phase in sorted(k for k in times if k[1].startswith("search_threads")):
        qps = [r["qps"] for r in times[(side, phase)]]
        print(f"{phase:17} ({side}) median {statistics.median(qps):9.0f} q/s over {len(qps)} rounds")
    for index, rows in curves.items():
        rows.sort(key=lambda r: r["recall"])
        above = [r for r in rows if r["recall"] >= 0.95]
        if not above:
            print(f"{index:16} never reaches recall 0.95 (best {rows[-1]['recall']:.3f})")
            continue
        best = max(above, key=lambda r: r["qps"])
        print(f"{index:16} {best['qps']:9.0f} q/s at recall {best['recall']:.3f} "
              f"({json.dumps(best.get('params'))})")


if __name__ == "__main__":
    main()
