"""Source lines through pygments: ANSI colour for a terminal, HTML for the report page.
pygments is imported on first use (most runs show no source)."""

import functools
import os


# The languages of QEMU's sources by file name suffix, C unless listed. (pygments' lookup
# by file name loads every installed pygments plugin first: IPython's takes seconds.)
LANGUAGES = {".rs": "rust"}


def _lexer(filename):
    return _lexer_named(LANGUAGES.get(os.path.splitext(filename)[1], "c"))


@functools.lru_cache
def _lexer_named(name):
    from pygments.lexers import get_lexer_by_name
    return get_lexer_by_name(name, stripnl=False)


def terminal(code, filename):
    """code (several lines) with ANSI colours, the same number of lines."""
    from pygments import highlight
    from pygments.formatters import TerminalFormatter
    return highlight(code, _lexer(filename), TerminalFormatter()).rstrip("\n")


STYLE = "friendly"


def html(code, filename, first_line, mark_line):
    """code as an HTML block (pygments' CSS classes, see css()), numbered from first_line,
    with mark_line highlighted."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    fmt = HtmlFormatter(linenos="inline", linenostart=first_line,
                        hl_lines=[mark_line - first_line + 1], style=STYLE)
    return highlight(code, _lexer(filename), fmt)


def css():
    """The style sheet of html()'s classes."""
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(style=STYLE).get_style_defs(".highlight")
