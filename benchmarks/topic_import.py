"""Subscriber import benchmark: one CSV of N consenting subscribers into a fresh database.

    python benchmarks/topic_import.py --rows 10000 [--database-url postgresql://postgres@127.0.0.1:5432/test]

Same as `tresen bench topic-import`: progress on stderr, ONE JSON line last on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from tresen.benchmarks.topic_import import run_topic_import_bench


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL server to create a fresh database on; default SQLite",
    )
    args = parser.parse_args()
    result = asyncio.run(run_topic_import_bench(rows=args.rows, database_url=args.database_url))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
