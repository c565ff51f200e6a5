"""Python 2 habits in conary recipes, read as Python 3 where the meaning is certain.

Conary recipes were Python 2: ``r.SetModes('%(bindir)s/x', 0755)`` is a mode written as a
Python 2 octal literal, which Python 3 refuses. :func:`rewrite_octal` finds such
literals with :mod:`tokenize` (so text in strings and comments is never touched) and
writes them as ``0o755``; everything else in the file stays as it was, on the same
line, so every ``file:line`` in a later message is still right. Each rewrite is
reported as a warning naming ``file:line``.
"""

from __future__ import annotations

import io
import tokenize

_OCTAL_DIGITS = set("01234567")


def rewrite_octal(source: str, path: str) -> tuple[str, list[str]]:
    """*source* with each Python 2 octal literal (``0755``) written as ``0o755``, and one
    warning per literal (``path:line: ...``). A source the tokenizer cannot read is
    returned unchanged: compiling it reports the real error."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source, []
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, new text)
    warnings = []
    for first, second in zip(tokens, tokens[1:]):
        # Python 3's tokenizer reads ``0755`` as NUMBER '0' (or '00') right before NUMBER '755'
        if (first.type == tokenize.NUMBER and second.type == tokenize.NUMBER and set(first.string) == {"0"}
                and first.end == second.start and second.string.isdigit()):
            digits = (first.string + second.string).lstrip("0") or "0"
            if not set(digits) <= _OCTAL_DIGITS:
                continue  # 089 was an error in Python 2 too: let the compiler say so
            old = first.string + second.string
            edits.append((first.start[0], first.start[1], second.end[1], f"0o{digits}"))
            warnings.append(f"{path}:{first.start[0]}: Python 2 octal literal {old} read as 0o{digits} "
                            f"(write 0o{digits})")
    if not edits:
        return source, []
    lines = io.StringIO(source).readlines()  # the lines as the tokenizer counted them
    for row, start, end, text in sorted(edits, reverse=True):  # right to left: columns stay valid
        line = lines[row - 1]
        lines[row - 1] = line[:start] + text + line[end:]
    return "".join(lines), warnings
