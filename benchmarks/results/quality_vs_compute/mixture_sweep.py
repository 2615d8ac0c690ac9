# Mixture count K at a reduced training budget (30k pairs, 20 epochs), everything else as the zoo translator.
import sys, time, copy, json
from dataclasses import asdict, replace
import torch
sys.path.insert(0, "benchmarks")  # run from the repository root: .venv/bin/python benchmarks/results/quality_vs_compute/mixture_sweep.py
import quality_vs_compute as Q
from tron.world import load_world
from tron.world_config import locate_world
from tron.pairs import generate_pairs
from tron.training import TrainConfig, fit_translator
from tron.translator import Translator, TranslatorConfig
w = load_world("zoo:shapes"); wd = locate_world("zoo:shapes")
meta = w.translator.metadata
train = replace(TrainConfig(**meta["train_config"]), epochs=20)
t0 = time.time()
z, c = generate_pairs(w.generator, w.encoder, 30000, seed=train.seed, batch_size=1000)
print("pairs", time.time() - t0, flush=True)
size = replace(Q.DEFAULT, seeds=(0, 1), steps=(0, 25))
tasks = {s: Q.ShapesTask(w, wd, size, s) for s in size.seeds}
tron = Q.METHODS[0]
out = {}
for k in (1, 3, 10, 30):
    torch.manual_seed(train.seed)
    tr = Translator(replace(TranslatorConfig(**asdict(w.translator.config)), num_components=k))
    h = fit_translator(tr, z, c, train)
    ww = copy.copy(w); ww.translators = {**w.translators, "default": tr}  # World.translator is read-only: the default of translators
    std = float(tr.log_std.detach().exp().mean())
    for scale in (0.15, 1.0 if k == 1 else None):
        if scale is None: continue
        rows = [r for s, t in tasks.items() for r in Q.run_method(tron, ww, t, None, size, s, 0.1, scale)]
        agg = Q.aggregate(rows)
        for a in agg:
            print(f"K={k} std_scale={scale} learned std {std:.2f} val {h[-1]['val_loss']:.3f} T={a['T']}: full {100*a['accuracy_full']:.1f}±{100*a['accuracy_full_std']:.1f} partial {100*a['accuracy_partial']:.1f} div {a['diversity']:.2f}", flush=True)
