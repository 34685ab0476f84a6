"""Source lines through pygments: ANSI colour for a terminal, HTML for the report page.
pygments is imported on first use (most runs show no source)."""


def _lexer(filename):
    from pygments.lexers import CLexer, get_lexer_for_filename
    from pygments.util import ClassNotFound
    try:
        return get_lexer_for_filename(filename, stripnl=False, stripall=False)
    except ClassNotFound:
        return CLexer(stripnl=False)


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
