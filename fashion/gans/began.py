"""BEGAN (Berthelot et al. 2017): autoencoder D, L1 reconstruction losses, equilibrium control.

k balances how much D pushes fake losses up; it moves toward gamma * L_real = L_fake at rate lambda_k.
The convergence measure M = L_real + |gamma * L_real - L_fake| is logged. gamma defaults to the
paper's 0.75 (the reference PyTorch code uses 1, where k only rises).

Both learning rates halve (down to lr_floor) after an epoch whose mean M is no lower than the best epoch
mean so far. The reference meant this rule but compares single-iteration values.
"""
import math
from dataclasses import dataclass

import torch

from fashion.gans.base import GAN, GANConfig, register
from fashion.gans.losses import equilibrium, l1_reconstruction
from fashion.gans.networks import AutoencoderDiscriminator


@dataclass
class BEGANConfig(GANConfig):
    gamma: float = 0.75
    "Diversity ratio: target of L_fake / L_real."
    lambda_k: float = 0.001
    "Learning rate of the equilibrium variable k."
    lr_floor: float = 2e-5
    "Learning rates halve after an epoch whose mean M did not improve, but not below this."


@register
class BEGAN(GAN):
    config_class = BEGANConfig

    def __init__(self, config, accelerator, data):
        super().__init__(config, accelerator, data)
        self.k = torch.zeros((), device=self.device)  # stays on device: no host sync per step
        self.best_m = math.inf

    def build_discriminator(self):
        return AutoencoderDiscriminator()

    def reconstruction_loss(self, x):
        return l1_reconstruction(self.D(x)[0], x)

    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": self.reconstruction_loss(real), "fake": -self.k * self.reconstruction_loss(fake)}

    def g_loss(self, fake, labels, latent, noise):
        return {"recon": self.reconstruction_loss(fake)}

    def after_g_step(self, d_terms, g_terms):
        # Global-batch means (shares are equal), so every rank keeps the same k and M means what it does
        # on one process.
        real, fake = self.acc.reduce(torch.stack([d_terms["real"], g_terms["recon"]]), reduction="mean")
        self.k, m = equilibrium(self.k, real, fake, self.config.gamma, self.config.lambda_k)
        return {"k": self.k.clone(), "M": m}

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{n.lower()}": self.opts[n].param_groups[0]["lr"] for n in ("G", "D")}

    def after_epoch(self, epoch, means):
        used = self.learning_rates()
        if means["M"] < self.best_m:
            self.best_m = means["M"]
        else:
            for opt in self.opts.values():
                for group in opt.param_groups:
                    group["lr"] = max(group["lr"] * 0.5, min(group["lr"], self.config.lr_floor))
        return used

    def state_dict(self):
        return {**super().state_dict(), "k": self.k.cpu(), "best_m": self.best_m}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.k = state["k"].to(self.device)
        self.best_m = state.get("best_m", math.inf)
