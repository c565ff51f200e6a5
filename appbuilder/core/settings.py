"""Every setting of appbuild, declared once: where it comes from and what it means.

A *workspace* is a directory holding ``recipes/``, ``groups/`` and ``repo/config.yaml``
(appbuild looks upward from the current directory for it, as git does). Each setting in
:data:`SETTINGS` has a key in ``repo/config.yaml`` (``cook.command_timeout`` is
``command_timeout:`` under ``cook:``), optionally an environment variable and command-line
flags, a default and a help text (``appbuild settings`` prints them with their values).
One rule of precedence holds for all of them:

    command-line flag  >  environment variable  >  repo/config.yaml  >  default

The table drives the reading of ``repo/config.yaml`` (a key it does not declare is an
error that suggests the nearest one), the command-line options of the commands a
setting belongs to (:func:`add_flags`), and the README's table of settings
(:func:`markdown_table`; a test compares them). Values are checked when read; a bad one is an error naming the
file (or variable) and the key.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from appbuilder.core.errors import AppbuildError

CONFIG_NAME = Path("repo") / "config.yaml"
DEFAULT_LABEL = "cernvm@cvm:2"


class SettingsError(AppbuildError):
    """repo/config.yaml, an environment variable or a flag gives a setting it cannot have."""


# ------------------------------------------------------------------ value checks


def _text(value) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value) == "":
        raise ValueError("expected text")
    return str(value)


def _optional_text(value) -> str | None:
    return None if value is None else _text(value)


def _whole(value) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    number = int(value)
    if number < 0:
        raise ValueError("expected a whole number, 0 or more")
    return number


def _seconds(value) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds")
    seconds = float(value)
    if not seconds > 0:
        raise ValueError("expected a positive number of seconds")
    return seconds


_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value) -> int:
    """A size: bytes, or a number with K, M, G or T (powers of 1024, ``16G``, ``64KiB``)."""
    text = str(value).strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    if text and text[-1] in _UNITS:
        factor, text = _UNITS[text[-1]], text[:-1]
    try:
        size = int(float(text) * factor)
    except ValueError:
        raise ValueError(f"{value!r} is not a size (bytes, or a number with K, M, G or T)") from None
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def _flag(value) -> bool:
    if not isinstance(value, bool):
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    return value


def _group_name(value) -> str:
    text = _text(value)
    if not re.match(r"^group-[a-z0-9][a-z0-9+._-]*$", text):
        raise ValueError("expected the name of a group recipe, group-NAME")
    return text


# mirror://NAME/path names known without configuration: conary's names (it shipped them in
# /etc/conary/mirrors/), with today's homes of the same trees (most of the 2009 hosts it listed
# are gone), and kernel, which conary did not ship. An entry in repo/config.yaml replaces one.
BUILTIN_MIRRORS: dict[str, list[str]] = {
    "gnu": ["https://ftpmirror.gnu.org/", "https://ftp.gnu.org/gnu/"],
    "sourceforge": ["https://downloads.sourceforge.net/project/"],
    "kernel": ["https://cdn.kernel.org/pub/", "https://mirrors.edge.kernel.org/pub/"],
    "gnome": ["https://download.gnome.org/sources/"],
    "xorg": ["https://www.x.org/pub/", "https://xorg.freedesktop.org/releases/"],
    "kde": ["https://download.kde.org/"],
    "cpan": ["https://www.cpan.org/"],
    "cran": ["https://cloud.r-project.org/"],
    "debian": ["https://deb.debian.org/debian/"],
    "gentoo": ["https://distfiles.gentoo.org/"],
    "fedora": ["https://archives.fedoraproject.org/pub/archive/fedora/linux/core/"],
}


def _mirrors(value) -> dict[str, list[str]]:
    """The built-in mirror lists with repo/config.yaml's over them (a NAME given replaces its list)."""
    if value is None:
        value = {}
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise ValueError("expected NAME: [base URL, ...] entries")
    return {**BUILTIN_MIRRORS, **{str(k): [_text(u) for u in v] for k, v in value.items()}}


