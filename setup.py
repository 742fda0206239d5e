"""Install metadata for kerasfuse (the library) and pipelines (tf.data + TFRecords)."""

from setuptools import find_packages, setup

setup(
    name="kerasfuse",
    version="0.1.0",
    description=(
        "Keras 3 multi-level feature fusion for semantic segmentation and "
        "semantic edge detection: DFF, GFF, DecoupleSegNet, DMNet, ExFuse."
    ),
    python_requires=">=3.10,<3.14",
    # Only the two packages land in site-packages; the top-level train.py, evaluate.py,
    # predict.py and export_tflite.py are checkout wrappers around kerasfuse.cli.
    packages=find_packages(include=["kerasfuse", "kerasfuse.*", "pipelines", "pipelines.*"]),
    # The named configs (``--config synthetic/dmnet``) ship inside the package.
    package_data={"kerasfuse": ["configs/*/*.yaml"]},
    include_package_data=False,
    install_requires=[
        "tensorflow>=2.20,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9,<5",
        # tensorflow-datasets imports it on its dataset-loading path but does not declare it
        "importlib_resources>=5",
        "numpy>=1.26,<3",
        "opencv-python-headless>=4.8,<5",
        "scipy>=1.11,<2",
        "pyyaml>=6,<7",
        "tqdm>=4.60,<5",
        # `tensorboard --logdir runs` (training writes the event files without it)
        "tensorboard>=2.20,<2.22",
    ],
    extras_require={
        "edge-eval": ["pyEdgeEval>=0.2.8,<0.3"],
        # ONNX export (export_tflite.py --formats onnx) and its onnxruntime parity check;
        # tf2onnx 1.17 no longer pins protobuf 3.x, so TF 2.21's protobuf is kept.
        "onnx": ["tf2onnx>=1.17,<2", "onnxruntime>=1.18,<2", "onnx>=1.16,<2"],
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            "ruff>=0.5,<1",
            "ai-edge-litert>=1.2,<3",
            "torch>=2.1",
            "pyEdgeEval>=0.2.8,<0.3",
            "Pillow>=9",
            "tf2onnx>=1.17,<2",
            "onnxruntime>=1.18,<2",
            "onnx>=1.16,<2",
        ],
        # Reading PyTorch checkpoints (kerasfuse.convert); nothing else imports torch.
        "torch": ["torch>=2.1"],

    },
    entry_points={
        "console_scripts": [
            "kerasfuse-train=kerasfuse.cli.train:main",
            "kerasfuse-evaluate=kerasfuse.cli.evaluate:main",
            "kerasfuse-predict=kerasfuse.cli.predict:main",
            "kerasfuse-export=kerasfuse.cli.export:main",
            "kerasfuse-convert=kerasfuse.convert.cli:main",
        ],
    },
)
