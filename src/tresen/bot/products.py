"""The product catalog: import (CSV/JSON), find by article number or name, sizes and stock."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

from tresen.bot.slots import Choices, colour_key, parse_size
from tresen.bot.text import clean, normalize, stem, tokenize

__all__ = ["Catalog", "CatalogError", "Hit", "Product", "parse_size", "price_text", "read_catalog"]

FIELDS = ("sku", "name", "brand", "category", "sizes", "price", "stock", "url", "colors")
MODEL_WORD_ALONE = 7  # a one-word model name this long ("Nachtfalke") names its product alone
MAX_PRODUCTS = 50_000
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,63}$")
_SKU_IN_TEXT = re.compile(r"(?<![\w.\-/])[A-Za-z0-9][A-Za-z0-9_.\-/]{2,63}(?![\w\-/])")
# Words that say nothing about which product is meant (German and English, folded).
_NOISE_TEXT = """
habt ihr haben sie gibt es den die das der ein eine einen in im noch auf lager vorratig
verfugbar grosse grossen gr size do you have is are the a an stock available still und and
what about how wie was kostet costs cost price preis fur for von of mit with ich suche
looking i m want mochte bitte please gerne bei euch your ist sind
"""
_NOISE = frozenset(_NOISE_TEXT.split())


class CatalogError(ValueError):
    """The catalog file is unreadable or a row is malformed (the message names row and field)."""


@dataclass(frozen=True)
class Product:
    """One product: sizes offered, stock per size (or in all), price in cents."""

    sku: str
    name: str
    brand: str
    category: str
    sizes: tuple[str, ...]
    price_cents: int
    stock: int
    url: str
    stock_by_size: Mapping[str, int] = field(default_factory=dict)
    colors: tuple[str, ...] = ()
    stock_by_color: Mapping[str, int] = field(default_factory=dict)

    def size_key(self, asked: str) -> str | None:
        """The offered size matching `asked` ("42,5" matches "42.5", "m" matches "M"), or None."""
        want = size_key(asked)
        return next((s for s in self.sizes if size_key(s) == want), None)

    def in_stock(self, size: str | None = None) -> bool:
        """Whether the product (in `size`, when given) can be bought now."""
        if size is None:
            return self.stock > 0
        offered = self.size_key(size)
        if offered is None:
            return False
        if self.stock_by_size:
            return self.stock_by_size.get(offered, 0) > 0
        return self.stock > 0

    def sizes_in_stock(self) -> list[str]:
        """Offered sizes that are in stock now."""
        return [s for s in self.sizes if self.in_stock(s)]

    def colour(self, asked: str) -> str | None:
        """The offered colour matching `asked` ("black" matches "schwarz"), or None."""
        want = colour_key(asked)
        return next((c for c in self.colors if colour_key(c) == want), None)

    def in_colour(self, asked: str) -> bool:
        """Whether the product comes in `asked` and that colour is in stock now."""
        offered = self.colour(asked)
        if offered is None or not self.in_stock():
            return False
        return self.stock_by_color.get(offered, 1) > 0 if self.stock_by_color else True

    def colours_in_stock(self) -> list[str]:
        """Offered colours that are in stock now."""
        return [c for c in self.colors if self.in_colour(c)]


def size_key(value: str) -> str:
    """A size as compared: shoe sizes as numbers ("42,0" = "42"), letters upper-cased."""
    text = clean(str(value)).replace(",", ".").strip()
    try:
        return f"{float(text):g}"
    except ValueError:
        return text.upper()


def price_text(cents: int, language: str) -> str:
    """12990 → "129,90 €" (German) or "€129.90" (English)."""
    whole, part = divmod(cents, 100)
    if language == "de":
        return f"{whole:,}".replace(",", ".") + f",{part:02d} €"
    return f"€{whole:,}.{part:02d}"


# --- import ---------------------------------------------------------------------------------------


def _price(raw: Any, where: str) -> int:
    text = str(raw).strip().replace("€", "").replace("EUR", "").strip()
    if re.fullmatch(r"\d{1,3}(\.\d{3})*,\d{1,2}|\d+,\d{1,2}", text):
        text = text.replace(".", "").replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CatalogError(f"{where}: 'price' must be a number like 89.95, got {raw!r}") from None
    if value < 0 or value > 1_000_000:
        raise CatalogError(f"{where}: 'price' must be between 0 and 1,000,000")
    return int((value * 100).quantize(Decimal(1)))


def _sizes(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    items = raw if isinstance(raw, list) else re.split(r"[;|]", str(raw))
    sizes = tuple(dict.fromkeys(clean(str(s)) for s in items if clean(str(s))))
    if len(sizes) > 100 or any(len(s) > 20 for s in sizes):
        raise CatalogError(f"{where}: 'sizes' has at most 100 sizes of at most 20 characters")
    return sizes


def _stock(raw: Any, sizes: tuple[str, ...], where: str) -> tuple[int, dict[str, int]]:
    """A number (all sizes together), or per size: {"42": 3} in JSON, "42:3;43:0" in CSV."""
    if raw is None or raw == "":
        return 0, {}
    if isinstance(raw, int) and not isinstance(raw, bool):
        by_size: dict[str, int] = {}
        total = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*\d+\s*", raw):
        by_size, total = {}, int(raw)
    else:
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(raw, dict):
            pairs = raw.items()
        elif isinstance(raw, str):
            pairs = [
                tuple(p.split(":", 1)) if ":" in p else (p, "") for p in re.split(r"[;|]", raw)
            ]
        else:
            raise CatalogError(f"{where}: 'stock' must be a number or per size like 42:3;43:0")
        by_size = {}
        offered = {size_key(s): s for s in sizes}
        for size, count in pairs:
            size_name = offered.get(size_key(str(size)))
            if size_name is None:
                raise CatalogError(f"{where}: 'stock' names size {size!r} that is not in 'sizes'")
            try:
                by_size[size_name] = int(str(count).strip())
            except ValueError:
                raise CatalogError(
                    f"{where}: 'stock' for size {size!r} is not a whole number"
                ) from None
        total = sum(by_size.values())
    if total < 0 or any(v < 0 for v in by_size.values()):
        raise CatalogError(f"{where}: 'stock' cannot be negative")
    return total, by_size


def _colours(raw: Any, where: str) -> tuple[tuple[str, ...], dict[str, int]]:
    """Colours as a list ("schwarz|grau" in CSV), or with stock per colour ({"schwarz": 3})."""
    if raw is None or raw == "" or raw == []:
        return (), {}
    if isinstance(raw, dict):
        pairs: list[tuple[Any, Any]] = list(raw.items())
    elif isinstance(raw, list):
        pairs = [(c, None) for c in raw]
    elif isinstance(raw, str):
        pairs = [
            (p.split(":", 1)[0], p.split(":", 1)[1]) if ":" in p else (p, None)
            for p in re.split(r"[;|]", raw)
        ]
    else:
        raise CatalogError(f"{where}: 'colors' must be a list of colours or colour: stock")
    names: list[str] = []
    stock: dict[str, int] = {}
    for name, count in pairs:
        colour = clean(str(name))
        if not colour:
            continue
        if len(colour) > 40 or len(names) >= 50:
            raise CatalogError(f"{where}: 'colors' has at most 50 colours of at most 40 characters")
        if count not in (None, ""):
            try:
                stock[colour] = int(str(count).strip())
            except ValueError:
                raise CatalogError(
                    f"{where}: 'colors' stock for {colour!r} is not a whole number"
                ) from None
            if stock[colour] < 0:
                raise CatalogError(f"{where}: 'colors' stock cannot be negative")
        names.append(colour)
    return tuple(dict.fromkeys(names)), stock


def parse_product(row: Mapping[str, Any], where: str) -> Product:
    """Validate one catalog row (from CSV or JSON)."""
    sku = clean(str(row.get("sku") or ""))
    if not _SKU.match(sku):
        raise CatalogError(
            f"{where}: 'sku' must be 1–64 letters, digits or _ . - /, got {row.get('sku')!r}"
        )
    where = f"{where} (sku {sku!r})"
    name = clean(str(row.get("name") or ""))
    if not name or len(name) > 300:
        raise CatalogError(f"{where}: 'name' must be 1–300 characters")
    brand, category = clean(str(row.get("brand") or "")), clean(str(row.get("category") or ""))
    if len(brand) > 100 or len(category) > 100:
        raise CatalogError(f"{where}: 'brand' and 'category' have at most 100 characters")
    if row.get("price") in (None, ""):
        raise CatalogError(f"{where}: 'price' is missing")
    sizes = _sizes(row.get("sizes"), where)
    stock, by_size = _stock(row.get("stock"), sizes, where)
    url = clean(str(row.get("url") or ""))
    if url and not re.match(r"^https?://[^\s]+$", url):
        raise CatalogError(f"{where}: 'url' must start with http:// or https://")
    if len(url) > 1000:
        raise CatalogError(f"{where}: 'url' has at most 1000 characters")
    colors, by_colour = _colours(row.get("colors"), where)
    return Product(
        sku,
        name,
        brand,
        category,
        sizes,
        _price(row["price"], where),
        stock,
        url,
        by_size,
        colors,
        by_colour,
    )


def parse_catalog(rows: Sequence[Mapping[str, Any]], source: str) -> list[Product]:
    """Validate all rows; duplicates of an article number are an error."""
    if len(rows) > MAX_PRODUCTS:
        raise CatalogError(f"{source}: at most {MAX_PRODUCTS} products per import")
    products: list[Product] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise CatalogError(
                f"{source}: product {n}: expected an object with {', '.join(FIELDS)}"
            )
        product = parse_product(row, f"{source}: product {n}")
        if product.sku.upper() in seen:
            raise CatalogError(f"{source}: product {n}: duplicate sku {product.sku!r}")
        seen.add(product.sku.upper())
        products.append(product)
    return products


def read_catalog(path: str | Path) -> list[Product]:
    """Read a catalog file: JSON (a list, or {"products": [...]}) or CSV with a header row."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    return parse_catalog_text(raw, str(path), json_suffix=path.suffix.lower() == ".json")


