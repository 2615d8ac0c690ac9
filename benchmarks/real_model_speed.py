"""How fast the faces world's real models run on this CPU, against the CPU's own measured peak:
pair generation (z -> G(z) -> f's softmax and pooled features, `tron.pairs.generate_columns`) and a
Langevin step (forward and backward through G and f over the world's augmented views).

    .venv/bin/python benchmarks/real_model_speed.py                 # every table (about 25 min)
    .venv/bin/python benchmarks/real_model_speed.py --quick         # a smoke run (under a minute)
    .venv/bin/python benchmarks/real_model_speed.py --out benchmarks/results/real_model_speed/results.md

G is gan-face-generate's DCGAN, f EfficientNet-Lite0 at 224 px, loaded as `zoo:faces` loads them.
"package" runs f through the package's own forward, as tron did before `frozen_features`
(tron/adapters/efficientnet.py); "frozen" is tron's eval-mode path (batch norm folded into the
convolutions, ReLU6 in place, channels-last). bf16 variants wrap the work in
`torch.autocast("cpu", dtype=torch.bfloat16)`; their answers are compared with the fp32 package's on
the same seeded samples of G.

Timings are the minimum over repeats after a warm-up. Before each one the script waits (up to
--max-wait seconds) until other processes use less than half a core, and each row reports the
cores that other processes used while it ran ("others"), from /proc/stat less this process's time.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

WORLD = "zoo:faces"
TARGETS = {836: "sunglass", 906: "Windsor tie", 793: "shower cap"}


# -- the machine ---------------------------------------------------------------------------------

def busy_jiffies() -> int:
    """Busy CPU time of the whole machine, in clock ticks, from /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


TICK = os.sysconf("SC_CLK_TCK")


def others_now(window: float = 2.0) -> float:
    """Cores that other processes use now (this one sleeps while it looks)."""
    b0 = busy_jiffies()
    time.sleep(window)
    return (busy_jiffies() - b0) / TICK / window


def wait_quiet(max_wait: float, limit: float = 0.5) -> float:
    """Wait until other processes use under `limit` cores, or max_wait seconds; returns their last use."""
    if max_wait <= 0:
        return float("nan")
    deadline = time.monotonic() + max_wait
    load = others_now()
    while load > limit and time.monotonic() < deadline:
        print(f"  (others use {load:.1f} cores, 1-min load {os.getloadavg()[0]:.2f}: waiting)", file=sys.stderr, flush=True)
        time.sleep(30)
        load = others_now()
    return load


def timed(fn, repeats: int) -> tuple[float, float]:
    """(min seconds of fn() over repeats after one warm-up call, cores others used meanwhile)."""
    fn()
    best, busy, own, wall = float("inf"), 0, 0.0, 0.0
    for _ in range(repeats):
        b0, c0, t0 = busy_jiffies(), time.process_time(), time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best, busy, own, wall = min(best, t), busy + busy_jiffies() - b0, own + time.process_time() - c0, wall + t
    return best, max(0.0, (busy / TICK - own) / wall)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = ", ".join(f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags)
    mem = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) / 2**20
    return (f"{model}, {os.cpu_count()} cores ({isa}), {mem:.0f} GiB; torch {torch.__version__} "
            f"(oneDNN {torch.backends.mkldnn.is_available()}, {torch.backends.cpu.get_cpu_capability()}), "
            f"Python {platform.python_version()}")


# -- f as the package runs it, and the precision variants -------------------------------------------

