"""The CLI reference: every command of the live command tree, its options and one example."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tresen.docsgen import channel_options
from tresen.docsgen.examples import EXAMPLES


def commands(root: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """`(name, command)` of every leaf command under `root`, in the tree's order."""
    children = getattr(root, "commands", None)
    if children is None:
        yield " ".join(path), root
        return
    for name, child in children.items():
        if not getattr(child, "hidden", False):
            yield from commands(child, (*path, name))


def _visible(command: Any) -> list[Any]:
    return [p for p in command.params if not getattr(p, "hidden", False)]


def _metavar(param: Any) -> str:
    return str(param.name).upper()


def usage(name: str, command: Any) -> str:
    """`tresen NAME ARG [ARG] --required VALUE [OPTIONS]`."""
    parts = ["tresen", name]
    optional = False
    for p in _visible(command):
        if p.param_type_name == "argument":
            parts.append(_metavar(p) if p.required else f"[{_metavar(p)}]")
        elif p.required:
            parts.append(f"{p.opts[0]} {_metavar(p)}")
        else:
            optional = True
    if optional:
        parts.append("[OPTIONS]")
    if getattr(command, "allow_extra_args", False) or (command.context_settings or {}).get(
        "allow_extra_args"
    ):
        parts.append("[--KIND-OPTION VALUE ...]")
    return " ".join(parts)


def _default(param: Any) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False) and not param.secondary_opts:
        return "off"
    value = param.default
    if getattr(param, "is_flag", False):
        return f"`{param.opts[0] if value else param.secondary_opts[0]}`"
    if value is None or value == "" or value == [] or value == ():
        return "–"
    return f"`{value}`"


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{_metavar(param)}`"
    names = [*param.opts, *param.secondary_opts]
    text = " / ".join(f"`{n}`" for n in names)
    return text + (" (repeatable)" if getattr(param, "multiple", False) else "")


ARGUMENT_MEANINGS = {
    "campaign": "The campaign's id or name (tresen broadcast list).",
    "channel_id": "The channel's id (tresen channel list).",
    "email": "The person's e-mail address.",
    "team": "The team's name or id.",
    "keyword": "The word customers write after START or STOP.",
}
"""What an argument without help text means, by its name (shown in the reference only)."""


def _meaning(param: Any) -> str:
    text = _cell(getattr(param, "help", None))
    if not text and param.param_type_name == "argument":
        return ARGUMENT_MEANINGS.get(str(param.name), "")
    return text


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _help(command: Any) -> str:
    paragraphs = [" ".join(p.split()) for p in (command.help or "").split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p and p != "\b")


def section(name: str, command: Any) -> list[str]:
    """The Markdown of one command."""
    lines = [f"### `tresen {name}`", "", _help(command), "", "```text", usage(name, command), "```"]
    params = _visible(command)
    if params:
        lines += ["", "| argument / option | default | meaning |", "|---|---|---|"]
        for p in params:
            lines.append(f"| {_names(p)} | {_default(p)} | {_meaning(p)} |")
    if name == "channel add":
        lines += ["", "The options of each kind (`--no-set-webhook` for every kind):", ""]
        lines.append(channel_options.markdown())
    elif command.epilog:
        lines += ["", "```text", *[line.rstrip() for line in command.epilog.strip().splitlines()]]
        lines.append("```")
    example = EXAMPLES.get(name)
    lines += ["", "Example:", "", "```bash", example or f"(no example for `{name}` yet)", "```"]
    return lines


def missing_examples(root: Any) -> list[str]:
    """Commands the reference has no example for."""
    return [name for name, _ in commands(root) if name not in EXAMPLES]


def stale_examples(root: Any) -> list[str]:
    """Examples of commands that no longer exist."""
    names = {name for name, _ in commands(root)}
    return sorted(set(EXAMPLES) - names)


def markdown(root: Any) -> str:
    """The reference of every command, grouped by its first word."""
    lines: list[str] = []
    group = None
    for name, command in commands(root):
        first = name.split()[0]
        if first != group and " " in name:
            group = first
            help_text = _help(root.commands[first]).split("\n")[0]
            lines += [f"## `tresen {first}`", "", help_text, ""]
        elif " " not in name and group is not None:
            group = None
        lines += [*section(name, command), ""]
    return "\n".join(lines).strip()
