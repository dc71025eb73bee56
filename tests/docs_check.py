"""Find what README.md and docs/ claim about the code: command lines, variables, paths, figures."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]
_SKIP = ("docs/decisions/",)  # decision records are history: they quote what was true then


@dataclass(frozen=True)
class Line:
    """One line of a docs file, and whether it sits in a fenced code block."""

    path: str
    number: int
    text: str
    in_code: bool

    def where(self) -> str:
        """`file:line` for error messages."""
        return f"{self.path}:{self.number}"


def docs_files() -> list[Path]:
    """README.md and every Markdown file under docs/ except the decision records."""
    files = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [f for f in files if not str(f.relative_to(REPO)).startswith(_SKIP)]


def lines(path: Path) -> Iterator[Line]:
    """The file's lines with their code-block state."""
    in_code = False
    rel = str(path.relative_to(REPO))
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.lstrip().startswith("```"):
            in_code = not in_code
            continue
        yield Line(rel, number, text, in_code)


_SPAN = re.compile(r"`([^`]+)`")
_COMMAND_START = re.compile(r"(?:^|\$\s+|[;(]\s*)(tresen\s+[a-z].*)")


def command_lines() -> Iterator[tuple[Line, str]]:
    """Every `tresen …` command line: in code blocks and in inline code spans."""
    for path in docs_files():
        for line in lines(path):
            texts = [line.text.strip()] if line.in_code else _SPAN.findall(line.text)
            for text in texts:
                text = re.sub(r"^\$\s+", "", text.strip())
                if not text.startswith("tresen "):
                    continue
                text = re.split(r"\s{3,}|\s+#\s", text)[0]
                for piece in text.split(";"):
                    piece = piece.strip()
                    if piece.startswith("tresen "):
                        yield line, piece


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _is_placeholder(word: str) -> bool:
    core = word.strip("[]().,…")
    return not core or core.isupper() or core in {"...", "…"}


def _option_names(command: Any) -> set[str]:
    names: set[str] = {"--help"}
    for param in command.params:
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return names


def _options_in(words: list[str]) -> Iterator[str]:
    for word in words:
        for part in word.strip("[]()").split("|"):
            part = part.strip("[]().,")
            if part.startswith("--") and not part[2:].isupper() and len(part) > 2:
                yield part.split("=", 1)[0]


def problems(root: Any, command: str, kind_options: dict[str, set[str]]) -> list[str]:
    """What is wrong with one documented command line against the live command tree."""
    words = _tokens(command)[1:]
    return list(_walk(root, ["tresen"], words, kind_options))


def _walk(
    node: Any, path: list[str], words: list[str], kinds: dict[str, set[str]]
) -> Iterator[str]:
    children = getattr(node, "commands", None)
    if children is not None:
        if not words or words[0].startswith("-"):
            return  # a group named on its own (`tresen bench`) or its --help
        word = words[0].strip("[]")
        if _is_placeholder(word):
            return  # `tresen sim KIND …`: nothing to check beyond the group
        for name in re.split(r"[|/]", word):
            if name not in children:
                yield f"{' '.join(path)} has no command {name!r}"
            else:
                yield from _walk(children[name], [*path, name], words[1:], kinds)
        return
    known = _option_names(node)
    if path[-2:] == ["channel", "add"]:
        kind_word = words[0] if words else ""
        extra: set[str] = {"--no-set-webhook"}
        for kind in kind_word.split("|"):
            if kind.startswith("-"):
                continue
            if kind in kinds:
                extra |= kinds[kind]
            elif not _is_placeholder(kind):
                yield f"tresen channel add has no channel kind {kind!r}"
        known |= extra if extra != {"--no-set-webhook"} else set().union(*kinds.values(), extra)
    if path[-2:] == ["channel", "set"]:
        known |= set().union(*kinds.values())
    for option in _options_in(words):
        if option not in known:
            yield f"{' '.join(path)} has no option {option}"


def env_names() -> Iterator[tuple[Line, str]]:
    """Every TRESEN_* name the docs mention."""
    for path in docs_files():
        for line in lines(path):
            for name in re.findall(r"\bTRESEN_[A-Z0-9_]*[A-Z0-9]\b", line.text):
                yield line, name


def code_text() -> str:
    """All Python source of the product, its tests and scripts, as one string."""
    parts = [p.read_text(encoding="utf-8") for p in (REPO / "src").rglob("*.py")]
    parts += [p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("*.py")]
    parts += [p.read_text(encoding="utf-8") for p in (REPO / "scripts").rglob("*") if p.is_file()]
    return "\n".join(parts)


_PATH = re.compile(
    r"(?:(?:GET|POST|PUT|PATCH|DELETE)\s+|http://127\.0\.0\.1:8000)?(/[A-Za-z0-9_\-{}<>./:]*)"
)


def url_paths(prefixes: set[str]) -> Iterator[tuple[Line, str]]:
    """Paths in inline code or code blocks whose first segment is one the web app serves."""
    for path in docs_files():
        for line in lines(path):
            if line.in_code:
                texts = [line.text]
            else:  # a span that is a path, not one that merely holds one (`web form /s/…`)
                texts = [t for t in _SPAN.findall(line.text) if _PATH.match(t.strip())]
            for text in texts:
                for match in _PATH.finditer(text):
                    start = match.start(1)
                    if (
                        start > 0
                        and text[start - 1] not in " `(\"'="
                        and not match.group(0).startswith(
                            ("GET", "POST", "PUT", "PATCH", "DELETE", "http")
                        )
                    ):
                        continue  # part of a file path or a URL of another host
                    found = match.group(1).rstrip(".:,")
                    first = found.strip("/").split("/")[0]
                    if first in prefixes and "..." not in found and "…" not in found:
                        yield line, found


def route_pattern(route_path: str) -> re.Pattern[str]:
    """A regex matching a route path, its parameters as any one segment."""
    parts = re.split(r"(\{[^}]+\})", route_path)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(body.rstrip("/") + "/?")


def path_exists(found: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether a documented path names a route ({x} and <x> as any segment; `/l/` a prefix)."""
    concrete = re.sub(r"\{[^}]+\}|<[^>]+>", "x", found.split("?")[0].split("#")[0])
    if concrete.endswith("/") and len(concrete) > 1:
        return any(p.fullmatch(concrete + "x") for p in patterns)
    return any(p.fullmatch(concrete) for p in patterns)


def json_figures(path: Path) -> Iterator[tuple[Line, Line | None]]:
    """Every JSON object line (a figure) with the command right above it (its first line)."""
    previous: Line | None = None
    for line in lines(path):
        text = line.text.strip()
        if text.startswith("{") and _is_json(text):
            yield line, previous
            continue
        if text and not (previous is not None and previous.text.rstrip().endswith("\\")):
            previous = line


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return text.endswith("...}") or text.endswith("…}")