def package_features(f, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """f's pooled features as tron computed them before frozen_features: resize, normalise, the
    package's extract_features."""
    if x.shape[-2:] != (f.image_size, f.image_size):
        x = F.interpolate(x, size=(f.image_size, f.image_size), mode="bilinear", align_corners=False, antialias=True)
    x = (255 * x - 127) / 128
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return f.model.extract_features(x).mean(dim=(2, 3))


@contextlib.contextmanager
def variant(G, f, path: str = "frozen", layout: str = "cl", g_channels_last: bool = False, autocast: str = "",
            inference: bool = False, fpmath: str = ""):
    """G and f set up as one variant for the block's duration.

    path      "package" (the package's forward) or "frozen" (tron's frozen_features)
    layout    "cl" channels-last activations (and weights, for the package) or "nchw"
    autocast  "" fp32, "f" bf16 autocast around f, "gf" around G and f
    fpmath    "bf16": oneDNN's fp32 convolutions and matmuls compute in bf16 (implicit down-conversion)
    """
    from tron.adapters import efficientnet

    cl = layout == "cl"
    stack = contextlib.ExitStack()
    if path == "package":
        if cl:
            f.model.to(memory_format=torch.channels_last)
            stack.callback(lambda: f.model.to(memory_format=torch.contiguous_format))
        f.features = lambda x: package_features(f, x, cl)
        stack.callback(lambda: delattr(f, "features"))
    elif not cl:
        real = efficientnet.frozen_features
        efficientnet.frozen_features = lambda net, x: real(net, x, torch.contiguous_format)
        stack.callback(lambda: setattr(efficientnet, "frozen_features", real))
    if g_channels_last:
        G.net.to(memory_format=torch.channels_last)
        stack.callback(lambda: G.net.to(memory_format=torch.contiguous_format))
    if autocast == "f":
        classify = f.classify

        def classify_bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                p, u = classify(x)
            return p.float(), u.float()
        f.classify = classify_bf16
        stack.callback(lambda: delattr(f, "classify"))
    elif autocast == "gf":
        stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    if fpmath:
        old = torch.backends.mkldnn.conv.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision
        torch.backends.mkldnn.conv.fp32_precision = torch.backends.mkldnn.matmul.fp32_precision = fpmath

        def restore():
            torch.backends.mkldnn.conv.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision = old
        stack.callback(restore)
    if inference:
        stack.enter_context(torch.inference_mode())
    with stack:
        yield


PAIR_VARIANTS = {  # name -> (variant settings, what it is)
    "baseline": (dict(path="package", layout="nchw"), "package forward, no_grad: the code before this change"),
    "+ inference_mode": (dict(path="package", layout="nchw", inference=True), "package, torch.inference_mode"),
    "+ channels_last": (dict(path="package", layout="cl"), "package, weights and input channels-last"),
    "+ bf16 autocast (f)": (dict(path="package", layout="nchw", autocast="f"), "package, f under bf16 autocast"),
    "frozen nchw": (dict(path="frozen", layout="nchw"), "frozen_features, NCHW: BN folded, ReLU6 in place, conv padding"),
    "frozen": (dict(path="frozen"), "frozen_features, channels-last: tron now"),
    "frozen + inference_mode": (dict(path="frozen", inference=True), ""),
    "frozen + G channels_last": (dict(path="frozen", g_channels_last=True), ""),
    "frozen + oneDNN bf16 fpmath": (dict(path="frozen", fpmath="bf16"), "mkldnn.{conv,matmul}.fp32_precision = bf16"),
    "frozen + bf16 autocast (f)": (dict(path="frozen", autocast="f"), ""),
    "frozen + bf16 autocast (G, f)": (dict(path="frozen", autocast="gf"), ""),
}
NUMERIC = ["frozen nchw", "frozen", "+ bf16 autocast (f)", "frozen + oneDNN bf16 fpmath", "frozen + bf16 autocast (f)",
           "frozen + bf16 autocast (G, f)"]


def pair_loop(G, f, n: int, batch: int, seed: int = 0):
    from tron.encoders import FEATURES, MAIN
    from tron.pairs import generate_columns

    return generate_columns(G, f, n, seed, batch, spaces=(MAIN, FEATURES))


@contextlib.contextmanager
def compiled(G, f, bf16: bool):
    """G.decode and f.classify through torch.compile (inductor, weights frozen into the graph)."""
    import torch._inductor.config as inductor

    inductor.freezing = True
    decode, classify = G.decode, f.classify
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def decode_fn(z):
        with ctx():
            return decode(z)

    def classify_fn(x):
        with ctx():
            p, u = classify(x)
        return p.float(), u.float()
    G.decode = torch.compile(decode_fn, dynamic=False)
    f.classify = torch.compile(classify_fn, dynamic=False)
    try:
        yield
    finally:
        del G.decode, f.classify


# -- the tables ----------------------------------------------------------------------------------

def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def flop_table(G, f) -> tuple[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    from tron.adapters.efficientnet import frozen_features

    def count(fn, *args) -> int:
        with FlopCounterMode(display=False) as counter:
            fn(*args)
        return counter.get_total_flops()

    with torch.no_grad():
        z = torch.randn(1, G.latent_dim)
        x = G.decode(z)
        g = count(G.decode, z)
        s = f.image_size
        xs = f.preprocess(x)
        fn = count(lambda t: f.model._fc(frozen_features(f.model, t).mean(dim=(2, 3))), xs)
        fp = count(lambda t: f.model.extract_features(t), xs)
    # The separable bilinear resize, 64 -> 224 px: each output reads 2 inputs along each axis.
    h = x.shape[-1]
    resize = 2 * 3 * 2 * (h * s + s * s)
    total = g + resize + fn
    rows = [["G(z): DCGAN 100 -> 3x64x64", f"{g / 2e6:.1f}", f"{g / 1e9:.3f}", f"{100 * g / total:.1f} %"],
            [f"resize 64 -> {s} px (bilinear, counted by hand)", f"{resize / 2e6:.2f}", f"{resize / 1e9:.4f}",
             f"{100 * resize / total:.2f} %"],
            [f"f: EfficientNet-Lite0 at {s} px (+ fc)", f"{fn / 2e6:.1f}", f"{fn / 1e9:.3f}", f"{100 * fn / total:.1f} %"],
            ["pair", f"{total / 2e6:.1f}", f"{total / 1e9:.3f}", "100 %"]]
    note = (f"FlopCounterMode (torch.utils.flop_counter), one image; FLOP = 2 x multiply-add. The package's "
            f"extract_features counts the same ({fp / 2e6:.1f} M MAC without fc): folding BN adds none. "
            "Batch norm, ReLU6, padding and the skip additions are not multiply-adds and are not counted.")
    return table(["part", "M MAC / image", "GFLOP / image", "share"], rows) + "\n\n" + note, total


def peak_table(quick: bool, max_wait: float) -> tuple[str, dict]:
    n = 1024 if quick else 4096
    rows, peak = [], {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            wait_quiet(max_wait)
            t, others = timed(lambda a=a, b=b: a @ b, 2 if quick else 4)
            gflops = 2 * n**3 / t / 1e9
            peak[(dtype, threads)] = gflops
            rows.append([str(dtype).replace("torch.", ""), threads, f"{gflops:.0f}", f"{gflops / threads:.0f}", f"{others:.2f}"])
    torch.set_num_threads(1)
    return table([f"matmul {n}x{n}", "threads", "GFLOP/s", "per core", "others"], rows), peak


def share(name: str, rate: float, flops: float, peak: dict, threads: int) -> str:
    """rate's GFLOP/s as a share of the matmul peak in the variant's own arithmetic (bf16 or fp32)."""
    dtype = torch.bfloat16 if "bf16 autocast" in name else torch.float32
    return f"{100 * rate * flops / 1e9 / peak[(dtype, threads)]:.0f} % {str(dtype)[6:]}"


def pair_table(G, f, names, n: int, batch: int, repeats: int, flops: float, peak: dict, max_wait: float,
               with_compile: bool) -> tuple[str, dict]:
    rows, rates = [], {}

    def row(name, what, fn):
        wait_quiet(max_wait)
        t, others = timed(fn, repeats)
        rate = n / t
        rates[name] = rate
        rows.append([name, what, f"{rate:.1f}", f"{rate / rates.get('baseline', rate):.2f}x",
                     f"{rate * flops / 1e9:.1f}", share(name, rate, flops, peak, 1), f"{others:.2f}"])

    for name in names:
        settings, what = PAIR_VARIANTS[name]
        with variant(G, f, **settings):
            row(name, what, lambda: pair_loop(G, f, n, batch))
    if with_compile:
        for bf16 in (False, True):
            name = f"torch.compile{' + bf16 autocast (G, f)' if bf16 else ''}"
            with compiled(G, f, bf16), torch.no_grad():
                t0 = time.perf_counter()
                pair_loop(G, f, batch, batch)
                what = f"inductor, freezing; first call (compile) {time.perf_counter() - t0:.0f} s"
                row(name, what, lambda: pair_loop(G, f, n, batch))
    head = ["variant", "what", "pairs/s", "vs baseline", "GFLOP/s", "of the 1-thread peak", "others"]
    return table(head, rows), rates


def quality_table(G, f, n: int, with_compile: bool) -> str:
    """Each variant's answers on the same n seeded samples of G against the fp32 package's."""
    from tron.encoders import FEATURES, MAIN
    from tron.pairs import generate_columns

    def answers(**settings):
        with variant(G, f, **settings):
            cols = generate_columns(G, f, n, 1234, 64, spaces=(MAIN, FEATURES))
        return torch.from_numpy(cols["c"]), torch.from_numpy(cols["c_features"])

    p0, u0 = answers(path="package", layout="nchw")
    rows = []

    def row(name, p, u):
        agree = (p.argmax(1) == p0.argmax(1)).float().mean()
        cos = (u * u0).sum(1)
        rows.append([name, f"{100 * agree:.2f} %", f"{(p - p0).abs().max():.2e}", f"{cos.mean():.6f}", f"{cos.min():.6f}"])

    for name in NUMERIC:
        row(name, *answers(**PAIR_VARIANTS[name][0]))
    if with_compile:
        for bf16 in (False, True):
            with compiled(G, f, bf16), torch.no_grad():
                cols = generate_columns(G, f, n, 1234, 64, spaces=(MAIN, FEATURES))
            row(f"torch.compile{' + bf16 autocast (G, f)' if bf16 else ''}", torch.from_numpy(cols["c"]),
                torch.from_numpy(cols["c_features"]))
    head = [f"variant ({n} samples of G, seed 1234)", "top-1 agreement", "max abs diff softmax",
            "mean cos features", "min cos features"]
    return table(head, rows)


@contextlib.contextmanager
def bf16_energy(sampler):
    """The sampler's Langevin energy (the forward through G and f, and so its backward) under bf16
    autocast; the translator's starts and everything else stay fp32."""
    energy_fn = sampler.energy_fn

    def wrapped(c, views=None):
        fn = energy_fn(c, views)

        def energy(z, rows, t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return fn(z, rows, t).float()
        return energy
    sampler.energy_fn = wrapped
    try:
        yield
    finally:
        del sampler.energy_fn


LANGEVIN_VARIANTS = {  # name -> (pair variant settings, bf16 energy)
    "baseline (package)": (dict(path="package", layout="nchw"), False),
    "package + channels_last": (dict(path="package", layout="cl"), False),
    "frozen": (dict(path="frozen"), False),
    "frozen + bf16 autocast": (dict(path="frozen"), True),
}


def langevin_step(world, name: str, chains: int, steps: int) -> tuple[float, float]:
    """(min seconds per step over the steps after the first, cores others used meanwhile): chains
    for label 836 from prior starts at the world's Langevin defaults."""
    from tron.langevin import langevin_dynamics

    sampler = world.sampler()
    config = world.langevin.with_overrides(steps=steps)
    c = world.encoder.condition_from_labels([836] * chains)
    z0 = world.generator.sample_latents(chains, torch.Generator().manual_seed(0))
    settings, bf16 = LANGEVIN_VARIANTS[name]
    with variant(world.generator, world.encoder, **settings), (bf16_energy(sampler) if bf16 else contextlib.nullcontext()):
        b0, c0, marks = busy_jiffies(), time.process_time(), [time.perf_counter()]
        langevin_dynamics(z0, sampler.energy_fn(c, config.augment), config, torch.Generator().manual_seed(1),
                          callback=lambda t, z, e: marks.append(time.perf_counter()))
    wall = marks[-1] - marks[0]
    others = max(0.0, ((busy_jiffies() - b0) / TICK - (time.process_time() - c0)) / wall)
    return (min(b - a for a, b in zip(marks[1:], marks[2:])) if len(marks) > 2 else wall), others


def langevin_table(world, names, chains_list, threads_list, steps: int, max_wait: float) -> str:
    """Seconds per Langevin step at the world's defaults: G(z), the step's fresh views, f, backward."""
    rows, base = [], {}
    for threads in threads_list:
        torch.set_num_threads(threads)
        for chains in chains_list:
            for name in names:
                wait_quiet(max_wait)
                step, others = langevin_step(world, name, chains, steps)
                base.setdefault((threads, chains), step)
                rows.append([name, threads, chains, f"{step:.3f}", f"{step / chains * 1e3:.0f}",
                             f"{base[(threads, chains)] / step:.2f}x", f"{others:.2f}"])
    torch.set_num_threads(1)
    views = world.langevin.augment.num
    return table(["variant", "threads", "chains", "s / step", f"ms / chain-step ({views} views)", "vs baseline",
                  "others"], rows)


def outcome_table(world, names, chains: int, steps: int) -> str:
    """The same chains (same translator starts, same noise) under each variant: f's fp32 probability
    of the target at the end, and how far the final latents moved from the baseline's."""
    sampler = world.sampler()
    config = world.langevin.with_overrides(steps=steps)
    f = world.encoder
    rows, ref = [], {}
    for name in names:
        settings, bf16 = LANGEVIN_VARIANTS[name]
        for label, title in TARGETS.items():
            c = f.condition_from_labels([label])
            with variant(world.generator, f, **settings), (bf16_energy(sampler) if bf16 else contextlib.nullcontext()):
                res = sampler.sample(c, num_per_condition=chains, langevin=config, seed=label)
            with torch.no_grad():
                p = f.encode(res.images)  # fp32, tron's f
            target, top1 = p[:, label], (p.argmax(1) == label).float()
            ref.setdefault(label, (target, res.latents))
            dz = (res.latents - ref[label][1]).norm(dim=1) / ref[label][1].norm(dim=1)
            rows.append([name, f"{label} {title}", f"{target.mean():.3f}", f"{100 * top1.mean():.0f} %",
                         f"{(target - ref[label][0]).abs().max():.3f}", f"{dz.max():.3f}"])
    head = ["variant", "target", f"mean p(target) after {steps} steps ({chains} chains)", "top-1 = target",
            "max abs diff p vs baseline", "max rel diff z_T vs baseline"]
    return table(head, rows)


# -- fresh processes: allocators, batch sizes, thread layouts --------------------------------------------

ALLOCATORS = {  # name -> environment of the process (read at its start by glibc and by torch)
    "glibc default": {},
    "malloc keeps memory": {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)},
    "THP": {"THP_MEM_ALLOC_ENABLE": "1"},
    "malloc + THP": {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1),
                     "THP_MEM_ALLOC_ENABLE": "1"},
}


def worker(args) -> None:
    """One timed process: load, warm up, say "ready", wait for "go", time, report as JSON."""
    from tron.world import load_world

    torch.set_num_threads(args.threads)
    world = load_world(WORLD)
    G, f = world.generator, world.encoder
    if args.task == "langevin":
        print("ready", flush=True)
        sys.stdin.readline()
        b0, c0, t0 = busy_jiffies(), time.process_time(), time.perf_counter()
        step, _ = langevin_step(world, args.variant, args.batch, args.repeats + 1)
        print(json.dumps({"step": step, "busy": (busy_jiffies() - b0) / TICK, "cpu": time.process_time() - c0,
                          "wall": time.perf_counter() - t0}), flush=True)
        return
    with variant(G, f, **PAIR_VARIANTS[args.variant][0]):
        pair_loop(G, f, args.batch, args.batch)
        print("ready", flush=True)
        sys.stdin.readline()
        b0, c0, times = busy_jiffies(), time.process_time(), []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pair_loop(G, f, args.pairs, args.batch)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"rate": args.pairs / min(times), "busy": (busy_jiffies() - b0) / TICK,
                      "cpu": time.process_time() - c0, "wall": sum(times)}), flush=True)


