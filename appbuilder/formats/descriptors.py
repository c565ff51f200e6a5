"""Rendering the descriptor templates (.vmx, .ovf, .mf, AMI manifest).

Templates are looked up in a search path: a workspace's ``formats/`` first, then the
package's ``appbuilder/formats/data/`` (:func:`appbuilder.formats.specs.template_dirs`),
so a workspace overrides a packaged template by giving one of the same name.

Templates are jinja2 with ``StrictUndefined``: a name the template uses but the
context lacks is an error, never an empty string. XML templates (``*.ovf.j2``,
``*.xml.j2``) are autoescaped. What a template sees:

``meta``            the :class:`~appbuilder.assemble.meta.ImageMeta` (``meta.derived_uuid('x')``)
``vars``            the format's ``vars`` overlaid with its ``arch_vars`` for ``meta.arch``
``spec``            the format (:class:`~appbuilder.formats.families.base.Format`)
``disk``            the disk file: ``.name``, ``.size``, ``.sha256``
``files``           descriptors rendered before this one (same attributes)
``manifest_files``  ``files`` then ``disk``: what a manifest lists

Filters: ``vmx`` (quote a value for a .vmx file), ``vmx_uuid`` (VMware's
``56 4d ...-...`` UUID notation); global ``raise(message)`` fails the rendering.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import jinja2

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import sha256_file


class DescriptorError(AppbuildError):
    """A descriptor template is broken or uses something the context lacks."""


@dataclass
class FileInfo:
    """A file a template may describe; the sha256 is computed on first use."""

    name: str
    path: Path
    _sha256: Callable[[], str] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @functools.cached_property
    def sha256(self) -> str:
        return self._sha256() if self._sha256 else sha256_file(self.path)


def vmx_quote(value) -> str:
    """A value for ``key = "value"`` in a .vmx file (VMware escapes with |XX hex)."""
    text = str(value)
    return "".join(f"|{ord(c):02X}" if c in '"|#' or ord(c) < 0x20 else c for c in text)


def vmx_uuid(value: uuid.UUID | str) -> str:
    """``56 4d 9a ... 11-22 33 ...``: how .vmx files write uuid.bios."""
    b = uuid.UUID(str(value)).bytes
    return " ".join(f"{x:02x}" for x in b[:8]) + "-" + " ".join(f"{x:02x}" for x in b[8:])


def _raise(message: str):
    raise DescriptorError(message)


@functools.lru_cache(maxsize=8)
def environment(templates_dirs: tuple[Path, ...]) -> jinja2.Environment:
    """A jinja2 environment finding templates in *templates_dirs*, the first that has one."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in templates_dirs]),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("ovf.j2", "xml.j2"), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["vmx"] = vmx_quote
    env.filters["vmx_uuid"] = vmx_uuid
    env.globals["raise"] = _raise
    return env


def _where(templates_dirs: tuple[Path, ...], template: str) -> Path:
    """The file *template* is read from (for messages)."""
    return next((d / template for d in templates_dirs if (d / template).is_file()), templates_dirs[0] / template)


def render(templates_dirs: Path | Iterable[Path], template: str, **context) -> str:
    """Render *template* (a file name, looked up in *templates_dirs* in order) with *context*."""
    dirs = (Path(templates_dirs),) if isinstance(templates_dirs, (str, Path)) else tuple(map(Path, templates_dirs))
    try:
        return environment(dirs).get_template(template).render(**context)
    except jinja2.UndefinedError as exc:
        raise DescriptorError(f"{_where(dirs, template)}: {exc}") from None
    except jinja2.TemplateError as exc:
        where = f"{_where(dirs, template)}:{getattr(exc, 'lineno', '?')}"
        raise DescriptorError(f"{where}: {exc}") from None
