"""The report as Markdown (report.md), for terminals, notebooks and code-review pages.

Images are referenced as files under `img/` beside it; collapsible blocks become
`<details>` elements, which GitHub-flavoured renderers fold and plain viewers show as text.
"""

from __future__ import annotations

from html import escape

from arcjobs.report.content import (
    Block,
    Code,
    Details,
    GridRow,
    Heading,
    Image,
    Para,
    Section,
    Table,
)

IMG_DIR = "img"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> str:
    lines = [
        "| " + " | ".join(map(_cell, t.header)) + " |",
        "|" + "|".join("---" for _ in t.header) + "|",
    ]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


def _block(b: Block) -> str:
    if isinstance(b, Para):
        return b.text
    if isinstance(b, Heading):
        return f"### {b.text}"
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Image):
        return f"![{b.caption}]({IMG_DIR}/{b.name})"
    if isinstance(b, GridRow):
        return " ".join(
            f"![{caption}]({IMG_DIR}/{img.name})" if img else f"({caption})"
            for caption, img in b.items
        )
    if isinstance(b, Code):
        return f"```python\n{b.text.rstrip()}\n```"
    if isinstance(b, Details):
        inner = "\n\n".join(_block(x) for x in b.blocks)
        return f"<details><summary>{escape(b.summary)}</summary>\n\n{inner}\n\n</details>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_block(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"
