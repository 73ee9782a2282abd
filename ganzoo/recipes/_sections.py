"""The recipe's own sections and their options.

Plugin sections (``data``, ``model``, ``loss``, ...) take their options from the
plugin they name; the sections here are ganzoo's own and are declared once so
that validation and the recipe reference share one source.
"""

from __future__ import annotations

from .._options import Option

TOP_LEVEL = (
    "extends",
    "plugins",
    "name",
    "description",
    "data",
    "model",
    "loss",
    "regularizers",
    "constraints",
    "optim",
    "train",
    "eval",
    "tracking",
)
"""Every key a recipe may have at the top level."""

# Sections and section.option keys that do not change the trained weights, left
# out of the recipe hash.
NOT_HASHED = (
    "extends",
    "plugins",
    "name",
    "description",
    "eval",
    "tracking",
    # What to do once a step has gone wrong: finished runs are the same either way.
    "train.skip_bad_steps",
    # Memory layout and compilation change the speed, not what is computed (up to
    # float rounding in a different order).
    "train.channels_last",
    "train.compile",
)

HASHED_UNLESS_DEFAULT = ("train.precision",)
"""Dotted keys hashed only when set away from their default.

They change the trained weights but came after runs were stored by hash: a recipe
that leaves them alone keeps the hash it had before they existed.
"""

OPTIMIZER = (
    Option(
        "name", str, "adam", "optimizer", choices=("adam", "adamw", "rmsprop", "sgd")
    ),
    Option("lr", float, 2.0e-4, "learning rate", minimum=0.0, exclusive_minimum=True),
    Option(
        "betas", list, [0.5, 0.999], "Adam/AdamW betas (beta1, beta2)", item_type=float
    ),
    Option(
        "eps", float, 1.0e-8, "numerical epsilon", minimum=0.0, exclusive_minimum=True
    ),
    Option("weight_decay", float, 0.0, "weight decay", minimum=0.0),
    Option("momentum", float, 0.0, "momentum (rmsprop, sgd)", minimum=0.0, maximum=1.0),
)

TRAIN = (
    Option("batch_size", int, 64, "real images per discriminator step", minimum=1),
    Option(
        "kimg",
        float,
        100.0,
        "training length in thousands of real images shown to the discriminator",
        minimum=0.0,
        exclusive_minimum=True,
    ),
    Option("n_critic", int, 1, "discriminator steps per generator step", minimum=1),
    Option(
        "seed", int, 0, "seed for weights, latents, data order and noise", minimum=0
    ),
    Option(
        "ema",
        float,
        0.999,
        "decay of the generator's exponential moving average (0 disables it)",
        minimum=0.0,
        maximum=0.999999,
    ),
    Option(
        "tick_kimg",
        float,
        4.0,
        "kimg between progress lines and stats.jsonl entries",
        minimum=0.0,
        exclusive_minimum=True,
    ),
    Option(
        "snapshot_kimg",
        float,
        10.0,
        "kimg between fixed-latent sample grids",
        minimum=0.0,
        exclusive_minimum=True,
    ),
    Option(
        "checkpoint_kimg",
        float,
        None,
        "kimg between checkpoints (null: same as snapshot_kimg)",
        minimum=0.0,
        exclusive_minimum=True,
        nullable=True,
    ),
    Option("grid", int, 64, "samples in each snapshot grid", minimum=1, maximum=1024),
    Option(
        "skip_bad_steps",
        int,
        0,
        "steps whose loss is NaN or infinite that may be skipped without an update "
        "before the run stops as diverged (0: stop at the first)",
        minimum=0,
    ),
    Option("device", str, "auto", "where to train", choices=("auto", "cpu", "cuda")),
    # Speed on one device: see ganzoo/training/_speed.py.
    Option(
        "precision",
        str,
        "fp32",
        "arithmetic of the network forwards: fp32, or bf16/fp16 autocast (losses "
        "stay float32; fp16 adds a gradient scaler per network)",
        choices=("fp32", "bf16", "fp16"),
    ),
    Option(
        "channels_last",
        bool,
        None,
        "keep 4-D weights and images channels-last, which convolutions run faster "
        "in on most CPUs and GPUs; null: on when a network has convolutions",
        nullable=True,
    ),
    Option(
        "compile",
        bool,
        False,
        "torch.compile the generator and discriminator (eager mode, with a "
        "warning, where it fails; the discriminator stays eager with regularizers)",
    ),
)

EVAL = (
    Option(
        "feature_extractor",
        str,
        None,
        "feature extractor for metrics (null: the default for the data shape)",
        nullable=True,
    ),
    Option(
        "metrics",
        list,
        None,
        "metrics to compute (null: the default set)",
        nullable=True,
        item_type=str,
    ),
    Option("n_fake", int, 10000, "generated samples to score", minimum=1),
    Option(
        "n_real",
        int,
        None,
        "real samples to score (null: the whole split)",
        minimum=1,
        nullable=True,
    ),
    Option(
        "reference_split",
        str,
        None,
        "split of the data set to compare against (null: test where there is one)",
        nullable=True,
    ),
    Option("seed", int, 0, "seed for sampling latents at evaluation", minimum=0),
    Option(
        "eval_kimg",
        float,
        None,
        "kimg between cheap metrics during training (null: none)",
        minimum=0.0,
        exclusive_minimum=True,
        nullable=True,
    ),
    Option(
        "during_n",
        int,
        2000,
        "generated samples for the metric computed during training",
        minimum=10,
    ),
    Option(
        "checkpoint",
        str,
        "both",
        "which checkpoints to score (both: final, and best when eval_kimg made one)",
        choices=("final", "best", "both"),
    ),
)
