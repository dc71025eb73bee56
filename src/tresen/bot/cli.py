"""`tresen bot ...`: evaluation and data splitting; each figure command prints one JSON line last."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

# Heavy modules (scikit-learn, scipy) load inside the commands so that `tresen` starts fast.
BACKENDS = ("default", "lexical")
bot_app = typer.Typer(
    no_args_is_help=True, help="The chatbot: knowledge base, evaluation and data tools."
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@bot_app.command("eval")
def eval_command(
    test: Annotated[
        Path, typer.Option("--test", help="Test CSV (text,label; 'oos' = out of scope).")
    ],
    train: Annotated[
        Path | None, typer.Option("--train", help="Training CSV (text,label).")
    ] = None,
    faq: Annotated[Path | None, typer.Option("--faq", help="FAQ knowledge base YAML.")] = None,
    extra_train: Annotated[
        Path | None, typer.Option("--extra-train", help="More phrasings (text,label=FAQ id).")
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help=f"Matcher backend: {', '.join(BACKENDS)}.")
    ] = "default",
) -> None:
    """Train as the product does, answer every test row, print one JSON line of figures."""
    from tresen.bot.evaluate import DataError, load_eval_inputs, run_eval
    from tresen.bot.kb import KnowledgeBaseError
    from tresen.bot.semantic import EncoderUnavailable

    if backend not in BACKENDS:
        raise _fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    try:
        inputs = load_eval_inputs(train, test, faq, extra_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = run_eval(
                inputs["test"],
                train=inputs.get("train"),
                kb=inputs.get("kb"),
                extra=inputs.get("extra"),
                backend=backend,
            )
    except (DataError, KnowledgeBaseError, EncoderUnavailable, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(result))


@bot_app.command("split")
def split_command(
    source: Annotated[Path, typer.Argument(help="CSV (text,label) to split.")],
    out_train: Annotated[Path, typer.Option("--out-train", help="Where the training rows go.")],
    out_test: Annotated[Path, typer.Option("--out-test", help="Where the held-out rows go.")],
    test_share: Annotated[
        float, typer.Option("--test-share", help="Share held out per label.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Shuffle seed.")] = 13,
) -> None:
    """Deterministic stratified split of an intent CSV; prints one JSON line with the sizes."""
    from tresen.bot.evaluate import DataError, read_intent_csv, stratified_split, write_intent_csv

    try:
        texts, labels = read_intent_csv(source)
        (tr_t, tr_l), (te_t, te_l) = stratified_split(texts, labels, test_share, seed)
        write_intent_csv(out_train, tr_t, tr_l)
        write_intent_csv(out_test, te_t, te_l)
    except (DataError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        json.dumps(
            {"train": len(tr_t), "test": len(te_t), "labels": len(set(labels)), "seed": seed}
        )
    )


@bot_app.command("latency")
def latency_command(
    train: Annotated[Path, typer.Option("--train", help="Intent CSV to draw FAQ phrasings from.")],
    test: Annotated[Path, typer.Option("--test", help="CSV whose texts are the queries.")],
    entries: Annotated[int, typer.Option("--entries", help="FAQ entries to index.")] = 1000,
    backend: Annotated[
        str, typer.Option("--backend", help=f"Matcher backend: {', '.join(BACKENDS)}.")
    ] = "default",
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Threads answering at once in the load phase.")
    ] = 1,
) -> None:
    """Per-query latency with a synthetic knowledge base of N entries, then throughput under
    load (messages/s and per CPU second); prints one JSON line."""
    from tresen.bot.evaluate import DataError, read_intent_csv, run_latency
    from tresen.bot.semantic import EncoderUnavailable

    if entries < 2:
        raise _fail("--entries must be at least 2")
    if not 1 <= concurrency <= 64:
        raise _fail("--concurrency must be between 1 and 64")
    if backend not in BACKENDS:
        raise _fail(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    try:
        source = read_intent_csv(train)
        queries = read_intent_csv(test)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = run_latency(source, queries, entries, backend, concurrency=concurrency)
    except (DataError, EncoderUnavailable, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(result))


async def _import_workspace(session: Any, workspace_id: str | None) -> Any:
    """The workspace an import goes to: the given id, or the install's first."""
    from tresen.channels.manage import default_workspace
    from tresen.clitools import fail
    from tresen.db.tables import Workspace

    if not workspace_id:
        return await default_workspace(session)
    ws = await session.get(Workspace, workspace_id)
    if ws is None:
        fail(f"no workspace with id {workspace_id!r}; nothing was imported")
    return ws


@bot_app.command("import-faq")
def import_faq_command(
    source: Annotated[
        Path, typer.Argument(help="FAQ YAML (business, language, faqs; optional flows, blacklist).")
    ],
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="Workspace id (default: the install's first).")
    ] = None,
) -> None:
    """Replace the workspace's knowledge base with the file's entries; the bot uses them at once."""
    import asyncio

    from tresen.bot.kb import KnowledgeBaseError
    from tresen.bot.store import import_file, read_import
    from tresen.clitools import cli_settings, fail, with_session

    try:
        parsed = read_import(source)
    except KnowledgeBaseError as exc:
        fail(f"{exc}; nothing was imported")
    settings = cli_settings()

    async def work(session: Any) -> dict[str, Any]:
        ws = await _import_workspace(session, workspace)
        count = await import_file(session, ws.id, parsed)
        return {"imported": count, "workspace": ws.id, "language": parsed.kb.language}

    typer.echo(json.dumps(asyncio.run(with_session(settings, work))))


@bot_app.command("import-products")
def import_products_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="Catalog as CSV (header row) or JSON: sku, name, brand, category, sizes, price, stock, url."
        ),
    ],
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="Workspace id (default: the install's first).")
    ] = None,
) -> None:
    """Replace the workspace's product catalog with the file's products; the bot uses them at once."""
    import asyncio

    from tresen.bot.products import CatalogError, read_catalog
    from tresen.bot.store import import_products
    from tresen.clitools import cli_settings, fail, with_session

    try:
        catalog = read_catalog(source)
    except CatalogError as exc:
        fail(f"{exc}; nothing was imported")
    settings = cli_settings()

    async def work(session: Any) -> dict[str, Any]:
        ws = await _import_workspace(session, workspace)
        count = await import_products(session, ws.id, catalog)
        return {"imported": count, "workspace": ws.id}

    typer.echo(json.dumps(asyncio.run(with_session(settings, work))))