def in_processes(task: str, name: str, allocator: str, procs: int, threads: int, batch: int, pairs: int,
                 repeats: int, max_wait: float) -> tuple[float, float]:
    """(pairs/s summed over the processes, or seconds per Langevin step; cores others used meanwhile)."""
    wait_quiet(max_wait)
    cmd = [sys.executable, __file__, "--worker", "--task", task, "--variant", name, "--threads", str(threads),
           "--batch", str(batch), "--pairs", str(pairs), "--repeats", str(repeats)]
    env = {**os.environ, **ALLOCATORS[allocator]}
    ps = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in range(procs)]
    for p in ps:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a worker failed before timing ({line.strip()!r}): {' '.join(cmd)}")
    for p in ps:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in ps]
    # Each process saw the machine busy for its own time, its siblings' (at their mean rate) and others'.
    rates = [r["cpu"] / r["wall"] for r in results]
    others = sum(max(0.0, (r["busy"] - r["cpu"]) / r["wall"] - (sum(rates) - rate))
                 for r, rate in zip(results, rates)) / len(results)
    if task == "langevin":
        return results[0]["step"], others
    return sum(r["rate"] for r in results), others


def allocator_table(names, allocators, batch: int, pairs: int, repeats: int, flops: float, peak: dict,
                    langevin: list[str], chains: int, max_wait: float) -> str:
    rows = []
    for name in names:
        for allocator in allocators:
            rate, others = in_processes("pairs", name, allocator, 1, 1, batch, pairs, repeats, max_wait)
            rows.append([f"pairs: {name}", allocator, f"{rate:.1f} pairs/s", share(name, rate, flops, peak, 1),
                         f"{others:.2f}"])
    for name in langevin:
        for allocator in allocators:
            step, others = in_processes("langevin", name, allocator, 1, 2, chains, 0, 3, max_wait)
            rows.append([f"Langevin, 2 threads, {chains} chains: {name}", allocator, f"{step:.3f} s / step", "",
                         f"{others:.2f}"])
    return table(["work", "allocator (process environment)", "speed", "of the 1-thread peak", "others"], rows)