def _paths(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("expected a list of file names")
    return [_text(v) for v in value]


_UPSTREAM_KEYS = {"deb": {"packages", "group", "with_depends", "label"}, "rpm": {"repo", "only", "arch", "label"}}


def _upstream(value) -> dict:
    """``upstream: {deb: [{packages|group, with_depends, label}], rpm: [{repo, only, arch, label}]}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected deb: and rpm: lists")
    for kind, entries in value.items():
        if kind not in _UPSTREAM_KEYS:
            raise ValueError(f"unknown kind {kind!r}{_did_you_mean(kind, _UPSTREAM_KEYS)} (deb, rpm)")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError(f"{kind}: expected a list of entries")
        for entry in entries:
            unknown = set(entry) - _UPSTREAM_KEYS[kind]
            if unknown:
                key = sorted(unknown)[0]
                raise ValueError(f"{kind} entry: unknown key {key!r}{_did_you_mean(key, _UPSTREAM_KEYS[kind])}")
            if kind == "rpm" and not entry.get("repo"):
                raise ValueError("rpm entry: name the rpm-md repository (repo:)")
            if kind == "deb" and not (entry.get("packages") or entry.get("group")):
                raise ValueError("deb entry: name packages: or a group:")
    return value


_SOURCE_KEYS = {"deb": {"kind", "priority", "label"}, "rpm-md": {"kind", "priority", "label", "repo", "keys"}}


def _sources(value) -> dict[str, dict]:
    """``sources: {NAME: {kind: deb|rpm-md, priority: N, repo: URL-or-path, keys: [FILE], label: LABEL}}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected NAME: {kind: deb|rpm-md, priority: N, ...} entries")
    sources = {}
    for name, entry in value.items():
        name = str(name)
        if not re.match(r"^[a-z0-9][a-z0-9_-]*$", name):
            raise ValueError(f"bad source name {name!r}: expected lower-case letters, digits, '-' and '_'")
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected a mapping (kind:, priority:, ...)")
        kind = str(entry.get("kind", ""))
        if kind not in _SOURCE_KEYS:
            raise ValueError(f"{name}: unknown kind {kind!r}{_did_you_mean(kind, _SOURCE_KEYS)} (deb, rpm-md)")
        unknown = set(entry) - _SOURCE_KEYS[kind]
        if unknown:
            key = sorted(unknown)[0]
            raise ValueError(f"{name}: unknown key {key!r}{_did_you_mean(key, _SOURCE_KEYS[kind])} for a {kind} source")
        if kind == "rpm-md" and not entry.get("repo"):
            raise ValueError(f"{name}: name the rpm-md repository (repo:)")
        priority = entry.get("priority", 50)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"{name}: priority must be a whole number (lower is preferred)")
        sources[name] = {"kind": kind, "priority": priority, "label": _optional_text(entry.get("label")),
                         "repo": _optional_text(entry.get("repo")), "keys": _paths(entry.get("keys"))}
    return sources


