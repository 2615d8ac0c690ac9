"""Golden values: a small slice of seeded outputs compared with stored numbers, so a drift that
moves every number alike (a changed draw order, a rescaled step) cannot pass unnoticed. When a
change is meant to move them, regenerate the numbers and say why in the commit."""
import torch

from tron import energies
from tron.augment import AugmentConfig, augment
from tron.langevin import LangevinConfig, langevin_dynamics
from tron.pairs import generate_pairs
from tron.sampler import Sampler

TOL = dict(atol=1e-5, rtol=1e-5)


def test_sampler_output_slice(tiny_generator, tiny_classifier, tiny_translator):
    s = Sampler(tiny_generator, tiny_classifier, tiny_translator)
    cfg = LangevinConfig(steps=4, step_size=0.5, noise_std=0.05, momentum=0.5, grad_clip=1.0)
    res = s.sample(tiny_classifier.condition_from_labels([1, 7]), 2, cfg, seed=3)
    assert torch.allclose(res.latents[:2], torch.tensor([
        [0.08886092156171799, -0.07166935503482819, 1.4158082008361816, -0.7939664125442505],
        [-0.7100389003753662, -0.30095839500427246, 0.506471574306488, -2.4532723426818848]]), **TOL)
    assert torch.allclose(res.energies, torch.tensor([2.2810394763946533, 2.2810537815093994, 2.2354114055633545,
                                                      2.2354578971862793]), **TOL)
    assert torch.allclose(res.images[0, 0, 7, 4:8], torch.tensor([0.4744062125682831, 0.47720324993133545,
                                                                  0.47385460138320923, 0.4752374291419983]), **TOL)


def test_pair_slice(tiny_generator, tiny_classifier):
    z, c = generate_pairs(tiny_generator, tiny_classifier, 6, seed=11, batch_size=4)
    assert torch.allclose(torch.from_numpy(z[5]), torch.tensor([-0.2342843860387802, -1.071309208869934,
                                                                0.16479843854904175, 0.11565449088811874]), **TOL)
    assert torch.allclose(torch.from_numpy(c[5, :3]), torch.tensor([0.10472545027732849, 0.10218223184347153,
                                                                    0.09289661049842834]), **TOL)


def test_view_slice():
    x = torch.linspace(0, 1, 3 * 8 * 8).view(1, 3, 8, 8)
    v = augment(x, AugmentConfig.diffaugment(num=2), step=5)
    assert torch.allclose(v[:, 0, 1, 3, 2:6], torch.tensor([[0.6252506375312805, 0.63112872838974, 0.6370067000389099,
                                                             0.6428849697113037], [0.0, 0.0, 0.0, 0.5846265554428101]]), **TOL)


def test_sgld_with_momentum_slice():
    z = langevin_dynamics(torch.zeros(2, 3), lambda z, rows, t: energies.quadratic(z, torch.ones(3)),
                          LangevinConfig(steps=3, step_size=0.2, noise_std=0.1, momentum=0.9), torch.Generator().manual_seed(4))
    assert torch.allclose(z, torch.tensor([[0.7419814467430115, 1.0261353254318237, 1.0226155519485474],
                                           [1.0045113563537598, 0.9368562698364258, 1.1493439674377441]]), **TOL)
