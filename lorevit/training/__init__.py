"""How every method is trained and tested — the only room that imports Lightning.

- :mod:`.run`: :func:`train`, a whole run from a Config (its files: config.yaml, indices.json, metrics.json,
  adapter.safetensors, env.json, logs/, checkpoints/);
- :mod:`.protocols`: fit-and-test, easy-to-hard, CLIP zero-shot negatives;
- :mod:`.module`: the LightningModule (loss, optimiser, schedule, metrics); :mod:`.datamodule`: the splits;
  :mod:`.loaders`: seeded, resumable samplers and loaders; :mod:`.passes`: one-off passes over images;
- :mod:`.trainer`: the Trainer, loggers and checkpoints; :mod:`.evaluation`: ``lorevit eval``;
  :mod:`.figures`: curves and confusion matrices; :mod:`.envinfo`: env.json.
"""


def __getattr__(name: str):
    if name == "train":  # lorevit.training.train: loads Lightning on first use
        from lorevit.training.run import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["train"]
