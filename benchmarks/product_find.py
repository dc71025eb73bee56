"""Product finding: how long `Catalog.find` takes per message on a synthetic catalog.

    python benchmarks/product_find.py --products 5000

ONE JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from tresen.bot.products import Catalog, Product

WORDS = [
    "Radschuh",
    "Helm",
    "Trikot",
    "Schloss",
    "Leuchte",
    "Tour",
    "Race",
    "Carbon",
    "Urban",
    "Light",
    "Pro",
    "Enduro",
    "Sommer",
    "Winter",
    "Allroad",
    "Trail",
    "Gravel",
    "City",
    "Kids",
    "Max",
]
QUERIES = (
    "Habt ihr den Helm Urban Light in 42?",
    "Was kostet der Versand?",
    "Gibt es SKU-01234 in 41?",
    "Habt ihr den Radschuh Tour noch?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=25, help="times each query runs")
    args = parser.parse_args()
    rng = random.Random(1)
    products = tuple(
        Product(
            f"SKU-{i:05d}",
            " ".join(rng.sample(WORDS, 3)) + f" {i}",
            "B",
            "C",
            ("40", "41", "42"),
            1000,
            3,
            "",
        )
        for i in range(args.products)
    )
    started = time.perf_counter()
    catalog = Catalog(products)
    build = time.perf_counter() - started
    times = []
    for query in QUERIES * args.rounds:
        started = time.perf_counter()
        catalog.find(query)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        json.dumps(
            {
                "bench": "product_find",
                "products": args.products,
                "queries": len(times),
                "build_seconds": round(build, 3),
                "ms_per_find_p50": round(statistics.median(times), 3),
                "ms_per_find_p95": round(times[int(0.95 * len(times)) - 1], 3),
                "config": {"rounds": args.rounds},
            }
        )
    )


if __name__ == "__main__":
    main()
