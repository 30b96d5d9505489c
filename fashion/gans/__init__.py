"""The ten GANs. Every module in this package that uses ``@register`` becomes a job: dropping in a
new file is all it takes to add an eleventh."""
import importlib
import pkgutil

from fashion.gans.base import GAN, GANConfig, REGISTRY, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "losses", "networks"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["GAN", "GANConfig", "REGISTRY", "register"]
