"""``appbuild explain``: recipe documentation from the actions' own docstrings, and
the recipe classes and functions a recipe file sees (conary's, :mod:`appbuilder.recipe.conary`)."""

from __future__ import annotations

import difflib
import inspect

from appbuilder.core.errors import AppbuildError
from appbuilder.recipe import base  # noqa: F401  (registers every action)
from appbuilder.recipe.actions import BUILD, POLICY, REGISTRY, SOURCE
from appbuilder.recipe.conary import recipe_names
from appbuilder.recipe.unsupported import unsupported


def _summary(cls) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def list_actions() -> str:
    lines = ["Recipe actions (appbuild explain NAME for details):"]
    for phase, title in ((SOURCE, "source actions"), (BUILD, "build actions"), (POLICY, "policy settings")):
        lines.append(f"\n{title}:")
        for name, cls in sorted(REGISTRY.items()):
            if cls.phase == phase:
                lines.append(f"  {name:32} {_summary(cls)}")
    lines.append("\nrecipe classes and functions (no import needed):")
    for name, (_, doc) in recipe_names().items():
        lines.append(f"  {name:32} {doc.splitlines()[0] if doc else ''}")
    return "\n".join(lines)


def explain(name: str) -> str:
    cls = REGISTRY.get(name)
    if cls is None and name in recipe_names():
        written, doc = recipe_names()[name]
        return f"{written}\n    [recipe file]\n\n{doc}"
    if cls is None and (why := unsupported(name, attribute=True) or unsupported(name, attribute=False)):
        raise AppbuildError(why)
    if cls is None:
        close = difflib.get_close_matches(name, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise AppbuildError(f"no action or policy named {name!r}{hint}")
    return cls.explain()
