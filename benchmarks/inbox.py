"""Inbox benchmark: conversation list and search on a big inbox, timed in process.

    python benchmarks/inbox.py --conversations 100000 --messages 1000000 \
        --database-url postgresql://postgres@127.0.0.1:5432/test

Same as `tresen bench inbox`: progress on stderr, ONE JSON line last on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from tresen.benchmarks.inbox import run_inbox_bench


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50, help="timed runs per query kind")
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL server to create a fresh database on; default SQLite",
    )
    args = parser.parse_args()
    result = asyncio.run(
        run_inbox_bench(
            conversations=args.conversations,
            messages=args.messages,
            database_url=args.database_url,
            queries=args.queries,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
