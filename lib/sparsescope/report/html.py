"""The report's page furniture: numbered figures with captions and alt text, numbered tables that fit the
page, a table of contents whose page numbers WeasyPrint fills in, and Markdown rendered from templates."""

from __future__ import annotations

import base64
import functools
import html
import io
import re
from pathlib import Path

import pandas as pd

TEMPLATES = Path(__file__).with_name("templates")


def anchor(title: str) -> str:
    """The id nbconvert gives a Markdown heading ('Model Selection' -> 'Model-Selection')."""
    return re.sub(r"\s+", "-", title.strip())


ZWSP = "\u200b"  # a zero-width space: a place a line may break, invisible in print


def breakable(text: str) -> str:
    """Text with break opportunities after dots and underscores, so a long tensor name wraps in a narrow
    cell instead of running past the page edge."""
    return str(text).replace(".", "." + ZWSP).replace("_", "_" + ZWSP)


class Numbering:
    """Figures and tables numbered in the order they are shown."""

    def __init__(self):
        self.figures = self.tables = 0

    def figure(self, fig, caption: str, alt: str, dpi: int = 200) -> str:
        """A matplotlib figure as <figure>: PNG at print size (the figure's own width in mm), its alt text,
        and 'Figure N.' with the caption."""
        import matplotlib.pyplot as plt

        self.figures += 1
        width_mm = min(fig.get_figwidth() * 25.4, 186)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.04)
        plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode()
        return (
            f'<figure class="ss-figure" id="figure-{self.figures}">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" '
            f'style="width:{width_mm:.0f}mm">'
            f"<figcaption><b>Figure {self.figures}.</b> {inline(caption)}</figcaption></figure>"
        )

    def table(
        self,
        df: pd.DataFrame,
        caption: str,
        note: str = "",
        wide: bool = False,
        breakable_columns: tuple[str, ...] = (),
    ) -> str:
        """A DataFrame as a numbered table: caption above, an optional note below; `wide` sets a smaller
        font for tables with many columns; names in `breakable_columns` may wrap at dots."""
        self.tables += 1
        foot = f'<p class="ss-note">{inline(note)}</p>' if note else ""
        return (
            f'<div class="ss-table-box" id="table-{self.tables}"><p class="ss-caption"><b>Table '
            f"{self.tables}.</b> {inline(caption)}</p>{table_html(df, wide, breakable_columns)}{foot}</div>"
        )


NUMBER = re.compile(r"^[\d.,\s%×–+\-]+( ?(MB|GB|s|M))?( \(.*\))?$")


def table_html(df: pd.DataFrame, wide: bool = False, breakable_columns: tuple[str, ...] = ()) -> str:
    """One header row (the index levels become the first columns, kept unbroken), numbers right-aligned,
    text escaped. With two or more index levels each group of rows is its own <tbody>, printed whole
    (print.css), so a group never loses its label across a page break; its label shows once."""
    named = isinstance(df.index, pd.MultiIndex) or df.index.name is not None
    keys = df.index.nlevels if named else 0
    flat = df.reset_index() if named else df.reset_index(drop=True)
    if not named and not isinstance(df.index, pd.RangeIndex):
        flat.insert(0, "", list(df.index))
        keys = 1
    grouped = isinstance(df.index, pd.MultiIndex) and df.index.nlevels > 1
    head = "".join(f"<th>{html.escape(unbroken_ranges(str(c)))}</th>" for c in flat.columns)
    groups: list[list[str]] = []
    previous = None
    for values in flat.itertuples(index=False):
        cells = []
        for i, (col, value) in enumerate(zip(flat.columns, values)):
            text = "—" if value is None or (isinstance(value, float) and value != value) else str(value)
            if i == 0 and grouped:
                if text != previous or not groups:
                    groups.append([])
                previous, text = text, text if not groups[-1] else ""
            body = html.escape(breakable(text) if col in breakable_columns else unbroken_ranges(text))
            kind = ' class="ss-key"' if i < keys else ' class="ss-num"' if NUMBER.match(text) else ""
            cells.append(f"<td{kind}>{body}</td>")
        if not groups:
            groups.append([])
        groups[-1].append(f"<tr>{''.join(cells)}</tr>")
    tbody = '<tbody class="ss-group">' if grouped else "<tbody>"
    body = "".join(f"{tbody}{''.join(rows)}</tbody>" for rows in groups)
    classes = "ss-table ss-wide" if wide else "ss-table"
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead>{body}</table>'


