"""Named training settings: the quick recipe that overfits a 16-image generated set on 2 CPU cores.

`CI_RECIPE` is what `tests/test_detection_end_to_end.py` runs (issue 20: "training on a
16-image generated set reaches mAP >= 0.5 on that set within about 3 minutes of CI time"); the
`train-detector` CLI and the README can name the same settings instead of copying numbers.

What makes it fast enough for 2 cores (a full SSD300 step at 300², batch 8, takes ~7.4 s):

* input 268² (the smallest SSD300 takes), priors of that size (`prior_config`);
* the VGG16 base from `vgg16-mri` (the only trained VGG16 that installs offline), fed its own
  training preprocessing (`unit`: RGB / 255; with `caffe` the activations are ~20x larger and
  SGD diverges at any rate that learns in time);
* everything up to `conv7` frozen: no gradient flows into VGG16; conv6/conv7 (which
  `vgg16-mri` has no weights for) stay as initialised, random and fixed; only the L2Norm
  scale, the extras and the heads (~2.6M parameters) train;
* no augmentation, no warm-up, and a rate 5x ssd.pytorch's (5e-3, momentum 0.9, decay 5e-4);
* bf16 convolutions (`TrainConfig.precision`): ~2-4x faster per step than fp32 on an
  avx512_bf16 CPU, at the same mAP within the run-to-run spread.

Measured (the end-to-end test, 2 cores shared with other jobs): see `CI_RECIPE`.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class DetectorRecipe:
    """A generated set, a model initialisation and a training schedule, all seeded.

    Attributes:
      images, classes, data_seed, image_size: `detection.make_voc.make_voc` arguments (the
        long side of the generated JPEGs is `image_size`).
      input_size: the network's square input; the priors follow it (`prior_config`).
      init: the backbone copied into the SSD's VGG16 layers (a `load_backbone` name or file).
      profile: the preprocessing the data pipeline and detection apply.
      seed: fixes the initialisation of every layer `init` does not fill, and the batch order.
      steps, batch_size, lr, momentum, weight_decay, warmup_steps, freeze_until, precision:
        `detection.train.TrainConfig` fields.
      augment: ssd.pytorch's photometric/geometric augmentation in the pipeline.
    """

    images: int = 16
    classes: tuple[str, ...] = ("disc", "square", "triangle")
    data_seed: int = 0
    image_size: int = 300
    input_size: int = 268
    init: str = "vgg16-mri"
    profile: str = "unit"
    seed: int = 0
    steps: int = 50
    batch_size: int = 8
    lr: float = 5e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    freeze_until: str | None = "conv7"
    precision: str = "bf16"
    augment: bool = False

    def prior_config(self):
        """The priors of `input_size` (ssd.pytorch's VOC scales over that many pixels)."""
        from models.priors import PriorConfig
        from models.ssd300 import feature_map_sizes

        return PriorConfig(image_size=self.input_size, feature_maps=feature_map_sizes(self.input_size))

    def train_config(self, checkpoint_every: int = 0):
        """The `TrainConfig` of this recipe (no step decay: the run is far shorter than any)."""
        from detection.train import TrainConfig

        return TrainConfig(steps=self.steps, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                           lr_steps=(), warmup_steps=self.warmup_steps, precision=self.precision,
                           freeze_until=self.freeze_until, checkpoint_every=checkpoint_every)

    def build_model(self):
        """A seeded SSD300 for `classes` at `input_size`, its 13 VGG16 convs copied from `init`."""
        from models.ssd300 import build_ssd300
        from models.vgg16 import VGG16_CONV_LAYERS
        from transfer.backbones.copy import copy_backbone
        from transfer.backbones.load import load_backbone
        from transfer.jobs.detector import glorot_initialise

        model = build_ssd300(num_classes=len(self.classes) + 1, config=self.prior_config(), input_size=self.input_size)
        glorot_initialise(model, self.seed)  # seeded per model: no global RNG is touched
        copy_backbone(load_backbone(self.init, seed=self.seed).model, model, layers=VGG16_CONV_LAYERS)
        return model

    def batches(self, voc):
        """`(images, loc_t, conf_t)` batches for `train`: enough epochs of `voc` for `steps`, shuffled by `seed`.

        tf.data's autotuning is off: `train` stops drawing at `steps` and drops the iterator
        unfinished, and deleting an autotuned iterator waits for its tuning thread's next
        wake-up (TensorFlow 2.x; measured: 0-55 s, at random, after the last step).  The
        pipeline costs ~20 ms a batch here, so tuning it gains nothing.
        """
        import tensorflow as tf

        from detection.data import dataset

        epochs = max(1, math.ceil(self.steps * self.batch_size / len(voc)))
        pipeline = dataset(voc, size=self.input_size, batch_size=self.batch_size, augment=self.augment,
                           seed=self.seed, profile=self.profile, epochs=epochs, shuffle=True,
                           config=self.prior_config(), drop_remainder=True)
        options = tf.data.Options()
        options.autotune.enabled = False
        return pipeline.map(lambda images, targets: (images, targets["loc_t"], targets["conf_t"])).with_options(options)


#: Issue 20's CI check: see the module docstring and `tests/test_detection_end_to_end.py`.
CI_RECIPE = DetectorRecipe()
