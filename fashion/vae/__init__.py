"""The VAE family: one VAE module with swappable encoder/decoder and loss settings (``task``; the encoders
and decoders in ``networks``), the conditional variant (``conditional``), the product-photo variant and its
reader (``products``), and the pictures the VAE papers show (``analysis``)."""
from fashion.vae.conditional import ConditionalVAE, ConditionalVAEConfig
from fashion.vae.task import VAE, LatentPlaneVAE, VAEConfig, VAETask, gaussian_kl, reconstruction_loss
from fashion.vae.products import ProductVAE, ProductVAEConfig, load_products, product_data_missing

__all__ = ["VAE", "VAEConfig", "VAETask", "LatentPlaneVAE", "ConditionalVAE", "ConditionalVAEConfig",
           "ProductVAE", "ProductVAEConfig", "load_products", "product_data_missing",
           "gaussian_kl", "reconstruction_loss"]