ABS_BARS = re.compile(r"\|([^|\s]{1,12})\|")
RANGE_DASH = re.compile(r"(?<=[\d%×])–(?=[\d−-])")


def unbroken_ranges(text: str) -> str:
    """'0.0787–0.0799' kept on one line: word joiners around a range's dash, where a line may otherwise
    break (after an en dash), so an interval never wraps mid-value; a space before '[' still may."""
    text = RANGE_DASH.sub("\u2060–\u2060", text)
    return ABS_BARS.sub(lambda m: "|\u2060" + m.group(1) + "\u2060|", text)  # '|w|' never splits at a bar


def inline(text: str) -> str:
    """Markdown-lite for captions and notes: `code` and **bold**, the rest escaped."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", lambda m: f"<code>{breakable(m.group(1))}</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


def markdown_html(text: str) -> str:
    """Markdown to HTML as nbconvert renders it (mistune), headings given the ids nbconvert gives them."""
    import mistune
    out = mistune.html(text)
    return re.sub(r"<h([1-6])>(.*?)</h\1>",
                  lambda m: f'<h{m.group(1)} id="{anchor(html.unescape(re.sub("<[^>]+>", "", m.group(2))))}">'
                            f"{m.group(2)}</h{m.group(1)}>", out)


def pack(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Text that leads into a figure or table travels with it: each Markdown part directly followed by an
    HTML part becomes one HTML part (the text in a div.ss-lead that keeps to what follows, print.css), so no
    heading or lead-in is left at the foot of a page above a figure that moved on."""
    out: list[tuple[str, str]] = []
    for kind, body in parts:
        if kind == "html" and out and out[-1][0] == "md":
            lead = out.pop()[1]
            body = f'<div class="ss-lead">{markdown_html(lead)}</div>{body}'
        out.append((kind, body))
    return out


def toc(sections: list[tuple[int, str]]) -> str:
    """Contents with page numbers: WeasyPrint's target-counter fills them in the PDF (print.css)."""
    items = "".join(
        f'<li class="toc-{level}"><a href="#{anchor(title)}">{html.escape(title)}</a></li>'
        for level, title in sections
    )
    return f'<nav class="ss-toc"><p class="ss-toc-title">Contents</p><ul>{items}</ul></nav>'


@functools.cache
def environment():
    """The one Jinja environment of the report's templates, with the filters the prose formats numbers by."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from .facts import join, megabytes, millions, num, pct, plural, ratio, span

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(pct=pct, num=num, span=span, join_and=join, strong=lambda text: f"**{text}**",
                       whole="{:.0%}".format, thousands="{:,}".format, plural=plural, millions=millions,
                       ratio=ratio, megabytes=megabytes)
    env.globals["zip"] = zip
    return env


def tidy(text: str) -> str:
    """Markdown from a template: blank runs of lines collapsed, so a paragraph whose conditions all fail
    leaves no holes."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render(name: str, **facts) -> str:
    """A Markdown template (templates/<name>.md.j2) rendered with the facts, tidied."""
    return tidy(environment().get_template(f"{name}.md.j2").render(**facts))


def say(name: str, **facts):
    """A section's template (templates/<name>.md.j2) as a module: each macro is one of the section's headings,
    paragraphs or captions, called with its facts and returning the text as written; str() of it is the
    template's own text, rendered with `facts` (a template with a body needs them)."""
    template = environment().get_template(f"{name}.md.j2")
    return template.make_module(facts) if facts else template.module
