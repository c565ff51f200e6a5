"""Path patterns as conary's policies read them ("filter expressions").

A pattern is a regular expression over the installed path, after macro expansion,
anchored the way conary anchored them, naturally for paths:

* a pattern starting with ``/`` is anchored at the start of the path;
* a pattern not ending in ``/`` or ``$`` is anchored at the end.

So ``%(datadir)s/doc/`` is everything below ``/usr/share/doc``, ``\\.la`` every path
ending in ``.la``, ``.*/include/.*\\.h`` every header below an ``include`` directory, and
``/usr/bin/tool`` exactly that path. (appbuild groups the pattern before anchoring it, so
``/a|/b`` means ``/a`` or ``/b``; conary anchored the two ends of the alternation.)
"""

from __future__ import annotations

import re

from appbuilder.core.errors import RecipeError


def anchored(pattern: str) -> str:
    """The regular expression conary made of *pattern* (see the module docstring)."""
    text = f"(?:{pattern})"
    if pattern.startswith("/"):
        text = "^" + text
    if not pattern.endswith(("/", "$")):
        text += "$"
    return text


def path_regex(pattern: str) -> re.Pattern:
    """*pattern* (macros already expanded) compiled for :meth:`re.Pattern.search`."""
    try:
        return re.compile(anchored(pattern))
    except re.error as exc:
        raise RecipeError(f"bad path pattern {pattern!r}: {exc}") from None


def check_pattern(pattern: str) -> str:
    """*pattern* if it compiles (macros unexpanded: ``%(x)s`` is not regex syntax)."""
    path_regex(pattern)
    return pattern
