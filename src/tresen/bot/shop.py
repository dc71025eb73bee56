"""What the bot says about products and orders, and the follow-ups that refer to them
("und in 42?", "gibts den auch in schwarz?", "was kostet der?", "und wann kommt sie?").

Works on the conversation's state dict like the engine; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tresen.bot.flows import ANY
from tresen.bot.persona import Persona
from tresen.bot.products import Catalog, Product, price_text, product_facts
from tresen.bot.slots import Reading, colour_name, parse_size, words_of

ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled", "returned")
SHORT_MESSAGE = 8  # words: a follow-up ("und in 43?", "was kostet der?") is short


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PRICE_WORDS = _words(
    "kostet kosten koste preis preise teuer gunstig kostenlos gratis umsonst much cost costs "
    "price prices expensive cheap free"
)
STOCK_WORDS = _words("lager vorratig verfugbar stock available")
DELIVERY_WORDS = _words(
    "wann kommt kommen ankommen da link sendungsverfolgung tracking when arrive arrives "
    "delivery lieferung"
)
# Words a follow-up about the thing just shown is made of ("was kostet der denn?").
FOLLOW_UP_FILLER = _words(
    "was wie viel der die das den dem des er sie es ihn ihm denn eigentlich noch mal so und "
    "auch aber gibt gibts habt ihr haben hast du euch da in im an the is it that this how does "
    "do what s and are they them those one ones any also too have has you etc ist sind wird "
    "werden mit for fur bitte please ok okay dann then kann man can i anything something etwas"
)
REFERRING = _words("das der die den dem es er sie dafur davon dazu it that this they them those")


def display(product: Product) -> str:
    """The product as the customer reads it: brand and name."""
    if product.brand and product.brand.casefold() not in product.name.casefold():
        return f"{product.brand} {product.name}"
    return product.name


def size_in(text: str, reading: Reading) -> str | None:
    """The size a message asks about (a marked number or a clothing size; never a budget)."""
    if reading.size is not None:
        return reading.size
    if reading.budget is not None:
        return None
    return parse_size(text) if len(words_of(text)) <= SHORT_MESSAGE else None


@dataclass(frozen=True)
class Shop:
    """A workspace's catalog and the bot's words about it."""

    persona: Persona
    catalog: Catalog

    # --- products ---------------------------------------------------------------------------

    def product(
        self,
        state: dict[str, Any],
        product: Product,
        size: str | None,
        lang: str,
        colour: str | None = None,
        *,
        price: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The answer about one product (in a size or colour, or its price), remembered as the
        product of the conversation."""
        state["product"] = product.sku
        state["last"] = "product"
        state["products"] = [
            *[p for p in state.get("products", []) if p != product.sku],
            product.sku,
        ][-3:]
        facts = product_facts(product, lang, size)
        facts["product"] = display(product)
        facts["colours"] = ", ".join(product.colours_in_stock() or product.colors) or "–"
        offered = product.size_key(size) if size and product.sizes else None
        if colour is not None:
            shown = product.colour(colour)
            facts["colour"] = shown or colour_name(colour, lang)
            if not product.colors:
                key = "product_colour_unknown"
            elif shown is None:
                key = "product_colour_not_offered"
            elif product.in_colour(shown):
                key = "product_colour_in_stock"
            else:
                key = "product_colour_sold_out"
        elif size and product.sizes:
            state["slots"]["size"] = size
            if offered is None:
                key = "product_size_not_offered"
            else:
                facts["size"] = offered.replace(".", ",") if lang == "de" else offered
                key = "product_in_stock" if product.in_stock(offered) else "product_size_sold_out"
        elif not product.in_stock():
            key = "product_sold_out"
        elif price:
            key = "product_price"
        else:
            key = "product_info" if product.sizes else "product_info_no_sizes"
        facts["answer"] = key
        return self.persona.say(key, lang, **facts).strip(), facts

    def search(
        self, state: dict[str, Any], slots: Mapping[str, Any], lang: str, colour: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The product finder's answer for the slots it gathered (the three cheapest in stock)."""

        def given(*names: str) -> Any:
            for name in names:
                value = slots.get(name)
                if value not in (None, ANY):
                    return value
            return None

        budget = given("budget", "price", "preis")
        size = given("size", "groesse")
        found = self.catalog.search(
            category=given("category", "kategorie"),
            size=f"{size:g}" if isinstance(size, float) else size,
            brand=given("brand", "marke"),
            budget_cents=round(float(budget) * 100) if budget is not None else None,
            colour=colour or given("color", "colour", "farbe"),
        )
        state.pop("product", None)
        state["found"] = [p.sku for p in found]
        state["last"] = "finder"
        if len(found) == 1:
            state["product"] = found[0].sku
        if not found:
            return self.persona.say("finder_none", lang), {"products": []}
        return self.results(found, lang)

    def results(self, found: list[Product], lang: str) -> tuple[str, dict[str, Any]]:
        """The finder's list: name, price and link of each product."""
        lines = [
            f"{n}. {display(p)} – {price_text(p.price_cents, lang)}"
            + (f" {p.url}" if p.url else "")
            for n, p in enumerate(found, start=1)
        ]
        facts = {"products": [product_facts(p, lang) for p in found]}
        return self.persona.say("finder_results", lang, list="\n".join(lines)), facts

    def product_follow_up(
        self, state: dict[str, Any], text: str, reading: Reading, lang: str
    ) -> tuple[str, dict[str, Any]] | None:
        """ "und in 42?", "gibts den auch in schwarz?", "was kostet der?" after a product answer;
        "was kosten die?" after the finder's list."""
        product = self.catalog.by_sku(str(state.get("product") or ""))
        if product is None:
            return self._results_follow_up(state, text, lang)
        other = self.catalog.find(text)
        if other is not None and other.product.sku != product.sku:
            return None
        size = size_in(text, reading)
        if reading.colour is not None or size is not None:
            return self.product(state, product, size, lang, reading.colour)
        words = set(words_of(text))
        own = set(words_of(f"{product.name} {product.brand} {product.category}"))
        if words - FOLLOW_UP_FILLER - PRICE_WORDS - STOCK_WORDS - own:
            return None  # it names something else
        if not words & (PRICE_WORDS | STOCK_WORDS | own):
            return None
        return self.product(state, product, None, lang, price=bool(words & PRICE_WORDS))

    def _results_follow_up(
        self, state: dict[str, Any], text: str, lang: str
    ) -> tuple[str, dict[str, Any]] | None:
        skus = state.get("found") or []
        if state.get("last") != "finder" or not skus:
            return None
        words = set(words_of(text))
        if not words & (PRICE_WORDS | STOCK_WORDS):
            return None
        if words - FOLLOW_UP_FILLER - PRICE_WORDS - STOCK_WORDS:
            return None
        found = [p for sku in skus if (p := self.catalog.by_sku(str(sku))) is not None]
        return self.results(found, lang)

    # --- orders -----------------------------------------------------------------------------

    def status(self, status: str, lang: str) -> str:
        """An order state as the customer reads it (unknown states as the shop names them)."""
        return self.persona.say(f"status_{status}", lang) if status in ORDER_STATUSES else status

    def order(
        self, state: dict[str, Any], number: str, status: str, tracking: str | None, lang: str
    ) -> tuple[str, dict[str, Any]]:
        """The status of a found order, remembered for follow-ups (without the second factor)."""
        state["order"] = {"number": number, "status": status, "tracking": tracking or ""}
        state["last"] = "order"
        return self._order_text(number, status, tracking, lang)

    def _order_text(
        self, number: str, status: str, tracking: str | None, lang: str
    ) -> tuple[str, dict[str, Any]]:
        facts: dict[str, Any] = {
            "order": number,
            "status": self.status(status, lang),
            "tracking": tracking or "",
        }
        key = "order_status_tracking" if tracking else "order_status"
        return self.persona.say(key, lang, **facts), facts

    def order_follow_up(
        self, state: Mapping[str, Any], text: str, lang: str
    ) -> tuple[str, dict[str, Any]] | None:
        """ "und wann kommt sie?" right after an order status: the status once more."""
        order = state.get("order")
        if state.get("last") != "order" or not isinstance(order, dict) or not order.get("status"):
            return None
        words = set(words_of(text))
        if not words & DELIVERY_WORDS or words - FOLLOW_UP_FILLER - DELIVERY_WORDS:
            return None
        return self._order_text(
            str(order.get("number")), str(order["status"]), order.get("tracking"), lang
        )
