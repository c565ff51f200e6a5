"""appbuild: recipes → versioned packages → groups → bootable appliance images.

The packages, in the order data flows through them; each imports only packages before
it in ``LAYERS`` (``tests/test_layers.py`` checks this, and that no two modules import
each other): ``core`` is used by all; ``repository`` holds what every stage reads and
writes; ``upstream`` fetches from the outside world (apt, URLs, the lookaside cache);
upstream packages are imported into the repository as capsules, and recipes are read
and cooked into it (``cook`` brings it up to date: imports what is missing, cooks what
changed); groups resolve over it; images are assembled, converted, stored, released,
uploaded and checked; ``cluster`` runs cooks and image builds on Dask workers; the
nightly drives them all; the command line only wires.
"""

__version__ = "0.1.0"

LAYERS = (
    "core", "repository", "upstream", "recipe", "policy", "graph", "capsule", "cook",
    "assemble", "formats", "store", "release", "cloud", "verify", "fs", "context", "cluster", "ci", "cli",
)
