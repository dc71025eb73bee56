"""Ingest benchmark: signed provider webhooks of one channel kind against a real `tresen serve`.

    python benchmarks/ingest.py --seconds 20 --concurrency 64 [--database-url postgresql://...] [--web-processes 2] [--channel sms]

Same as `tresen bench ingest`: progress on stderr, ONE JSON line last on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from tresen.benchmarks.ingest import CHANNELS, run_ingest_bench


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL server to create a fresh database on; default SQLite",
    )
    parser.add_argument("--web-processes", type=int, default=1)
    parser.add_argument("--channel", choices=CHANNELS, default="whatsapp")
    parser.add_argument(
        "--hello-seconds", type=float, default=None, help="default: min(seconds, 10)"
    )
    args = parser.parse_args()
    result = asyncio.run(
        run_ingest_bench(
            seconds=args.seconds,
            concurrency=args.concurrency,
            database_url=args.database_url,
            channel=args.channel,
            web_processes=args.web_processes,
            hello_seconds=args.hello_seconds,
        )
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
