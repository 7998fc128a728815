"""Detection training data and evaluation for the SSD300 behind detstyle's backbone.

* :mod:`detection.voc` reads a PASCAL VOC folder (any class list) into immutable records.
* :mod:`detection.make_voc` writes a small VOC-format set of pasted shapes on real photos.
* :mod:`detection.augment` is ssd.pytorch's training augmentation, in NumPy.
* :mod:`detection.data` turns records into a `tf.data` pipeline of matched SSD targets.
* :mod:`detection.evaluate` computes VOC mAP (11-point and area).

Nothing is imported here: `voc`, `make_voc`, `augment` and `evaluate` need no TensorFlow,
and importing this package must not pull it in.
"""
