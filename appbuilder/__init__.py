"""appbuild: recipes → versioned packages → groups → bootable appliance images."""

__version__ = "0.1.0"
