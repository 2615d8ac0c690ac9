"""What the pipeline costs on full-size architectures: BigGAN-deep-128 (pytorch-pretrained-biggan's
default config, 50 M parameters) as G and open_clip ViT-B-32 (151 M) as f, at random init (cost does
not depend on the weights), loaded through the same specs a user writes
(`biggan:DIR`, `open_clip:ViT-B-32:FILE`). Prints pairs/s, translator samples/s and Langevin seconds
per sample-step (plain and with augmented views), on the device given; and the floating-point work
of each (torch's FLOP counter, batch 1), the basis of the README's estimate for GPUs.

    .venv/bin/python benchmarks/full_size_cost.py                 # CPU
    .venv/bin/python benchmarks/full_size_cost.py --device cuda   # a GPU
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402


def write_models(root: Path) -> tuple[str, str]:
    """Random BigGAN-deep-128 and ViT-B-32 weights as the files a user would have."""
    import open_clip
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = BigGANConfig()  # biggan-deep-128
    g = BigGAN(config)
    for m in g.modules():  # its unconditional batch norms are torch.Tensor(n): uninitialised memory, NaN images
        if hasattr(m, "running_means") and not m.conditional:
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    with torch.no_grad():  # power iterations, so spectral norm's stored (u, v) estimate sigma as trained weights would
        for _ in range(10):
            g.train()(torch.zeros(1, config.z_dim), torch.eye(config.num_classes)[:1], 1.0)
    g.eval()
    (root / "biggan").mkdir()
    (root / "biggan" / "config.json").write_text(json.dumps(config.to_dict()))
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, root / "biggan" / "model.safetensors")
    clip = open_clip.create_model("ViT-B-32")
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, root / "vit-b-32.safetensors")
    return f"biggan:{root / 'biggan'}", f"open_clip:ViT-B-32:{root / 'vit-b-32.safetensors'}"


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def gflops(fn) -> float:
    """Floating-point operations of one call (multiply-adds count as 2), in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


# Long: the benchmark is one script: time each stage and write the table, in the order they run.
def main(argv=None) -> None:
    from tron.augment import AugmentConfig
    from tron.components import load_encoder_spec, load_generator_spec
    from tron.evaluation import markdown_table
    from tron.langevin import LangevinConfig, langevin_dynamics
    from tron.pairs import generate_pairs
    from tron.sampler import Sampler
    from tron.translator import Translator, TranslatorConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8, help="G/f batch for pairs and Langevin")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--views", type=int, default=8, help="augmented views for the augmented Langevin figure")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        g_spec, f_spec = write_models(Path(tmp))
        t0 = time.perf_counter()
        g, f = load_generator_spec(g_spec, args.device), load_encoder_spec(f_spec, args.device)
        load = time.perf_counter() - t0
        params = {"G": sum(p.numel() for p in g.parameters()), "f": sum(p.numel() for p in f.parameters())}
        b = args.batch
        seconds = timed(lambda: generate_pairs(g, f, b, seed=0, batch_size=b), args.repeats)
        rows.append({"what": f"pairs (G + f forward, batch {b})", "value": b / seconds, "unit": "pairs/s"})
        t = Translator(TranslatorConfig(cond_dim=f.embed_dim, latent_dim=g.latent_dim, hidden_dim=2048, num_blocks=1,
                                        num_components=10, normalize_condition=True)).to(args.device).eval()
        c = torch.nn.functional.normalize(torch.randn(1024, f.embed_dim, device=args.device), dim=-1)
        seconds = timed(lambda: t.sample(c), args.repeats)
        rows.append({"what": "translator samples (2048 wide, batch 1024)", "value": 1024 / seconds, "unit": "samples/s"})
        sampler = Sampler(g, f)
        z0 = g.sample_latents(b, torch.Generator(device=args.device).manual_seed(0))
        cb = c[:b]
        for views in (0, args.views):
            cfg = LangevinConfig(steps=2, step_size=0.1, noise_std=0.01, momentum=0.99, grad_clip=1.0,
                                 augment=AugmentConfig.diffaugment(views) if views else AugmentConfig())
            seconds = timed(lambda cfg=cfg: langevin_dynamics(z0, sampler.energy_fn(cb, cfg.augment), cfg,
                                                              project=g.project), args.repeats)
            rows.append({"what": f"Langevin step ({views or 'no'} views, batch {b})", "value": seconds / (2 * b),
                         "unit": "s per sample-step"})
        finite = bool(torch.isfinite(g.decode(z0)).all())
        z1, c1 = z0[:1], cb[:1]
        # Counted with a z that requires grad: otherwise torch's fused attention fast path escapes the counter.
        zg = z1.detach().clone().requires_grad_(True)
        work = {"G forward": gflops(lambda: g.decode(zg)), "f forward (with its resize)": gflops(lambda: f.encode(g.decode(zg)))}
        work["f forward (with its resize)"] -= work["G forward"]
        work["translator sample"] = gflops(lambda: t.sample(c1))
        for views in sorted({0, args.views, 50}):  # 50: the reference preset's views
            augment = AugmentConfig.diffaugment(views) if views else AugmentConfig()

            def step(augment=augment) -> None:  # one Langevin step's gradient (the counter cannot follow autograd.grad)
                z = z1.detach().clone().requires_grad_(True)
                sampler.energy_fn(c1, augment)(z, torch.arange(1, device=z.device), 0).sum().backward()

            work[f"Langevin step, {views or 'no'} views (G + f forward and backward)"] = gflops(step)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; G {params['G'] / 1e6:.1f} M, "
          f"f {params['f'] / 1e6:.1f} M parameters; loading both {load:.1f} s; G's images finite: {finite}\n")
    print(markdown_table(rows, [("what", "measured", ""), ("value", "value", ".3g"), ("unit", "unit", "")]))
    print("\nWork per sample (torch.utils.flop_counter, batch 1):\n")
    print(markdown_table([{"what": k, "gflop": v} for k, v in work.items()], [("what", "per sample", ""), ("gflop", "GFLOP", ".3g")]))


if __name__ == "__main__":
    main()
