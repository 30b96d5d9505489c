"""Colorization: a conditional GAN that dyes grey Fashion-MNIST items in their class colours."""
from fashion.colorize.palette import PALETTE, colourise, grey_of, load_coloured
from fashion.colorize.task import ColorizeConfig, ColorizeTask

__all__ = ["PALETTE", "ColorizeConfig", "ColorizeTask", "colourise", "grey_of", "load_coloured"]