def parse_catalog_text(raw: str, source: str, *, json_suffix: bool = False) -> list[Product]:
    """A catalog from its text (an upload or a file): JSON, or CSV with a header row."""
    if json_suffix or raw.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{source}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("products")
        if not isinstance(data, list):
            raise CatalogError(f'{source}: expected a list of products or {{"products": [...]}}')
        return parse_catalog(data, source)
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(raw[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(raw), dialect=dialect)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [f for f in ("sku", "name", "price") if f not in header]
    if missing:
        raise CatalogError(f"{source}: the CSV header lacks {', '.join(missing)}")
    rows = [{(k or "").strip().lower(): v for k, v in row.items()} for row in reader]
    return parse_catalog(rows, source)


# --- finding --------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w for w in tokenize(normalize(text)) if w not in _NOISE]


def _stems(words: Iterable[str]) -> set[str]:
    words = list(words)
    return set(stem(words, "de")) | set(stem(words, "en")) | set(words)


@dataclass(frozen=True)
class Hit:
    """A product found in a message, and how sure the finder is (0–1)."""

    product: Product
    score: float
    by_sku: bool = False


@dataclass
class Catalog:
    """A workspace's products, indexed for the bot."""

    products: tuple[Product, ...]
    _by_sku: dict[str, Product] = field(default_factory=dict, init=False, repr=False)
    _names: list[tuple[Product, list[str], list[str]]] = field(
        default_factory=list, init=False, repr=False
    )
    _by_word: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)
    _by_stem: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False)
    _long_words: list[str] = field(default_factory=list, init=False, repr=False)
    _brands: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_sku = {p.sku.upper(): p for p in self.products}
        categories = {c: Choices((c,)) for c in self.categories()}
        names_kind: dict[tuple[str, str], bool] = {}
        for n, p in enumerate(self.products):
            words = [w for w in tokenize(normalize(p.name)) if w not in _NOISE] or tokenize(
                normalize(p.name)
            )
            # The model: the name without its category word and brand ("Radschuh Tour" → tour).
            kind = categories.get(p.category)
            brand = set(tokenize(normalize(p.brand)))
            model = []
            for w in words:
                if kind is not None and (p.category, w) not in names_kind:
                    names_kind[(p.category, w)] = kind.names(p.category, w)
                if w not in brand and not names_kind.get((p.category, w), False):
                    model.append(w)
            # Only a model shorter than the name can name the product where the name does not.
            self._names.append((p, words, model if len(model) < len(words) else []))
            for w in {*words, *model}:
                self._by_word.setdefault(w, set()).add(n)
        for w in self._by_word:
            for s in _stems([w]):
                self._by_stem.setdefault(s, set()).add(w)
        self._long_words = [w for w in self._by_word if len(w) >= 4]
        self._brands = {w: p.brand for p in self.products for w in tokenize(normalize(p.brand))}

    def __bool__(self) -> bool:
        return bool(self.products)

    def by_sku(self, sku: str) -> Product | None:
        """The product with this article number (any case)."""
        return self._by_sku.get(clean(sku).upper())

    def categories(self) -> list[str]:
        """Categories in catalog order."""
        return list(dict.fromkeys(p.category for p in self.products if p.category))

    def brands(self) -> list[str]:
        """Brands in catalog order."""
        return list(dict.fromkeys(p.brand for p in self.products if p.brand))

    def colours(self) -> list[str]:
        """Colours of all products, in catalog order (one spelling per colour)."""
        seen: dict[str, str] = {}
        for p in self.products:
            for c in p.colors:
                seen.setdefault(colour_key(c), c)
        return list(seen.values())

    def find(self, text: str) -> Hit | None:
        """The product a message names: by article number, by name, or by brand and model
        ("Pedalo Tour"); typos and stems allowed."""
        for token in _SKU_IN_TEXT.findall(clean(text)):
            hit = self.by_sku(token)
            if hit is not None and any(ch.isdigit() for ch in token):
                return Hit(hit, 1.0, by_sku=True)
        query = _words(text)
        if not query:
            return None
        # Name words the message has: the same stem, or a typo of a long word (ratio ≥ 84).
        present: set[str] = set()
        for stem_ in _stems(query):
            present |= self._by_stem.get(stem_, set())
        for q in query:
            if len(q) >= 4:
                present.update(
                    hit[0]
                    for hit in process.extract(
                        q, self._long_words, scorer=fuzz.ratio, score_cutoff=84, limit=None
                    )
                )
        brands = {self._brands[q].casefold() for q in query if q in self._brands}
        candidates = set().union(*(self._by_word[w] for w in present)) if present else set()
        best: Hit | None = None
        for n in sorted(candidates):
            product, words, model = self._names[n]
            score = sum(1 for w in words if w in present) / len(words)
            # A name of one or two words must be there whole; longer names may miss one word.
            needed = 1.0 if len(words) <= 2 else (len(words) - 1) / len(words)
            if score < needed:
                by_model = (
                    bool(model)
                    and all(w in present for w in model)
                    and (
                        product.brand.casefold() in brands
                        or len(model) >= 2
                        or len(model[0]) >= MODEL_WORD_ALONE
                    )
                )
                if not by_model:
                    continue
                score = 0.9
            if best is None or score > best.score:
                best = Hit(product, score)
        return best

    def search(
        self,
        category: str | None = None,
        size: str | None = None,
        brand: str | None = None,
        budget_cents: int | None = None,
        limit: int = 3,
        colour: str | None = None,
    ) -> list[Product]:
        """Products in stock that fit; cheapest first."""
        found = [
            p
            for p in self.products
            if (category is None or p.category.casefold() == category.casefold())
            and (brand is None or p.brand.casefold() == brand.casefold())
            and (budget_cents is None or p.price_cents <= budget_cents)
            and (colour is None or p.in_colour(colour))
            and p.in_stock(size if size and p.sizes else None)
        ]
        return sorted(found, key=lambda p: (p.price_cents, p.name))[:limit]


def product_facts(product: Product, language: str, size: str | None = None) -> dict[str, Any]:
    """What the bot may say about a product (also the grounding facts for LLM phrasing)."""
    facts: dict[str, Any] = {
        "product": product.name,
        "brand": product.brand,
        "sku": product.sku,
        "price": price_text(product.price_cents, language),
        "url": product.url,
        "sizes": ", ".join(product.sizes_in_stock()) or "–",
    }
    if size is not None:
        facts["size"] = size.replace(".", ",") if language == "de" else size
    return facts


def from_rows(rows: Iterable[Any]) -> Catalog:
    """The catalog from `bot_products` rows."""
    products = []
    for r in rows:
        data = r.sizes or {}
        products.append(
            Product(
                r.sku,
                r.name,
                r.brand,
                r.category,
                tuple(data.get("sizes", [])),
                r.price_cents,
                r.stock,
                r.url,
                dict(data.get("stock", {})),
                tuple(data.get("colors", [])),
                dict(data.get("color_stock", {})),
            )
        )
    return Catalog(tuple(products))
