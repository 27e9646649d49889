"""The report as one self-contained HTML page.

Images are embedded as `data:` URIs and the style sheet is inline, with no script and no
external reference, so `index.html` alone opens offline — copied off a cluster, attached to
a message — exactly as it does in the report directory.
"""

from __future__ import annotations

import base64
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

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .2rem .45rem; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
figure { margin: .8rem 0; } figcaption { font-size: .8rem; color: #555; }
.grids { display: flex; flex-wrap: wrap; gap: .9rem; align-items: flex-start; margin: .5rem 0; }
.grids figure { margin: 0; } .grids figcaption { max-width: 10rem; } .grids img { image-rendering: pixelated; }
.missing { font-size: .8rem; color: #a00; }
pre { background: #f7f7f7; padding: .6rem; overflow-x: auto; font-size: .8rem; }
details { margin: .4rem 0; } summary { cursor: pointer; }
"""


def _img(img: Image) -> str:
    uri = "data:image/png;base64," + base64.b64encode(img.png).decode()
    return f'<img src="{uri}" alt="{escape(img.caption)}">'


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).replace(",", "").lstrip("-").isdigit() or text == "–"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if _is_number(c) else f"<td>{escape(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in t.rows
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _block(b: Block) -> str:
    if isinstance(b, Para):
        return f"<p>{escape(b.text)}</p>"
    if isinstance(b, Heading):
        return f"<h3>{escape(b.text)}</h3>"
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Image):
        return f"<figure>{_img(b)}<figcaption>{escape(b.caption)}</figcaption></figure>"
    if isinstance(b, GridRow):
        cells = "".join(
            f"<figure>{_img(img) if img else '<div class=missing>–</div>'}"
            f"<figcaption>{escape(caption)}</figcaption></figure>"
            for caption, img in b.items
        )
        return f'<div class="grids">{cells}</div>'
    if isinstance(b, Code):
        return f"<pre><code>{escape(b.text)}</code></pre>"
    if isinstance(b, Details):
        inner = "".join(_block(x) for x in b.blocks)
        return f"<details><summary>{escape(b.summary)}</summary>{inner}</details>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render(title: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>'
        + "".join(_block(b) for b in s.blocks)
        + "</section>"
        for s in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )
