"""The mechanism benchmark (`actavatar bench mechanism`): does a model trained with this toolkit
follow phase captions, and does PACA beat plain cross-attention? Measured on exact ground truth.

A synthetic corpus (`actavatar synth --profile mechanism`) goes through the real pipeline
(`data run` with exact captions), a compact VAE is trained on it (`actavatar models train-vae`),
the arms train with `actavatar train` configs, held-out test windows are sampled with each arm and
the exact pixel reader (`dataset.synth.detect_actions`) scores when each action happens.

    config.py    MechanismConfig and the smoke / cpu / gpu presets
    corpus.py    synth -> tiny encoders -> data run per split -> test windows (DIR/benchmark)
    arms.py      the arms as TrainConfig YAMLs; training in child processes
    evaluate.py  sampling through `actavatar eval`'s path, reader labels, reference rows
    scores.py    new-action accuracy and the other phase-timing scores (pure)
    text_use.py  denoising error with the right against swapped phase texts
    report.py    report.md / report.json, loss and learning curves, timelines, contact sheet
    runner.py    the steps in order, resumable
    cli.py       `actavatar bench mechanism`
"""
