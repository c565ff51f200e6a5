"""What the cluster tests compare: a trove as everything a cook decides about it."""

from __future__ import annotations

import dataclasses
import json

from appbuilder.repository.trove import COMPONENT


def trove_record(repo, nvf) -> dict:
    """A package trove and its components: version, flavor, info, files (with content
    hashes), provides, requires; everything but commit times (and the build log, which is
    kept beside the package: see Repository.build_log)."""
    trove = repo.get(nvf)
    record = {"nvf": str(trove.nvf), "kind": trove.kind, "info": trove.info, "components": []}
    for member in trove.members:
        comp = repo.get(member)
        assert comp.kind == COMPONENT
        record["components"].append({
            "nvf": str(comp.nvf), "info": comp.info,
            "files": sorted(dataclasses.astuple(f) for f in comp.files),
            "provides": sorted(str(d) for d in comp.provides), "requires": sorted(str(d) for d in comp.requires)})
    return json.loads(json.dumps(record, sort_keys=True, default=str))


def contents(repo, nvf) -> dict[str, bytes]:
    """Every file content of a package's components, by digest, read back from the store."""
    out = {}
    for member in repo.get(nvf).members:
        for f in repo.get(member).files:
            if f.sha256 and f.sha256 not in out:
                out[f.sha256] = repo.store.read(f.sha256)
    return out
