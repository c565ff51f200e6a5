"""The ``[cernvm]`` section of user data: the keys the appliance's agent knows, and a
check that finds, before boot, the lines the agent would report and skip.

The agent (``recipes/cernvm-context/cernvm-context``, busybox ash) is what applies the
user data; this module only mirrors its rules so that ``appbuild context make`` can
warn about a malformed line early (the drive is made anyway: the agent skips such a
line and applies the rest).
"""

from __future__ import annotations

import re

KEYS = {
    "organisations": "groups to create (lower case) and $CERNVM_ORGANISATION",
    "organizations": "the same as organisations",
    "repositories": "repositories to mount under /cvmfs (comma-separated)",
    "users": "name:group:password, comma-separated",
    "shell": "the users' login shell (one of /etc/shells)",
    "proxy": "CVMFS_HTTP_PROXY: groups separated by ';', balanced proxies by '|'",
    "cvmfs_quota_limit": "CVMFS_QUOTA_LIMIT in MB",
    "quota_limit": "the same as cvmfs_quota_limit",
    "environment": "NAME=VALUE, comma-separated",
    "services": "/etc/init.d scripts to start, comma-separated",
    "contextualization_command": "user:/path/to/script, run as that user at the end",
    "login_user": "who the keys and password hash are for (default: the image's loginUser); never root",
    "login_password_hash": "the login user's password as a crypt(3) hash ($6$salt$hash: mkpasswd -m sha-512)",
    "ssh_authorized_keys": "a public key for the login user (TYPE BASE64 [COMMENT]); one per line, repeatable",
    "ssh_authorized_key": "the same as ssh_authorized_keys",
    "ssh_key": "the same as ssh_authorized_keys",
}

# the key types the appliance accepts (what its SSH server, dropbear, knows)
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")

NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CRYPT_HASH = re.compile(r"^\$[0-9a-z]+\$[A-Za-z0-9./$=,-]+$")


def valid_public_key(line: str) -> bool:
    """Whether *line* is a public key line the appliance takes: ``TYPE BASE64 [COMMENT]``,
    printable ASCII, its blob SSH wire format (length-prefixed fields, nothing left over)
    whose first field is TYPE. No options (``command="..."``) in front."""
    import base64
    import binascii
    import struct

    if not line or len(line) > 16384 or any(not (" " <= c <= "~") for c in line):
        return False
    parts = line.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES or not re.fullmatch(r"[A-Za-z0-9+/=]+", parts[1]):
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return False
    fields, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            return False
        (size,) = struct.unpack(">I", blob[pos:pos + 4])
        fields.append(blob[pos + 4:pos + 4 + size])
        pos += 4 + size
    return pos == len(blob) and len(fields) >= 2 and fields[0] == parts[0].encode()


def check_user_data(text: str) -> list[str]:
    """``line N: ...`` for every line of the [cernvm] section the agent would not apply."""
    problems: list[str] = []
    section = None
    seen_cernvm = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                problems.append(f"line {number}: malformed section header: {line}")
                continue
            section = line[1:-1].strip()
            seen_cernvm |= section == "cernvm"
            continue
        if section != "cernvm":
            continue
        if "=" not in line:
            problems.append(f"line {number}: expected 'key = value', got: {line}")
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if not key:
            problems.append(f"line {number}: a value without a key: {line}")
        elif key not in KEYS:
            problems.append(f"line {number}: unknown key '{key}' (ignored)")
        elif key == "users":
            for item in filter(None, (i.strip() for i in value.split(","))):
                parts = item.split(":", 2)
                if len(parts) != 3:
                    problems.append(f"line {number}: users: '{parts[0]}' is not name:group:password")
                elif not NAME.match(parts[0]) or not NAME.match(parts[1]):
                    problems.append(f"line {number}: users: '{parts[0]}:{parts[1]}' is not a valid user and group name")
        elif key == "environment":
            for item in filter(None, (i.strip() for i in value.split(","))):
                if "=" not in item:
                    problems.append(f"line {number}: environment: '{item}' is not NAME=VALUE")
                elif not VARIABLE.match(item.split("=", 1)[0]):
                    problems.append(f"line {number}: environment: '{item.split('=', 1)[0]}' is not a variable name")
        elif key == "contextualization_command" and not re.match(r"^[^:]+:/.+", value):
            problems.append(f"line {number}: contextualization_command must be user:/path/to/script, got: {value}")
        elif key in ("cvmfs_quota_limit", "quota_limit") and not re.match(r"^-?[0-9]+$", value):
            problems.append(f"line {number}: {key} must be a number of MB, got: {value}")
        elif key == "login_user" and value == "root":
            problems.append(f"line {number}: login_user root: root stays locked (ignored)")
        elif key == "login_user" and not NAME.match(value):
            problems.append(f"line {number}: login_user '{value}' is not a valid user name (ignored)")
        elif key == "login_password_hash" and not (CRYPT_HASH.match(value) and len(value) <= 512):
            problems.append(f"line {number}: login_password_hash is not a crypt(3) hash such as $6$salt$hash (ignored)")
        elif key in ("ssh_authorized_keys", "ssh_authorized_key", "ssh_key") and not valid_public_key(value):
            problems.append(f"line {number}: not an SSH public key (TYPE BASE64 [COMMENT] with a known type); ignored")
    if not seen_cernvm:
        problems.append("there is no [cernvm] section")
    return problems
