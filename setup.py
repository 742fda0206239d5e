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
    packages=find_packages(include=["kerasfuse", "kerasfuse.*", "pipelines", "pipelines.*"]),
    py_modules=["train", "export_tflite", "evaluate", "predict"],
    install_requires=[
        "tensorflow>=2.20,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9,<5",
        "numpy>=1.26,<3",
        "opencv-python-headless>=4.8,<5",
        "scipy>=1.11,<2",
        "pyyaml>=6,<7",
        "tqdm>=4.60,<5",
    ],
    extras_require={
        "edge-eval": ["pyEdgeEval>=0.2.8,<0.3"],
        "test": [
            "pytest>=8,<10",
            "ruff>=0.5,<1",
            "ai-edge-litert>=1.2,<3",
            "pyEdgeEval>=0.2.8,<0.3",
            "Pillow>=9",
        ],
    },
    entry_points={
        "console_scripts": [
            "kerasfuse-train=train:main",
            "kerasfuse-export=export_tflite:main",
        ],
    },
)