def _use_flags(value) -> dict[str, bool]:
    """``use: {ssl: false, ipv6: true}``: use flag values (read in :mod:`appbuilder.recipe.flavor`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected NAME: true|false entries (use: {ssl: false})")
    flags = {}
    for name, on in value.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            raise ValueError(f"bad use flag name {name!r}: letters, digits and _")
        flags[str(name)] = _flag(on)
    return dict(sorted(flags.items()))


def _flavor_text(value) -> str:
    """Use flags as conary wrote them: ``ssl,!ipv6,~builddocs`` (no ``is:``)."""
    if value is None or value == "":
        return ""
    text = _text(value).strip()
    if "is:" in text:
        raise ValueError("choose the architecture with --arch, not 'is:'")
    for word in (w.strip() for w in text.split(",")):
        if not re.match(r"^(~!|~|!)?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", word):
            raise ValueError(f"{word!r} is not a flag (NAME, ~NAME, !NAME or ~!NAME, separated by commas)")
    return text


def _accel(value) -> str:
    text = _text(value)
    if text not in ("tcg", "kvm"):
        raise ValueError("expected tcg or kvm")
    return text


def _cluster_kind(value) -> str | None:
    if value is None:
        return None
    text = _text(value).lower()
    if text not in ("htcondor", "slurm"):
        raise ValueError("expected htcondor or slurm (dask-jobqueue)")
    return text


def _mapping(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of NAME: value")
    return {str(k): v for k, v in value.items()}


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Setting:
    """One setting: its config key, environment variable, flags, default and meaning."""

    key: str | None  # dotted key in repo/config.yaml; None: only the environment sets it
    default: Any
    help: str
    env: str | None = None
    cli: dict[str, tuple[str, ...]] = field(default_factory=dict)  # command -> its flags for this setting
    parse: Callable[[Any], Any] = _text
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return (self.key or self.env or "").replace(".", "_").lower()


SETTINGS: tuple[Setting, ...] = (
    Setting(None, None, "the workspace (default: the nearest directory above holding repo/config.yaml)",
            env="APPBUILD_WORKSPACE", parse=_optional_text),
    Setting("label", DEFAULT_LABEL, "the label new troves are committed to (host@namespace:tag; the repository "
            "checks it)"),
    Setting("source_date_epoch", 1_700_000_000, "SOURCE_DATE_EPOCH of every build (time stamps inside built files)",
            parse=_whole),
    Setting("toolchain", "group-toolchain", "the group recipe every cook's build root is made from",
            parse=_group_name),
    Setting("mirrors", {}, "mirror://NAME/path in a recipe expands to each base URL listed for NAME: NAME: [URL, "
            "...]; built in (replaced by an entry of the same NAME): " + ", ".join(BUILTIN_MIRRORS),
            parse=_mirrors),
    Setting("upstream", {}, "the upstream packages `appbuild import upstream` imports (deb: and rpm: lists)",
            parse=_upstream),
    Setting("sources", {"debian": {"kind": "deb", "priority": 10}},
            "upstream distributions a group may resolve against (resolveSources): NAME: {kind: deb (the machine's "
            "apt sources) or rpm-md (repo: URL or path, keys: [FILE]), priority: N (lower wins), label: LABEL}",
            parse=_sources),
    Setting("paths.data", "repo/data", "the repository: content store and index", env="APPBUILD_REPOSITORY"),
    Setting("paths.cache", "repo/cache",
            "lookaside cache, apt state, build roots, work directories, kept answers of reading recipes",
            env="APPBUILD_CACHE"),
    Setting("paths.logs", "repo/logs", "logs of failed cooks, nightly reports", env="APPBUILD_LOGS"),
    Setting("paths.images", "images", "the image store", env="APPBUILD_IMAGES"),
    Setting("cook.command_timeout", 14400, "seconds one build command may run (a recipe may set buildTimeout)",
            parse=_seconds),
    Setting("cook.flavor", None, "use flags of a cook over those of use: (conary's flavor syntax: 'ssl,!ipv6', "
            "'hello.debug' for a recipe's own flag)", env="APPBUILD_FLAVOR", cli={"cook": ("--flavor",)},
            parse=_flavor_text, metavar="FLAGS"),
    Setting("use", {}, "the use flags every cook starts from, over conary's defaults (ssl: false; a name that is "
            "not one of conary's defines a flag)", parse=_use_flags),
    Setting("cook.max_unpacked_size", "16G", "a source archive expanding past this size is refused",
            parse=parse_size),
    Setting("cook.source_keys", "keys/upstream", "the directory of OpenPGP public keys (.asc, .gpg, .pgp files) that "
            "a source action's keyid= checks signatures against (relative to the workspace)"),
    Setting("cache.root_filesystems", 3, "root file systems (ext4 partitions) kept in the cache for rebuilds of "
            "identical inputs, --force included (the least recently used go first; 0 keeps none)", parse=_whole),
    Setting("scripts.timeout", 300, "seconds one package script (DEB maintainer script, RPM scriptlet) may run "
            "at image time (groups with packageScripts)", parse=_seconds),
    Setting("rpm.keys", [], "OpenPGP public keys (files) RPM capsules must be signed with", parse=_paths),
    Setting("rpm.require_signature", None, "refuse unsigned RPMs (default: when rpm.keys names a key)",
            parse=lambda v: None if v is None else _flag(v)),
    Setting("rpm.label", None, "the label RPM capsules are imported to (default: label)", parse=_optional_text),
    Setting("deb.label", None, "the label DEB capsules are imported to (default: label)", parse=_optional_text),
    Setting("repository.export_to", "repo/export", "where `repo export` writes the repository as a static tree "
            "(objects by hash and a signed index snapshot) and `repo serve` serves it from: a directory or "
            "s3://BUCKET/PREFIX", env="APPBUILD_REPO_EXPORT_TO", cli={"repo export": ("--to",)},
            metavar="DEST"),
    Setting("repository.signing_key", None, "the Ed25519 private key (PEM file) exported snapshots, and a cluster "
            "worker's changesets, are signed with (`appbuild repo keygen` makes one)",
            env="APPBUILD_REPO_SIGNING_KEY", parse=_optional_text),
    Setting("repository.trusted_keys", [], "Ed25519 public keys (files) whose signatures a reader of an exported "
            "repository, and the coordinator of cluster cooks, accept; when it names any, unsigned snapshots and "
            "changesets are refused", parse=_paths),
    Setting("cluster.scheduler", None, "the Dask scheduler cooks and image builds run on (tcp://HOST:PORT); unset "
            "(and no cluster.kind): everything runs on this machine", env="APPBUILD_CLUSTER",
            cli={"cook": ("--cluster",), "group": ("--cluster",), "nightly": ("--cluster",)}, parse=_optional_text,
            metavar="tcp://HOST:PORT"),
    Setting("cluster.kind", None, "without cluster.scheduler: start the workers as batch jobs through dask-jobqueue, "
            "htcondor or slurm (with cluster.cores, .memory, .jobs, .options)", parse=_cluster_kind),
    Setting("cluster.cores", 2, "cores of each batch job (one worker per job)", parse=_whole),
    Setting("cluster.memory", "4GB", "memory of each batch job"),
    Setting("cluster.jobs", 2, "batch jobs to start (cluster.kind)", parse=_whole),
    Setting("cluster.options", {}, "more keyword arguments of dask-jobqueue's HTCondorCluster or SLURMCluster "
            "(queue, account, walltime, disk, job_extra_directives, ...)", parse=_mapping),
    Setting("cluster.repository", None, "the URL workers read the repository's export (repository.export_to) "
            "from; default: appbuild serves it itself over HTTP while the run lasts (cluster.serve)",
            parse=_optional_text),
    Setting("cluster.serve", None, "HOST or HOST:PORT the coordinator serves the export on for its workers "
            "(default: the address this machine reaches the scheduler from, a free port)", parse=_optional_text),
    Setting("cluster.connect_timeout", 10, "seconds to wait for the scheduler (and for batch jobs' first worker)",
            parse=_seconds),
    Setting("cluster.retries", 2, "times a task that failed for a reason other than its build (a lost worker, a "
            "fetch) is run again elsewhere", parse=_whole),
    Setting("publish.to", None, "where `publish`, `rollback` and `serve` work: a directory or s3://BUCKET/PREFIX",
            env="APPBUILD_PUBLISH_TO", cli={"publish": ("--to", "--dest"), "rollback": ("--dest",)},
            parse=_optional_text, metavar="DEST"),
    Setting("publish.endpoint_url", None, "S3-compatible endpoint of the destination (default: AWS, or "
            "AWS_ENDPOINT_URL)", cli={"publish": ("--endpoint-url",), "rollback": ("--endpoint-url",)},
            parse=_optional_text, metavar="URL"),
    Setting("publish.key", None, "the OpenPGP key SHA256SUMS are signed with", env="APPBUILD_SIGNING_KEY",
            cli={"publish": ("--key",)}, parse=_optional_text, metavar="KEY"),
    Setting("publish.gpg_home", None, "the GNUPGHOME holding that key", env="APPBUILD_GPG_HOME",
            cli={"publish": ("--gpg-home",)}, parse=_optional_text, metavar="DIR"),
    Setting("publish.passphrase_file", None, "a file holding the key's passphrase",
            env="APPBUILD_GPG_PASSPHRASE_FILE", parse=_optional_text),
    Setting("verify.keyring", None, "the OpenPGP keys `appbuild verify RELEASE` trusts: a GNUPGHOME directory or a "
            "public key file", env="APPBUILD_VERIFY_KEYRING", cli={"verify": ("--keyring",)}, parse=_optional_text,
            metavar="PATH"),
    Setting("os.repository", "{group}.{arch}", "the fs repository a group's OS is published to and a network-booting "
            "image boots from ({group} and {arch} are replaced)", cli={"group": ("--os-repository",),
                                                                        "publish-group": ("--repo",)},
            metavar="NAME"),
    Setting("os.servers", None, "where a network-booting image fetches its OS: URLs separated by ';' "
            "(CVMFS_SERVER_URL; @fqrn@ is the repository), e.g. http://cvmfs.example.org/cvmfs/@fqrn@",
            cli={"group": ("--os-server",)}, parse=_optional_text, metavar="URLS"),
    Setting("os.proxy", "DIRECT", "the HTTP proxies of a network-booting image (CVMFS_HTTP_PROXY; user data's "
            "proxy overrides it)", cli={"group": ("--os-proxy",)}, metavar="PROXIES"),
    Setting("os.keys", "keys", "the directory holding each fs repository's key pair (NAME.key signs, NAME.pub goes "
            "into network-booting images; `appbuild fs keygen` makes them)", env="APPBUILD_OS_KEYS",
            cli={"publish-group": ("--keys",)},
            metavar="DIR"),
    Setting("os.data_size", "128M", "the data partition (cache, writable layer) of a network-booting image when "
            "no --size is given; it grows to the end of the disk at first boot", parse=parse_size),
    Setting("qemu.accel", "tcg", "QEMU accelerator for boot tests: tcg, or kvm to opt in where it works",
            env="APPBUILD_QEMU_ACCEL", parse=_accel),
    Setting(None, None, "the interpreter ci/nightly runs (default: .venv/bin/python after set-up)",
            env="APPBUILD_PYTHON", parse=_optional_text),
    Setting(None, None, "S3/EC2-compatible endpoint for publish and upload ami when none is given (as boto3 "
            "reads it)", env="AWS_ENDPOINT_URL", parse=_optional_text),
)
BY_KEY = {s.key: s for s in SETTINGS if s.key}
# sections of repo/config.yaml and the keys each may hold
SECTIONS = {section: {k.split(".", 1)[1] for k in BY_KEY if k.startswith(section + ".")}
            for section in {k.split(".", 1)[0] for k in BY_KEY if "." in k}}


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------ resolved settings


@dataclass(frozen=True)
class Settings:
    """Resolved locations and settings of one workspace."""

    workspace: Path
    repository: Path
    cache: Path
    logs: Path
    images: Path
    values: dict[str, Any] = field(default_factory=dict)  # key -> value, every key of SETTINGS

    def get(self, key: str):
        """The value of the setting *key* (``cook.command_timeout``)."""
        if key not in BY_KEY:
            raise KeyError(f"no setting {key!r}")
        return self.values[key] if key in self.values else BY_KEY[key].parse(BY_KEY[key].default)

    def with_flags(self, args) -> "Settings":
        """These settings with the command line's flags (an argparse namespace) over them."""
        return self.with_overrides({s.key: getattr(args, s.dest, None) for s in SETTINGS if s.key and s.cli},
                                   where="the command line")

    def with_overrides(self, overrides: dict[str, Any], *, where: str = "the command line") -> "Settings":
        """These settings with *overrides* (key -> value; None leaves a setting as it is) over them."""
        values = dict(self.values)
        for key, value in overrides.items():
            if value is not None:
                values[key] = _checked(BY_KEY[key], value, where)
        return replace(self, values=values)

    @property
    def label(self) -> str:
        return self.get("label")

    @property
    def mirrors(self) -> dict[str, list[str]]:
        return self.get("mirrors")

    @property
    def recipes_dir(self) -> Path:
        return self.workspace / "recipes"

    @property
    def groups_dir(self) -> Path:
        return self.workspace / "groups"

    @property
    def formats_dir(self) -> Path:
        return self.workspace / "formats"

    @property
    def lookaside(self) -> Path:
        return self.cache / "lookaside"


