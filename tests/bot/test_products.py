"""The product catalog: import, find by article number or name, sizes, the finder flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bot.kbdata import KB_YAML
from tresen.bot.blacklist import Blacklist
from tresen.bot.engine import Bot
from tresen.bot.live import _flows, build_bot
from tresen.bot.persona import Persona
from tresen.bot.products import Catalog, CatalogError, parse_size, read_catalog
from tresen.bot.store import parse_import

DEMO = Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data" / "demo_products.json"

FINDER = {
    "id": "finder",
    "action": "find_products",
    "slots": [
        {
            "name": "category",
            "type": "choice",
            "choices_from": "category",
            "ask": "Was suchen Sie?",
        },
        {"name": "size", "type": "size", "allow_any": True, "ask": "Welche Größe?"},
        {
            "name": "brand",
            "type": "choice",
            "choices_from": "brand",
            "allow_any": True,
            "ask": "Marke?",
        },
        {"name": "budget", "type": "amount", "allow_any": True, "ask": "Bis wie viel €?"},
    ],
}


def test_csv_and_json_give_the_same_catalog(tmp_path: Path) -> None:
    csv_file = tmp_path / "p.csv"
    csv_file.write_text(
        "sku;name;brand;category;sizes;price;stock;url\n"
        "RS-4100;Radschuh Tour;Pedalo;Radschuhe;40|41|42;89,95;40:2|41:0|42:3;https://x.example/rs\n"
        "SL-5100;Faltschloss Safe 900;Kettwerk;Schlösser;;79;6;\n",
        encoding="utf-8",
    )
    json_file = tmp_path / "p.json"
    json_file.write_text(
        json.dumps(
            [
                {
                    "sku": "RS-4100",
                    "name": "Radschuh Tour",
                    "brand": "Pedalo",
                    "category": "Radschuhe",
                    "sizes": ["40", "41", "42"],
                    "price": 89.95,
                    "stock": {"40": 2, "41": 0, "42": 3},
                    "url": "https://x.example/rs",
                },
                {
                    "sku": "SL-5100",
                    "name": "Faltschloss Safe 900",
                    "brand": "Kettwerk",
                    "category": "Schlösser",
                    "price": "79",
                    "stock": 6,
                },
            ]
        ),
        encoding="utf-8",
    )
    from_csv, from_json = read_catalog(csv_file), read_catalog(json_file)
    assert from_csv == from_json
    shoe = from_csv[0]
    assert shoe.price_cents == 8995 and shoe.stock == 5
    assert shoe.in_stock("42") and not shoe.in_stock("41") and not shoe.in_stock("44")
    assert from_csv[1].in_stock() and from_csv[1].sizes == ()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"sku": "A 1", "name": "x", "price": 1}], "product 1: 'sku'"),
        ([{"sku": "A1", "name": "", "price": 1}], "product 1 (sku 'A1'): 'name'"),
        ([{"sku": "A1", "name": "x", "price": "zehn"}], "'price' must be a number"),
        (
            [{"sku": "A1", "name": "x", "price": 1, "sizes": ["40"], "stock": {"41": 1}}],
            "size '41'",
        ),
        ([{"sku": "A1", "name": "x", "price": 1, "url": "javascript:alert(1)"}], "'url'"),
        (
            [{"sku": "A1", "name": "x", "price": 1}, {"sku": "a1", "name": "y", "price": 2}],
            "duplicate sku",
        ),
    ],
)
def test_a_bad_row_is_named(tmp_path: Path, rows: list[dict[str, Any]], message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(CatalogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_catalog(path)


def test_sizes_in_text() -> None:
    assert parse_size("und in 42?") == "42"
    assert parse_size("Größe 42,5 bitte") == "42.5"
    assert parse_size("have it in XL?") == "XL"
    assert parse_size("und in M?") == "M"
    assert parse_size("ich bin müde") is None


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(tuple(read_catalog(DEMO)))


@pytest.mark.parametrize(
    ("text", "sku"),
    [
        ("Habt ihr den Radschuh Tour in 42?", "RS-4100"),
        ("habt ihr die radschuhe tour noch?", "RS-4100"),
        ("Is the Radschuh Race Carbon available in 43?", "RS-4200"),
        ("Gibt es rs-4300 in 44?", "RS-4300"),
        ("Was kostet das Faltschloss Safe 900?", "SL-5100"),
        ("Habt ihr den Helm Enduro Pro in XL", "HE-2200"),
        ("Habt ihr den Helm Endro Pro in XL", "HE-2200"),
    ],
)
def test_find_by_article_number_or_name(catalog: Catalog, text: str, sku: str) -> None:
    hit = catalog.find(text)
    assert hit is not None and hit.product.sku == sku


@pytest.mark.parametrize(
    "text", ["Was kostet der Versand?", "Wann habt ihr geöffnet?", "Habt ihr Helme?", "42"]
)
def test_questions_that_name_no_product_find_none(catalog: Catalog, text: str) -> None:
    assert catalog.find(text) is None


@pytest.fixture(scope="module")
def bot(catalog: Catalog) -> Bot:
    data = yaml.safe_load(KB_YAML)
    data["flows"].append(FINDER)
    data["faqs"].append(
        {
            "id": "beratung",
            "flow": "finder",
            "questions": [
                "Können Sie mir etwas empfehlen?",
                "Ich suche etwas Neues",
                "Can you recommend something?",
            ],
            "answer": {"de": "Gern helfe ich beim Suchen.", "en": "Happy to help."},
        }
    )
    parsed = parse_import(data, "test")
    config: Any = type("C", (), {"flows": {"flows": parsed.flows}, "workspace_id": "w"})()
    return build_bot(
        parsed.kb,
        Persona(business="Radladen Test"),
        Blacklist.of(parsed.blacklist or []),
        _flows(config, catalog),
        parsed.entry_flows,
        catalog,
    )


def test_product_answer_with_size_and_follow_up(bot: Bot) -> None:
    t1 = bot.respond("Habt ihr den Radschuh Tour in 42?", {}, 0.0)
    assert t1.outcome == "product"
    assert t1.texts == (
        "Pedalo Radschuh Tour gibt es in Größe 42: vorrätig, 89,95 €. https://radhaus-demo.example/p/rs-4100",
    )
    t2 = bot.respond("und in 41?", t1.state, 1.0)
    assert t2.texts[0].startswith("Pedalo Radschuh Tour in Größe 41 ist gerade leider ausverkauft.")
    assert "Vorrätig: 40, 42, 43, 45." in t2.texts[0]
    t3 = bot.respond("and in 47?", t2.state, 2.0)
    assert t3.language == "en" and "doesn't come in size 47" not in t3.texts[0]
    assert t3.texts[0].startswith("Pedalo Radschuh Tour does not come in size 47")
    assert t3.state["slots"]["size"] == "47"


def test_a_product_without_size_lists_the_sizes_in_stock(bot: Bot) -> None:
    turn = bot.respond("Was kostet der Helm Urban Light?", {}, 0.0)
    assert turn.texts[0].startswith(
        "Kettwerk Helm Urban Light kostet 59,00 €. Vorrätige Größen: S, M."
    )
    sold_out = bot.respond("Habt ihr die Akkuleuchte Nachtfalke?", {}, 0.0)
    assert sold_out.texts == ("Pedalo Akkuleuchte Nachtfalke ist gerade leider ausverkauft.",)


def test_the_finder_asks_then_lists_the_top_three_with_links(bot: Bot) -> None:
    turn = bot.respond("Können Sie mir etwas empfehlen?", {}, 0.0)
    assert turn.outcome == "answered"
    assert turn.buttons[:3] == ("Radschuhe", "Helme", "Trikots")
    state = turn.state
    for answer in ("Radschuhe", "42", "egal"):
        turn = bot.respond(answer, state, 1.0)
        state = turn.state
    assert turn.outcome == "flow"
    turn = bot.respond("bis 100 €", state, 2.0)
    assert turn.outcome == "product"
    lines = turn.texts[0].splitlines()
    assert lines[0] == "Das passt zu Ihrer Suche:"
    assert lines[1:] == [
        "1. Pedalo Trekkingschuh Allroad – 69,90 € https://radhaus-demo.example/p/rs-4300",
        "2. Pedalo Radschuh Tour – 89,95 € https://radhaus-demo.example/p/rs-4100",
    ]
    wider = bot.respond("und bis 200 €?", turn.state, 3.0)
    assert len(wider.texts[0].splitlines()) == 3, "Race Carbon in 42 is sold out: two plus none"
    other_size = bot.respond("und in 42,5?", turn.state, 3.0)
    assert other_size.texts[0].startswith("Dazu habe ich gerade leider nichts Passendes")
    richer = bot.respond("und bis 200 €?", other_size.state, 4.0)
    assert richer.texts[0].splitlines()[1:] == [
        "1. Kettwerk Radschuh Race Carbon – 189,00 € https://radhaus-demo.example/p/rs-4200"
    ]
