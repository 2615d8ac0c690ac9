"""The digits world: scikit-learn's bundled 8x8 digits (1,797 images), upsampled to 16x16.

    data.py       the digits as tensors, and the train/test split
    generator.py  G: the decoder of a small VAE (kind digits-vae-decoder)
    encoder.py    f: a small CNN classifier (kind digits-cnn)
    judge.py      the judge "digits-svm": an RBF SVM on pixels

The judge is a different model family from f, so that Langevin dynamics cannot "win" by fooling
the same network it descends. tron.recipes.digits trains G (with the VAE around it) and f.
"""
from .data import NUM_CLASSES, SIDE, load_digits_images, split_digits
from .encoder import DigitsClassifier
from .generator import DigitsDecoder

__all__ = ["NUM_CLASSES", "SIDE", "DigitsClassifier", "DigitsDecoder", "load_digits_images", "split_digits"]
