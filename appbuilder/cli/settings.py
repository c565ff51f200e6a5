"""``appbuild settings``: every setting, its value here and where it comes from."""

from __future__ import annotations

import os

from appbuilder.core.settings import CONFIG_NAME, SETTINGS, Settings, read_config
from appbuilder.core.ui import Console


def cmd_settings(args, settings: Settings, ui: Console) -> int:
    configured = read_config(settings.workspace / CONFIG_NAME)
    for s in SETTINGS:
        if s.key is None:
            value, source = os.environ.get(s.env), f"environment {s.env}" if os.environ.get(s.env) else "unset"
        else:
            value = settings.get(s.key)
            source = (f"environment {s.env}" if s.env and os.environ.get(s.env) else
                      f"{CONFIG_NAME}" if s.key in configured else "default")
        shown = f"{len(value)} entries" if isinstance(value, (dict, list)) and value else str(value)
        ui.out(f"{s.key or s.env:<26} {shown:<24} ({source})  {s.help}")
    return 0


def register(sub) -> None:
    """Add this area's subcommands to the ``appbuild`` parser."""
    s = sub.add_parser("settings", help="every setting: its value here and where it comes from")
    s.set_defaults(func=cmd_settings)
