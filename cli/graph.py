"""Rendering DOT to SVG/PNG with graphviz's `dot` (through the graphviz package, imported
only when a picture is asked for: it is slow to import)."""


class DotMissing(Exception):
    """graphviz's `dot` is not installed; .dot holds the DOT text to save instead."""

    def __init__(self, dot):
        self.dot = dot
        super().__init__("graphviz's `dot` program is not installed (apt-get install graphviz)")


def render_dot(dot, fmt):
    """The picture (bytes) of DOT text in format svg or png."""
    import graphviz
    try:
        return graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DotMissing(dot) from None
