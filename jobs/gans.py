"""One job per registered GAN: ``gan/<file name>``."""
import sys

from fashion.gans import REGISTRY
from jobs.catalogue import Job, Resources, add

for _name, _gan in sorted(REGISTRY.items()):
    _doc = sys.modules[_gan.__module__].__doc__ or _name
    add(Job(f"gan/{_name}", "gans", _gan, description=" ".join(_doc.strip().split("\n\n")[0].split()),
            resources=Resources(gpus_per_node=1, cpus_per_task=4, mem_gb=16, timeout_min=240)))
