"""The promise to users: an eleventh GAN is one new file, and everything else picks it up."""
import shutil
import subprocess
import sys

from helpers import ROOT

HINGE = '''"""Hinge GAN: margin losses for D, -D(G(z)) for G."""
import torch.nn.functional as F
from fashion.gans.base import GAN, register

@register
class HingeGAN(GAN):
    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": F.relu(1 - self.D(real)).mean(), "fake": F.relu(1 + self.D(fake)).mean()}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": -self.D(fake).mean()}
'''


def test_a_new_gan_file_becomes_a_listed_job_that_trains(fake_fashion_dir, tmp_path):
    copy = tmp_path / "suite"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("outputs", ".git", "__pycache__", "tests"))
    (copy / "fashion" / "gans" / "hinge.py").write_text(HINGE)
    listing = subprocess.run([sys.executable, "launch.py", "--list"], cwd=copy, capture_output=True, text=True)
    assert "gan/hinge" in listing.stdout
    dry = subprocess.run([sys.executable, "launch.py", "gan/hinge", "--dry-run", "--outputs", str(tmp_path / "o")],
                         cwd=copy, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert (tmp_path / "o" / ".dry-run" / "default" / "gan" / "hinge" / "samples.gif").is_file()
