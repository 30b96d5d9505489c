"""The ten GANs. Every module in this package that uses ``@register`` becomes a job: dropping in a
new file is all it takes to add an eleventh.

Importing the package loads no GAN: the GAN modules are found and imported the first time ``REGISTRY`` is
read (PEP 562), so ``fashion.gans.losses`` (the colorizer's ``bce``) and the networks come without them.
"""
import importlib
import pkgutil

_SHARED = ("base", "losses", "networks")  # what the GANs use; every other module here is a GAN
__all__ = ["GAN", "GANConfig", "REGISTRY", "register"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module(f"{__name__}.base")
    if name == "REGISTRY":
        for module in pkgutil.iter_modules(__path__):
            if module.name not in _SHARED:
                importlib.import_module(f"{__name__}.{module.name}")
    value = getattr(base, name)
    globals()[name] = value  # found once: later reads skip this function
    return value
