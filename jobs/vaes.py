"""The VAE family (suite "vaes"): four models from their write-ups and a curated ablation grid.

Ablation names read ``vae/<arch>[-z<latent>][-mse][-nokl | -beta<B>]``; anything not named keeps the
reference value of that architecture (z=20, bce, beta=1), so each job differs from ``vae/conv`` or
``vae/mlp`` in exactly the choices its name lists.
"""
from fashion.vae import ConditionalVAE, LatentPlaneVAE, ProductVAE, VAETask, product_data_missing
from jobs.catalogue import Job, Resources, add

RESOURCES = Resources(gpus_per_node=1, cpus_per_task=4, mem_gb=16, timeout_min=120)

MLP = dict(arch="mlp", hidden=(400,), latent_dim=20, optimizer="adam", lr=1e-3, batch_size=128)
CONV = dict(arch="conv", filters=(64, 64), latent_dim=20, optimizer="adam", lr=1e-3, batch_size=128)
COND = dict(arch="blocks", filters=(32, 64), hidden=(150, 100), latent_dim=100, optimizer="rmsprop",
            lr=1e-3, batch_size=128)
PRODUCT = dict(arch="blocks", filters=(8, 16, 32, 64), hidden=(150, 100), latent_dim=100, optimizer="rmsprop",
               lr=1e-3, batch_size=64, interpolate=("Topwear:Shoes", "Bags:Watches", "Bottomwear:Topwear"),
               arithmetic=("Sandal:Shoes",))

MODELS = [
    ("vae/mlp", VAETask, MLP, "784-400-z MLP VAE, ReLU, log-variance head, z=20 (Kingma & Welling)"),
    ("vae/conv", VAETask, CONV, "two stride-2 convs + a stride-1 conv, softplus sigma, transposed-conv decoder, z=20"),
    ("vae/cond", ConditionalVAE, COND, "conditional VAE: class vector appended to z; conv+BN+pool, selu, RMSprop, z=100"),
]

# (name, base, changes, what the job answers)
ABLATIONS = [
    ("vae/conv-z2", CONV, dict(latent_dim=2), "latent size 2: the 2-D map of the garments and its manifold"),
    ("vae/conv-z5", CONV, dict(latent_dim=5), "latent size 5"),
    ("vae/conv-z10", CONV, dict(latent_dim=10), "latent size 10"),
    ("vae/conv-z50", CONV, dict(latent_dim=50), "latent size 50: how many dimensions stay active"),
    ("vae/conv-z100", CONV, dict(latent_dim=100), "latent size 100"),
    ("vae/conv-z20-mse", CONV, dict(recon_loss="mse"), "squared error instead of Bernoulli cross-entropy"),
    ("vae/conv-z20-nokl", CONV, dict(beta=0.0), "KL weight 0: a plain autoencoder, prior samples break"),
    ("vae/conv-z20-beta4", CONV, dict(beta=4.0), "beta-VAE, KL weight 4: blurrier, fewer active dimensions"),
    ("vae/conv-z2-mse", CONV, dict(latent_dim=2, recon_loss="mse"), "2-D latent with squared error"),
    ("vae/conv-z2-nokl", CONV, dict(latent_dim=2, beta=0.0), "2-D latent without KL: the map spreads out"),
    ("vae/conv-z2-beta4", CONV, dict(latent_dim=2, beta=4.0), "2-D latent, KL weight 4: classes merge"),
    ("vae/mlp-z2", MLP, dict(latent_dim=2), "MLP with a 2-D latent, to compare with vae/conv-z2"),
    ("vae/mlp-z20-mse", MLP, dict(recon_loss="mse"), "MLP with squared error, to compare with vae/conv-z20-mse"),
]

for _name, _task, _defaults, _what in MODELS:
    add(Job(_name, "vaes", _task, _what, dict(_defaults), RESOURCES))

for _name, _base, _changes, _what in ABLATIONS:
    _defaults = {**_base, **_changes}
    add(Job(_name, "vaes", LatentPlaneVAE if _defaults["latent_dim"] == 2 else VAETask, f"ablation: {_what}",
            _defaults, RESOURCES))

add(Job("vae/product-cond", "vaes", ProductVAE,
        "conditional VAE on 80x60 colour product photos; condition = top-20 subCategory + 5 genders",
        PRODUCT, RESOURCES, unavailable=product_data_missing))