def batch_table(runs, batches, n: int, repeats: int, flops: float, peak: dict, max_wait: float) -> str:
    rows = []
    for name, allocator in runs:
        for b in batches:
            m = max(n, b)
            rate, others = in_processes("pairs", name, allocator, 1, 1, b, m, repeats, max_wait)
            rows.append([name, allocator, b, f"{rate:.1f}", share(name, rate, flops, peak, 1), f"{others:.2f}"])
    return table(["variant", "allocator", "batch", "pairs/s", "of the 1-thread peak", "others"], rows)


def layout_table(runs, n: int, batch: int, repeats: int, flops: float, peak: dict, max_wait: float) -> str:
    rows = []
    for name, allocator in runs:
        for procs, threads in ((1, 1), (1, 2), (2, 1)):
            rate, others = in_processes("pairs", name, allocator, procs, threads, batch, n, repeats, max_wait)
            rows.append([name, allocator, f"{procs} x {threads}", f"{rate:.1f}", f"{rate * flops / 1e9:.0f}",
                         share(name, rate, flops, peak, 2), f"{others:.2f}"])
    return table(["variant", "allocator", "processes x threads", "pairs/s (sum)", "GFLOP/s", "of the 2-thread peak",
                  "others"], rows)


# -- main ------------------------------------------------------------------------------------------

