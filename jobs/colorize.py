"""The colorization GAN: ``colorize/dcgan``."""
from fashion.colorize import ColorizeTask
from jobs.catalogue import Job, Resources, add

add(Job("colorize/dcgan", "colorize", ColorizeTask,
        description="Conditional DCGAN (pix2pix-like U-Net + L1) colouring grey garments in their class colour",
        resources=Resources(gpus_per_node=1, cpus_per_task=4, mem_gb=16, timeout_min=180)))
