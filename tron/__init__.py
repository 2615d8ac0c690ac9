"""tron: frozen unconditional generators made conditional (TR0N).

The library in the order its modules import each other (each imports only those above it;
tests/test_structure.py fails on any import cycle):

    data          errors, files, arguments, registry, allocator, priors, augment, energies, langevin,
                  translator, training, world_config, specs, checkpoint, storage, uris
    parts         parts (what G, f and captioners share), generators, encoders, images, conditions,
                  clip, captioners, pairs, dataset, adapters/*
    components    spec -> G, f or captioner, and their fingerprints
    sampling      baselines, sampler (translator -> Langevin -> decode), presets
    world         World, load_world, create_world
    measurement   diversity, evaluation, judges, zoo/* (each zoo world: its parts, reached by entry points, and its judge)
    cli           the `tron` command
    recipes/*     re-create the zoo worlds from seeds

The pipelines (pipelines/: Ray, MLflow) import the library, never the reverse.
"""
__version__ = "0.1.0"