def _checked(setting: Setting, value, where: str):
    try:
        return setting.parse(value)
    except (ValueError, TypeError, AppbuildError) as exc:
        raise SettingsError(f"{where}: {value!r} is not valid for {setting.key or setting.env}: {exc}") from None


def find_workspace(start: Path | None = None) -> Path:
    """The nearest directory at or above *start* holding ``repo/config.yaml``."""
    env = os.environ.get("APPBUILD_WORKSPACE")
    if env:
        workspace = Path(env).resolve()
        if not (workspace / CONFIG_NAME).is_file():
            raise SettingsError(f"APPBUILD_WORKSPACE={env} is not an appbuild workspace: it has no {CONFIG_NAME}")
        return workspace
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise AppbuildError(
        f"no appbuild workspace here: no {CONFIG_NAME} in {here} or any parent "
        "(run appbuild inside the project, or set APPBUILD_WORKSPACE)"
    )


def read_config(path: Path) -> dict[str, Any]:
    """The settings ``repo/config.yaml`` gives, by dotted key, each checked; unknown keys
    are errors that name the nearest known one."""
    raw: Any = {}
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping at top level")
    found: dict[str, Any] = {}
    top_keys = {k for k in BY_KEY if "." not in k} | set(SECTIONS)
    for key, value in raw.items():
        key = str(key)
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: '{key}:' must be a mapping ({', '.join(sorted(SECTIONS[key]))})")
            for sub, sub_value in value.items():
                if str(sub) not in SECTIONS[key]:
                    raise SettingsError(f"{path}: unknown setting {key}.{sub}{_did_you_mean(str(sub), SECTIONS[key])}; "
                                        f"'{key}:' holds {', '.join(sorted(SECTIONS[key]))}")
                found[f"{key}.{sub}"] = _checked(BY_KEY[f"{key}.{sub}"], sub_value, f"{path}: {key}.{sub}")
        elif key in BY_KEY:
            found[key] = _checked(BY_KEY[key], value, f"{path}: {key}")
        else:
            raise SettingsError(f"{path}: unknown setting {key!r}{_did_you_mean(key, top_keys)} "
                                f"(`appbuild settings` lists them)")
    return found