# Long: the benchmark is one script: each measurement in turn, then the table, in the order they run.
def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny counts and no waiting: a smoke run")
    p.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    p.add_argument("--max-wait", type=float, default=900, help="seconds to wait for a quiet machine before a timing")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out: "
                                              "peak,pairs,compile,allocator,batch,layout,quality,langevin,outcome")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", default="pairs", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="frozen", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    p.add_argument("--pairs", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return ""
    from tron.world import load_world

    quick, skip = args.quick, set(filter(None, args.skip.split(",")))
    max_wait = 0 if quick else args.max_wait
    torch.set_num_threads(1)
    world = load_world(WORLD)
    G, f = world.generator, world.encoder
    out: list[str] = []

    def emit(text: str) -> None:
        print(text + "\n", flush=True)
        out.append(text)

    command = " ".join(["python benchmarks/real_model_speed.py", *(sys.argv[1:] if argv is None else argv)])
    set_env = ", ".join(f"{k}={os.environ[k]}" for k in sorted({k for a in ALLOCATORS.values() for k in a}) if k in os.environ)
    emit(f"# Real-model speed on CPU: faces (DCGAN G, EfficientNet-Lite0 f)\n\n{datetime.datetime.now():%Y-%m-%d %H:%M} · "
         f"{machine()}\n\n`{command}`; others' CPU use at the start: {others_now():.2f} cores; this process's "
         f"allocator: {set_env or 'glibc default'}")
    flops_md, flops = flop_table(G, f)
    emit("## FLOPs per pair\n\n" + flops_md)
    peak = {(d, t): float("nan") for d in (torch.float32, torch.bfloat16) for t in (1, 2)}
    if "peak" not in skip:
        peak_md, peak = peak_table(quick, max_wait)
        emit("## The CPU's measured peak (the roofline)\n\n" + peak_md)
    n, batch, repeats = (8, 8, 1) if quick else (128, 64, 3)
    best = "frozen + bf16 autocast (G, f)"
    if "pairs" not in skip:
        names = ["baseline", "frozen", best] if quick else list(PAIR_VARIANTS)
        pairs_md, _ = pair_table(G, f, names, n, batch, repeats, flops, peak, max_wait, not quick and "compile" not in skip)
        emit(f"## Pair generation: one thread, batch {batch}, {n} pairs per timing, this process\n\n`generate_columns` "
             "(G decode, f classify: softmax and unit features) as a build task runs it; GFLOP/s from the FLOPs above; "
             "share of the 1-thread matmul peak in the variant's arithmetic (fp32, or bf16 under autocast).\n\n" + pairs_md)
    if "allocator" not in skip:
        names, allocators = (["frozen"], ["glibc default", "malloc + THP"]) if quick else \
            (["baseline", "frozen", best], list(ALLOCATORS))
        langevin = [] if quick else ["frozen", "frozen + bf16 autocast"]
        emit(f"## The allocator: each row a fresh process (one thread for pairs, batch {batch}, {n} pairs per timing)\n\n"
             "glibc returns every large tensor's memory to the kernel when it is freed (mmap above its threshold, "
             "trim of the heap top), so each batch page-faults its activations in again; "
             "`MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_` keep it in the heap, `THP_MEM_ALLOC_ENABLE=1` "
             "has torch ask for transparent huge pages.\n\n"
             + allocator_table(names, allocators, batch, n, repeats, flops, peak, langevin, 8, max_wait))
    if "batch" not in skip and not quick:
        runs = [("frozen", "glibc default"), ("frozen", "malloc + THP"), (best, "malloc + THP")]
        emit(f"## Batch size: one thread, fresh processes ({n} pairs or one batch per timing)\n\n"
             + batch_table(runs, [1, 4, 8, 16, 32, 64, 100, 128, 256], n, repeats, flops, peak, max_wait))
    if "layout" not in skip and not quick:
        runs = [("baseline", "glibc default"), ("frozen", "glibc default"), ("frozen", "malloc + THP"),
                (best, "malloc + THP")]
        emit(f"## Thread layout: one process with two threads vs two processes with one each (build_dataset's "
             f"tasks), batch {batch}, {n} pairs per process per timing\n\n"
             + layout_table(runs, n, batch, repeats, flops, peak, max_wait))
    if "quality" not in skip:
        torch.set_num_threads(2)
        emit("## Answers kept: each variant against the fp32 package on the same samples of G\n\n"
             + quality_table(G, f, 8 if quick else 1024, not quick and "compile" not in skip))
    if "langevin" not in skip:
        names = ["baseline (package)", "frozen + bf16 autocast"] if quick else list(LANGEVIN_VARIANTS)
        steps = 2 if quick else 4
        emit(f"## Langevin: seconds per step at the faces defaults, this process ({world.langevin.augment.num} fresh "
             f"translation views, forward and backward through G and f; min over {max(1, steps - 1)} steps after "
             "the first)\n\n" + langevin_table(world, names, [2] if quick else [8, 32], [2] if quick else [1, 2], steps,
                                              max_wait))
    if "outcome" not in skip:
        torch.set_num_threads(2)
        names = ["baseline (package)", "frozen + bf16 autocast"] if quick else \
            ["baseline (package)", "frozen", "frozen + bf16 autocast"]
        emit("## Langevin outcome: the same chains (translator starts, noise) under each variant\n\n"
             + outcome_table(world, names, 2 if quick else 8, 2 if quick else world.langevin.steps))
    torch.set_num_threads(1)
    text = "\n\n".join(out) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
