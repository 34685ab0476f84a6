"""`report --html`: one self-contained page with the report, highlighted source and the
block graph's SVG inline."""

import dataclasses
import html

from . import highlight

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
pre {{ font-size: 13px; line-height: 1.3; }}
h2 {{ border-bottom: 1px solid #ccc; }}
.graph svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>{title}</h1>
<pre>{report}</pre>
{source}
{graph}
</body></html>
"""


def page(rep, report_text, svg):
    """The HTML page. report_text is the text report rendered without its source lines;
    svg (bytes or None) the block graph picture."""
    title = html.escape(f"QEMU core report: {rep.executable or 'unknown program'}")
    blocks = []
    for src in rep.source:
        code = "\n".join(text for _, text in src.lines)
        blocks.append(f"<h3>{html.escape(src.file)}:{src.line}</h3>"
                      + highlight.html(code, src.file, src.lines[0][0], src.line))
    source = "<h2>Source</h2>\n" + "\n".join(blocks) if blocks else ""
    graph = ""
    if svg:
        text = svg.decode("utf-8")
        text = text[text.find("<svg"):]  # drop the XML prolog and DOCTYPE
        graph = f'<h2>Block graph</h2>\n<div class="graph">{text}</div>'
    return PAGE.format(title=title, report=html.escape(report_text), source=source, graph=graph)


def without_source(rep):
    return dataclasses.replace(rep, source=[])