def load_settings(start: Path | None = None) -> Settings:
    """Read the workspace's ``repo/config.yaml`` and the environment (see :data:`SETTINGS`)."""
    workspace = find_workspace(start)
    values = read_config(workspace / CONFIG_NAME)
    for s in SETTINGS:
        if s.key and s.env and os.environ.get(s.env):
            values[s.key] = _checked(s, os.environ[s.env], f"environment variable {s.env}")
    for s in SETTINGS:
        if s.key and s.key not in values:
            values[s.key] = s.parse(s.default)

    def place(key: str) -> Path:
        path = Path(values[key])
        return path if path.is_absolute() else workspace / path

    return Settings(workspace=workspace, repository=place("paths.data"), cache=place("paths.cache"),
                    logs=place("paths.logs"), images=place("paths.images"), values=values)


def from_environment(key: str):
    """The setting *key* where no workspace is read (booting or inspecting an image file):
    its environment variable, else its default."""
    setting = BY_KEY[key]
    value = os.environ.get(setting.env) if setting.env else None
    return _checked(setting, value, f"environment variable {setting.env}") if value else setting.parse(setting.default)


def add_flags(parser, command: str) -> None:
    """Add the flags of the settings that belong to *command* to its argparse *parser*."""
    for s in SETTINGS:
        if command in s.cli:
            where = f"{s.env}, " if s.env else ""
            parser.add_argument(*s.cli[command], dest=s.dest, metavar=s.metavar or "VALUE",
                                help=f"{s.help} (default: {where}{s.key} in repo/config.yaml)")


def markdown_table() -> str:
    """Every setting as the README's table (a test keeps the README equal to it)."""
    rows = ["| `repo/config.yaml` key | environment | flags | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        flags = ", ".join(f"{'/'.join(f'`{f}`' for f in fs)} ({cmd})" for cmd, fs in s.cli.items())
        default = "" if s.default in (None, {}, []) else f"`{s.default}`"
        rows.append(f"| {f'`{s.key}`' if s.key else ''} | {f'`{s.env}`' if s.env else ''} | {flags} | {default} "
                    f"| {s.help} |")
    return "\n".join(rows) + "\n"
