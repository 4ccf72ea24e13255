"""MkDocs hook: render the docstrings' reST roles (``:func:`x```) as plain code in the HTML.

The docstrings are read by Sphinx-style tools and by humans in a terminal, so they keep the
roles; mkdocstrings renders their Markdown, where a role would print as ``:func:``.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):(?=<code>)")


def on_page_content(html: str, **_: object) -> str:
    return _ROLE.sub("", html)
