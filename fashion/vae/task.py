"""The variational autoencoder every ``vae/*`` job trains: one module with swappable encoder/decoder,
reconstruction loss and KL weight, and the task that trains it and draws what the VAE papers show.

Loss per image, in nats: ``recon(x, decoder(z)) + beta * KL(q(z|x) || N(0, I))`` with
``z = mean + sigma * eps`` (the reparameterisation trick; eps comes from the loop's seeded ``Noise``).
With ``recon=bce`` and ``beta=1`` this is exactly the negative ELBO of a Bernoulli decoder.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fashion import artifacts, runfolder
from fashion.data import CLASSES, to_unit_range
from fashion.task import ConfigError, Noise, Task, TrainConfig
from fashion.vae import analysis
from fashion.vae.networks import ARCHS, build

RECON_LOSSES = ("bce", "mse")
# RMSprop with Keras' rho=0.9 as the write-ups used: torch's default 0.99 takes ~10x-lr first steps.
OPTIMIZERS = {"adam": torch.optim.Adam, "rmsprop": functools.partial(torch.optim.RMSprop, alpha=0.9)}
GRID = 10  # columns of every picture grid; also the number of reconstructed test images
MANIFOLD_SIDE = 20  # the 2-D manifold figure decodes a 20 x 20 grid of z
EVAL_BATCH = 1000
# The latent traversal: the PyTorch recipe's shifts of one image's latent mean, -0.5 to 3 in steps of 0.25,
# along at most this many dimensions (a larger z shows those whose means vary most over the test set).
TRAVERSAL_OFFSETS = tuple(-0.5 + 0.25 * i for i in range(15))
TRAVERSAL_DIMS = 20


@dataclass
class VAEConfig(TrainConfig):
    """The convolutional VAE's settings; every other VAE job changes some of them (see jobs/vaes.py)."""

    epochs: int = 30
    "Passes over the training split."
    batch_size: int = 128
    "Global batch: split evenly over all processes, so results do not depend on the GPU count."
    arch: str = "conv"
    "Encoder/decoder: mlp (dense, ReLU) | conv (stride-2 convs, softplus sigma) | blocks (conv+BN+max-pool, selu)."
    latent_dim: int = 20
    "Size of z."
    recon_loss: str = "bce"
    "bce: Bernoulli decoder (sum over pixels) | mse: summed squared error (Gaussian decoder, sigma^2 = 1/2)."
    beta: float = 1.0
    "KL weight: 1 = the ELBO, 0 = a plain autoencoder with a noisy code, > 1 = a beta-VAE."
    filters: tuple[int, ...] = (64, 64)
    "conv and blocks: channels of each stride-2 conv / each conv+pool block."
    hidden: tuple[int, ...] = (400,)
    "mlp and blocks: widths of the dense layers between the image features and the latent heads."
    optimizer: str = "adam"
    "adam | rmsprop."
    lr: float = 1e-3
    "Learning rate."
    interpolate: tuple[str, ...] = ("Pullover:Sneaker", "T-shirt/top:Trouser", "Dress:Bag",
                                    "Sandal:Ankle boot", "Coat:Shirt")
    "Latent interpolations drawn at the end, one A:B (or label=A:B) per row; A, B: a class or test indices."
    arithmetic: tuple[str, ...] = ("bag handle=30+31+34+62+69:53+58+105+116+119",
                                   "Ankle boot:Sneaker")
    "Latent arithmetic x + (a - b) at the end, one a:b (or label=a:b) per row; a class means its test mean."

    def validate(self) -> None:
        super().validate()
        choices = {"arch": ARCHS, "recon_loss": RECON_LOSSES, "optimizer": tuple(OPTIMIZERS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: choose one of {', '.join(allowed)}")
        if self.latent_dim < 1:
            raise ConfigError(f"latent_dim={self.latent_dim}: must be at least 1")
        if self.beta < 0:
            raise ConfigError(f"beta={self.beta}: the KL weight must be 0 or positive")
        if self.arch != "mlp" and (not self.filters or min(self.filters) < 1):
            raise ConfigError(f"filters={self.filters}: arch={self.arch} needs at least one positive width, "
                              "e.g. filters=64,64")
        if any(w < 1 for w in self.hidden):
            raise ConfigError(f"hidden={self.hidden}: widths must be positive")
        for spec in (*self.interpolate, *self.arithmetic):
            if spec.rpartition("=")[2].count(":") != 1:
                raise ConfigError(f"{spec!r} in interpolate/arithmetic: write A:B, e.g. Pullover:Sneaker or "
                                  "12:345, optionally label=A:B")


# -- the loss --------------------------------------------------------------------------------------
def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) of each latent dimension, in nats (closed form)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per image, in nats."""
    return kl_per_dim(mean, logvar).sum(1)


def reconstruction_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image reconstruction loss of decoder logits against a target in [0, 1], summed over pixels."""
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    elif kind == "mse":
        per_pixel = (torch.sigmoid(logits) - target).pow(2)
    else:
        raise ConfigError(f"recon_loss={kind!r}: choose one of {', '.join(RECON_LOSSES)}")
    return per_pixel.flatten(1).sum(1)


class VAE(nn.Module):
    """q(z|x[, c]) and p(x|z[, c]); ``forward`` is one reparameterised pass for training."""

    def __init__(self, config: VAEConfig, shape, cond_dim: int = 0):
        super().__init__()
        self.encoder, self.decoder = build(config.arch, shape, config.latent_dim, cond_dim,
                                           config.filters, config.hidden)

    def encode(self, x, cond=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x, cond)

    def decode(self, z, cond=None) -> torch.Tensor:
        """Logits of p(x|z); sigmoid gives the mean image."""
        return self.decoder(z, cond)

    def forward(self, x, cond, eps):
        mean, logvar = self.encode(x, cond)
        z = mean + eps * torch.exp(0.5 * logvar)
        return self.decode(z, cond), mean, logvar


# -- the task --------------------------------------------------------------------------------------
class VAETask(Task):
    """Trains one VAE and draws reconstructions, prior samples, interpolations and latent arithmetic."""

    config_class = VAEConfig
    expected_files = ("samples.gif", "samples/epoch_001.png", "recon/epoch_001.png", "recon_over_epochs.png",
                      "elbo.png", "interpolation.png", "arithmetic.png", "traversal.png", "dataset.png")

    def __init__(self, config: VAEConfig, accelerator, data):
        super().__init__(config, accelerator, data)
        self.shape = tuple(data.train.images.shape[1:])
        self.nets = {"vae": VAE(config, self.shape, self.condition_dim).to(self.device)}
        self.opts = {"vae": self.optimizer(OPTIMIZERS[config.optimizer], self.nets["vae"].parameters(), lr=config.lr)}
        self.test_classes = self.classes_of(data.test.labels)
        self.shown = analysis.first_of_each_class(self.test_classes, GRID)  # the arithmetic's items x
        self.recon_index = list(range(min(GRID, len(data.test))))  # Hilbers' Fig. 4: the first 10 test images
        self.pairs = [analysis.parse_pair(s, self.class_names, self.test_classes) for s in config.interpolate]
        self.directions = [analysis.parse_pair(s, self.class_names, self.test_classes) for s in config.arithmetic]
        fixed = Noise(self.device, config.seed + 12345)
        self.grid_conditions = self.conditions_for_grid()
        if self.grid_conditions is None:
            self.fixed_z = fixed.normal(GRID * GRID, config.latent_dim)
        else:  # the same z in every row, so rows differ only by their condition
            self.fixed_z = fixed.normal(GRID, config.latent_dim).repeat(len(self.grid_conditions), 1)
        # uint8 reconstructions per epoch for the "after n epochs" figure, from epoch 0: the untrained network.
        self.recon_rows: dict[int, torch.Tensor] = {0: self.reconstruct(self.encode_means(self.recon_index))}

    # -- what a conditional subclass changes ----------------------------------------------------------
    condition_dim = 0
    class_names: tuple[str, ...] = CLASSES

    def classes_of(self, labels: torch.Tensor) -> torch.Tensor:
        """The class index of each item, for colouring and for picking test images by class name."""
        return labels

    def condition(self, images01: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """The vector appended to the encoder features and to z (None: unconditional)."""
        return None

    def conditions_for_grid(self) -> torch.Tensor | None:
        """One condition per row of the samples grid (None: a plain 10x10 grid of prior samples)."""
        return None

    # -- training ----------------------------------------------------------------------------------
    @property
    def vae(self) -> VAE:
        return self.unwrap("vae")

    def losses(self, logits, x, mean, logvar) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image reconstruction loss and KL, in float32."""
        recon = reconstruction_loss(self.config.recon_loss, logits.float(), x)
        return recon, gaussian_kl(mean.float(), logvar.float())

    def train_step(self, images, labels, noise):
        x = to_unit_range(images)
        cond = self.condition(x, labels)
        eps = noise.normal(len(x), self.config.latent_dim)
        logits, mean, logvar = self.nets["vae"](x, cond, eps)
        recon, kl = self.losses(logits, x, mean, logvar)
        terms = self.optimize("vae", {"recon": recon.mean(), "kl": self.config.beta * kl.mean()})
        # Log the unweighted KL, so runs with different beta are comparable.
        return {"loss": terms["recon"] + terms["kl"], "recon": terms["recon"], "kl": kl.mean().detach()}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> tuple[dict[str, float], torch.Tensor]:
        """Test-set means per image (loss, recon, KL, Bernoulli negative ELBO, per-pixel MSE), the latent
        dimensions in use, with one fixed posterior sample per image; and the posterior means of the test set."""
        vae, noise = self.vae, Noise(self.device, self.config.seed + 777)
        sums, means, kl_dims = {}, [], 0.0
        with analysis.eval_mode(vae):
            for images, labels in zip(self.data.test.images.split(EVAL_BATCH), self.data.test.labels.split(EVAL_BATCH)):
                x = to_unit_range(images)
                cond = self.condition(x, labels)
                mean, logvar = vae.encode(x, cond)
                z = mean + noise.normal(*mean.shape) * torch.exp(0.5 * logvar)
                logits = vae.decode(z, cond).float()
                recon, kl = self.losses(logits, x, mean, logvar)
                batch = {"recon": recon, "kl": kl, "loss": recon + self.config.beta * kl,
                         "neg_elbo": reconstruction_loss("bce", logits, x) + kl,
                         "mse": (torch.sigmoid(vae.decode(mean, cond).float()) - x).pow(2).flatten(1).mean(1)}
                for k, v in batch.items():
                    sums[k] = sums.get(k, 0.0) + v.double().sum()
                means.append(mean.float())
                kl_dims = kl_dims + kl_per_dim(mean.float(), logvar.float()).double().sum(0)
        means = torch.cat(means)
        n = len(self.data.test)
        out = {f"test_{k}": float(v / n) for k, v in sums.items()}
        out["test_active_dims"] = float(analysis.active_dims(means))
        out["test_informative_dims"] = float(analysis.informative_dims(kl_dims / n))
        return out, means

    @torch.no_grad()
    def encode_means(self, index: list[int]) -> torch.Tensor:
        """Posterior means of these test images, BatchNorm in eval mode."""
        index_t = torch.as_tensor(index, device=self.device)
        x = to_unit_range(self.data.test.images[index_t])
        with analysis.eval_mode(self.vae) as vae:
            return vae.encode(x, self.condition(x, self.data.test.labels[index_t]))[0].float()

    def reconstruct(self, means: torch.Tensor) -> torch.Tensor:
        """The reconstruction figure's row (uint8, on the CPU) from its test images' posterior means."""
        index = torch.as_tensor(self.recon_index, device=self.device)
        return (self.decode01(means, self.test_conditions(index)) * 255).round().to(torch.uint8).cpu()

    @torch.no_grad()
    def decode01(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mean images in [0, 1] for latents (and conditions), in batches, BatchNorm in eval mode."""
        vae = self.vae
        with analysis.eval_mode(vae):
            chunks = [torch.sigmoid(vae.decode(zc, None if cond is None else cond[i: i + len(zc)]).float())
                      for i, zc in zip(range(0, len(z), EVAL_BATCH), z.split(EVAL_BATCH))]
        return torch.cat(chunks) if chunks else z.new_zeros(0, *self.shape)

    def test_conditions(self, index: torch.Tensor) -> torch.Tensor | None:
        x = to_unit_range(self.data.test.images[index])
        return self.condition(x, self.data.test.labels[index])

    def samples(self) -> torch.Tensor:
        """The fixed-z prior samples of the per-epoch grid (one row per condition for conditional VAEs)."""
        cond = None
        if self.grid_conditions is not None:
            cond = self.grid_conditions.repeat_interleave(GRID, 0)
        return self.decode01(self.fixed_z, cond)

    def metric_samples(self, n, noise):
        z = noise.normal(n, self.config.latent_dim)
        return self.decode01(z), None

    # -- pictures ----------------------------------------------------------------------------------
    def end_epoch(self, epoch, out):
        numbers, means = self.evaluate()
        artifacts.save_grid(self.samples(), out / f"samples/epoch_{epoch:03d}.png", nrow=GRID, value_range=(0, 1))
        originals = to_unit_range(self.data.test.images[self.recon_index]).cpu()
        self.recon_rows[epoch] = self.reconstruct(means[self.recon_index])
        artifacts.save_grid(torch.cat([self.recon_rows[epoch].float() / 255, originals]),
                            out / f"recon/epoch_{epoch:03d}.png", nrow=len(originals), value_range=(0, 1))
        analysis.save_recon_over_epochs(self.recon_rows, originals, out / "recon_over_epochs.png")
        if self.config.latent_dim == 2:
            analysis.save_latent_scatter(means.cpu(), self.test_classes.cpu(), self.class_names,
                                         out / f"latent/epoch_{epoch:03d}.png", title=f"test set, epoch {epoch}")
            grid = analysis.manifold_latents(MANIFOLD_SIDE).to(self.device)
            analysis.save_manifold(self.decode01(grid, self.manifold_condition(len(grid))),
                                   out / "manifold.png", MANIFOLD_SIDE)
        return numbers

    def manifold_condition(self, n: int) -> torch.Tensor | None:
        """The condition decoded with the 2-D manifold's latents (conditional VAEs: the first grid row's)."""
        return None

    def finish(self, out):
        numbers, means = self.evaluate()
        analysis.save_elbo_curves(runfolder.read_history(out), out / "elbo.png")
        if self.pairs:
            labels = [label or f"{a.name} -> {b.name}" for a, b, label in self.pairs]
            analysis.save_rows(self.interpolation_rows(means), labels, out / "interpolation.png",
                               title="latent interpolation (originals at both ends)")
        if self.directions:
            analysis.save_arithmetic(self.arithmetic_panels(means), out / "arithmetic.png")
        self.draw_traversal(means, out / "traversal.png")
        self.draw_dataset(out / "dataset.png")
        if self.config.latent_dim == 2:
            analysis.make_padded_gif(sorted((out / "latent").glob("epoch_*.png")), out / "latent.gif")
        return numbers

    def draw_traversal(self, means: torch.Tensor, path) -> None:
        """The PyTorch recipe's walk from the first test image: its posterior mean plus each shift, along every
        dimension at once (the recipe's row) and along each dimension alone, decoded at the shifted mean."""
        dims = analysis.most_varied_dims(means, TRAVERSAL_DIMS)
        offsets = torch.tensor(TRAVERSAL_OFFSETS, device=self.device)
        latents = analysis.traversal_latents(means[0], offsets, dims)
        cond = self.test_conditions(torch.tensor([0], device=self.device))
        cond = None if cond is None else cond.expand(latents.shape[0] * latents.shape[1], -1)
        images = self.decode01(latents.flatten(0, 1), cond).view(*latents.shape[:2], *self.shape)
        name = self.class_names[int(self.test_classes[0])]
        title = f"latent traversal of test image 0 ({name}): posterior mean + shift, decoded"
        if len(dims) < self.config.latent_dim:
            title += (f"\nthe {len(dims)} of {self.config.latent_dim} dimensions whose means vary most over the "
                      "test set")
        labels = ["every dimension (the recipe)"] + [f"z{d + 1} alone" for d in dims]
        analysis.save_traversal(images, to_unit_range(self.data.test.images[0]), TRAVERSAL_OFFSETS, labels,
                                path, title)

    def draw_dataset(self, path) -> None:
        """Hilbers' Fig. 1: the first training images of each class, one class per row."""
        classes = self.classes_of(self.data.train.labels)
        picks = analysis.firsts_per_class(classes, GRID, len(self.class_names))
        blank = torch.ones(*self.shape, device=self.device)
        rows = [torch.stack([to_unit_range(self.data.train.images[i]) for i in index] + [blank] * (GRID - len(index)))
                for index in picks]
        analysis.save_rows(torch.stack(rows), list(self.class_names), path,
                           title=f"the training split: its first {GRID} images of each class")

    def interpolation_rows(self, means: torch.Tensor) -> torch.Tensor:
        """(pairs, GRID + 2, C, H, W): original A, GRID decoded steps from A to B, original B."""
        rows = []
        for a, b, _ in self.pairs:
            index = torch.tensor([a.first(), b.first()], device=self.device)
            cond = self.test_conditions(index)
            z_path = analysis.interpolate(a.endpoint(means), b.endpoint(means), GRID)
            c_path = None if cond is None else analysis.interpolate(cond[0], cond[1], GRID)
            ends = to_unit_range(self.data.test.images[index])
            rows.append(torch.cat([ends[:1], self.decode01(z_path, c_path), ends[1:]]))
        return torch.stack(rows)

    def arithmetic_panels(self, means: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]]:
        """Per direction: decoded a and b (2, C, H, W), the items x, and x + (a - b) decoded, and a title."""
        base = torch.as_tensor(self.shown, device=self.device)
        base_cond = self.test_conditions(base)
        panels = []
        for a, b, label in self.directions:
            moved = self.decode01(means[base] + a.latent(means) - b.latent(means), base_cond)
            ends = torch.cat([self.decode01(side.latent(means)[None], self.side_condition(side)) for side in (a, b)])
            title = (f"{label}: " if label else "") + f"x + (a - b), a = {a.name}, b = {b.name}"
            panels.append((ends, to_unit_range(self.data.test.images[base]), moved, title))
        return panels

    def side_condition(self, side) -> torch.Tensor | None:
        """The condition for decoding one side of an arithmetic spec: that of its first image."""
        index = torch.tensor([side.first()], device=self.device)
        return self.test_conditions(index)

    def generator_spec(self):
        """The decoder with prior z ~ N(0, I); conditional VAEs keep one condition per class of their grid."""
        c, conditions, names = self.config, self.grid_conditions, list(self.class_names)
        if conditions is not None and len(conditions) != len(names):  # products: only subCategories trained on
            names = [names[i] for i in conditions[:, :len(names)].argmax(1).tolist()]
        kwargs = {"arch": c.arch, "shape": list(self.shape), "latent": c.latent_dim, "cond_dim": self.condition_dim,
                  "filters": list(c.filters), "hidden": list(c.hidden)}
        return {"net": self.vae.decoder, "kind": "vae", "builder": "fashion.generator.vae_decoder",
                "kwargs": kwargs, "latent": [{"kind": "normal", "size": c.latent_dim}],
                "conditional": conditions is not None, "classes": names, "conditions": conditions,
                "condition_input": "argument", "image_shape": list(self.shape)}

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self):
        return {"recon_rows": self.recon_rows, "recon_index": self.recon_index}

    def load_state_dict(self, state):
        # A checkpoint that reconstructed other test images (an older version's) starts the figure afresh.
        if state.get("recon_index") == self.recon_index:
            self.recon_rows = dict(state["recon_rows"])


class LatentPlaneVAE(VAETask):
    """A VAE job with a 2-D latent: its dry run also checks the per-epoch latent map and the manifold."""

    expected_files = VAETask.expected_files + ("latent/epoch_001.png", "latent.gif", "manifold.png")

    def __init__(self, config, accelerator, data):
        if config.latent_dim != 2:
            raise ConfigError(f"latent_dim={config.latent_dim}: this job draws the 2-D latent plane, keep 2")
        super().__init__(config, accelerator, data)

