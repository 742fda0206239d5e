"""Every fenced shell command and Python snippet in README.md and docs/ runs.

Each Markdown file is replayed in order in a scratch folder of its own: its ``bash`` blocks are
split into commands and run with ``bash`` (``python X.py`` and ``bench/`` resolve to this
checkout), its ``python`` blocks run in one namespace per file. Runs are shrunk with the
documented knobs (config overrides, ``--train/--val`` counts, bench ``--runs``), listed in
``SHRINK`` below; names a snippet uses without defining (an image, a model) come from the
file's entry in ``PRELUDES``; the training runs and files a page refers to come from
``SETUP``. Fences without a language (output samples) and ``text`` fences (synopses) are
not commands.

A command that cannot run here (a real dataset, another machine, a Docker daemon) is listed in
``NOT_RUN`` with the reason; the test fails both on a documented command that fails and on a
``NOT_RUN`` entry that no longer appears in the docs, so the list cannot grow or rot silently.
"""

import glob
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                recursive=True))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
ASSIGNMENT = re.compile(r"^\w+=('[^']*'|\"[^\"]*\"|\S*)$")
RUN_LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python"}

#: Documented commands (whitespace-collapsed; Python snippets by their first line) that cannot
#: run on a CI machine, and why.
NOT_RUN = {
    "pip install -e \".[test]\" && python -m pytest -q -n 2 -m \"slow or not slow\"":
        "the test suite itself (.ci/run runs it)",
    "python train.py --config cityscapes/gffnet --devices 2": "needs the Cityscapes dataset",
    "python -m pipelines.build_tfrecords cityscapes /data/cityscapes --out data/cityscapes "
    "--splits train,val --num-shards 16 --workers 2": "needs the Cityscapes dataset",
    "python -m pipelines.build_tfrecords voc /data/VOCdevkit/VOC2012 --sbd "
    "/data/benchmark_RELEASE/dataset --out data/voc --splits train,val":
        "needs PASCAL VOC 2012 and SBD",
    "python -m pipelines.build_tfrecords ade20k /data/ADEChallengeData2016 --out data/ade20k":
        "needs ADE20K",
    "python -m pipelines.build_tfrecords tfds oxford_iiit_pet --num-classes 2 --label-offset -1 "
    "--void-id 2 --splits train,test --out data/pets":
        "downloads a TFDS dataset (tests/pipelines/test_converters.py runs it on TFDS mock "
        "data)",
    "python evaluate.py runs/decouple_pspnet/best.keras --data data/cityscapes/val.manifest.json"
    " --mode multiscale --scales 0.75 1.0 1.25 1.5 1.75 --crop-size 1024 --boundary-tolerance "
    "3 5 9 12": "needs the Cityscapes dataset",
    "python evaluate.py runs/dff --data \"data/sbd/val-*.tfrecord\" --edge-tolerance 0.0035":
        "needs the SBD dataset",
    "python train.py --config cityscapes/dff model.backbone=resnet101 run.name=dff_r101":
        "needs the Cityscapes dataset",
    "python train.py --config sbd/dff model.options.weight_learner=invariant "
    "run.name=dff_invariant":
        "needs the SBD dataset",
    "python train.py --config cityscapes/dff data.batch_size=1 --devices 2 run.name=dff_2dev":
        "needs the Cityscapes dataset",
    "python train.py --config voc/exfuse run.mixed_precision=true run.name=exfuse_amp":
        "needs PASCAL VOC",
    "tensorboard --logdir runs/": "a server that runs until stopped",
    "pip install -e \".[torch]\"": "installs torch from the index (.ci/run installs the CPU "
                                   "build, then the test extra, which includes torch)",
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"10.0.0.1:12345\", \"10.0.0.2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 0}}' python train.py --config cityscapes/gffnet":
        "needs two machines and Cityscapes (tests/training/test_distributed.py runs two "
        "workers on 127.0.0.1)",
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"10.0.0.1:12345\", \"10.0.0.2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 1}}' python train.py --config cityscapes/gffnet":
        "needs two machines and Cityscapes",
    "docker run -p 8501:8501 -v \"$PWD/exported/dmnet:/models/dmnet\" -e MODEL_NAME=dmnet "
    "tensorflow/serving": "needs Docker and the tensorflow/serving image",
    "python - <<'EOF'": "a TF Serving client; needs the server above "
                       "(tests/export/ serves the same signatures through TF)",
}

#: Overrides that make any documented ``train.py`` run take seconds (documented config keys).
TINY_TRAIN = ("model.backbone=resnet_tiny model.weights=null data.crop_size=[64,64] "
              "data.batch_size=2 data.val_batch_size=2 data.synthetic_train=8 "
              "data.synthetic_val=4 schedule.epochs=1 schedule.steps_per_epoch=2 "
              "schedule.warmup_steps=0 run.checkpoint_every=2 run.num_images=1 "
              "run.progress=false")

#: (pattern, replacement) applied to shell commands before they run.
SHRINK = [
    (r"^pip install [^&]*&&\s*", ""),                       # .ci/run installs the package
    (r"(python \S*train\.py\b.*)$", r"\1 " + TINY_TRAIN),
    (r"--train 2000 --val 200", "--train 8 --val 4"),
    (r"(python \S*bench/export\.py\b.*)$", r"\1 --size 64 --repeats 1 --warmup 0 --models dmnet"),
    (r"(python \S*bench/primitives\.py\b.*)$", r"\1 --runs 1 --warmup 0"),
    (r"(python \S*bench/metrics\.py\b.*)$",
     r"\1 --height 64 --width 128 --classes 2 --thresholds 5"),
    (r"(python \S*bench/recipe\.py\b.*?)--steps \d+", r"\1--steps 2 --eval-every 2"),
    (r"--num-samples \d+", "--num-samples 2"),
    (r"schedule\.warmup_steps=\d+", "schedule.warmup_steps=0"),
]

#: (pattern, replacement) applied to Python snippets: tiny backbones and inputs, no downloads.
SHRINK_PYTHON = [
    (r"\"resnet(50|101)\"", "\"resnet_tiny\""),
    (r"weights=\"imagenet\"", "weights=None"),
    (r"\b512\b", "64"),
    (r"\bstride=341\b", "stride=48"),
    (r"\b1024\b", "64"),
    (r"train=2000, val=200", "train=8, val=4"),
    (r"weights=\"weights/[^\"]+\"", "weights=None"),        # a converted download
    (r"(load_config\(\"[^\"]+\", \[)",
     r"\1" + "".join(f"{item!r}, " for item in TINY_TRAIN.split())),
]

#: Names a page's snippets use without defining them.
PRELUDES = {
    "docs/evaluation.md": """
import keras
import kerasfuse
model = kerasfuse.build_model("pspnet", 19, backbone="resnet_tiny", head_channels=8)
dff_model = kerasfuse.build_model("dff", 19, backbone="resnet_tiny")
images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
labels = np.random.default_rng(1).integers(0, 19, (1, 64, 64)).astype("int32")
predictions = np.random.default_rng(2).integers(0, 19, (1, 64, 64)).astype("int32")
dataset = [(images, {"labels": labels})]
batches = [(labels, predictions)]
edges_gt = (np.random.default_rng(3).uniform(size=(1, 64, 64, 19)) > 0.9).astype("float32")
edge_probs = np.random.default_rng(4).uniform(size=(1, 64, 64, 19)).astype("float32")
edge_batches = [(edges_gt, edge_probs, labels)]
image, gt = images[0].astype("uint8"), labels[0]
class_names = [f"class_{i}" for i in range(19)]
flow = np.random.default_rng(5).normal(size=(64, 64, 2)).astype("float32")
body_features = np.random.default_rng(6).normal(size=(16, 16, 8)).astype("float32")
""",
    "docs/layers.md": """
import keras
low_res_logits = np.zeros((1, 16, 16, 5), "float32")
image = np.zeros((1, 64, 64, 3), "float32")
labels = np.zeros((1, 64, 64), "int32")
features = np.zeros((1, 16, 16, 8), "float32")
skip = np.zeros((1, 32, 32, 8), "float32")
x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
def _tflite_probe():
    from kerasfuse.layers import DynamicDepthwiseConv2D
    inputs = {"x": keras.Input((64, 64, 64), batch_size=1, name="x"),
              "kernels": keras.Input((5, 5, 64), batch_size=1, name="kernels")}
    return keras.Model(inputs, DynamicDepthwiseConv2D()(inputs["x"], inputs["kernels"]))
model = _tflite_probe()
""",
    "docs/methods/exfuse.md": """
import keras
images = np.zeros((1, 64, 64, 3), "float32")
labels = np.zeros((1, 64, 64), "int32")
res2, res3 = np.zeros((1, 16, 16, 8), "float32"), np.zeros((1, 8, 8, 8), "float32")
res4, res5 = np.zeros((1, 8, 8, 8), "float32"), np.zeros((1, 8, 8, 8), "float32")
x = np.zeros((1, 8, 8, 8), "float32")
""",
    "docs/methods/decouple.md": """
import kerasfuse
model = kerasfuse.build_model("decouple_pspnet", 3, backbone="resnet_tiny", head_channels=8)
images = np.zeros((1, 64, 64, 3), "float32")
""",
    "docs/methods/dmnet.md": """
features = np.random.default_rng(0).normal(size=(1, 8, 8, 64)).astype("float32")
""",
    "docs/methods/gff.md": """
x2, x3, x4, x5 = (np.ones((1, 16 // s, 16 // s, 8), "float32") for s in (1, 2, 2, 2))
g2, g3, g4, g5 = (np.full((1, 16 // s, 16 // s, 1), 0.5, "float32") for s in (1, 2, 2, 2))
ppm = np.ones((1, 8, 8, 8), "float32")
""",
    "docs/models.md": """
import keras
import tensorflow as tf
images = np.zeros((1, 64, 64, 3), "float32")
dataset = tf.data.Dataset.from_tensors((images, {"labels": np.zeros((1, 64, 64), "int32")}))
""",
}

_TINY_RUN = "python train.py --config synthetic/{model} run.name={name}"
#: Shell commands run (shrunk like the documented ones) before a page's own commands: the
#: runs, models and pictures the page refers to.
SETUP = {
    "docs/evaluation.md": [_TINY_RUN.format(model="gffnet", name="gffnet"),
                           _TINY_RUN.format(model="decouple_fcn", name="decouple_fcn"),
                           _TINY_RUN.format(model="dmnet", name="dmnet"),
                           "python -c 'import cv2, numpy as np; cv2.imwrite(\"street.png\", "
                           "np.full((64, 96, 3), 90, np.uint8))'"],
    "docs/export.md": [_TINY_RUN.format(model="dmnet", name="default"),
                       "cp runs/default/final.keras model.keras",
                       "python -c 'import cv2, numpy as np; cv2.imwrite(\"street.png\", "
                       "np.full((64, 96, 3), 90, np.uint8))'"],
    "docs/data.md": [
        "python -c 'import os, cv2, numpy as np\n"
        "for d in (\"my/images\", \"my/labels\"): os.makedirs(d)\n"
        "for i in range(2):\n"
        "    cv2.imwrite(f\"my/images/{i}.png\", np.full((32, 48, 3), 60 * i, np.uint8))\n"
        "    cv2.imwrite(f\"my/labels/{i}.png\", np.full((32, 48), i, np.uint8))'"],
    # Random state dicts in each backbone's ImageNet layout, under the documented file names.
    "docs/weights.md": [
        "python - <<'EOF'\nimport sys\nimport torch\nsys.path.insert(0, %r)\n"
        "from convert import torch_layout_state_dict\n"
        "from kerasfuse.backbones import build_backbone\n"
        "for name, file in [('resnet101_v1c', 'resnet101_v1c-e67eebb6.pth'), "
        "('resnet50_torchvision', 'resnet50-0676ba61.pth'), "
        "('resnet50_v1c', 'resnet50_v1c-2cccc1ad.pth'), ('resnet50_d', 'resnet50-deep.pth')]:\n"
        "    torch.save(torch_layout_state_dict(build_backbone(name)), file)\nEOF"
        % os.path.join(ROOT, "bench"),
        # Tiny-width published layouts under the documented file names (19 classes).
        "python - <<'EOF'\nimport sys\nimport torch\nsys.path.insert(0, %r)\n"
        "from tests.convert import torch_models as tm\n"
        "tiny = {'depths': (1, 1, 1, 1), 'widths': (4, 8, 16, 32)}\n"
        "dmnet = tm.randomize(tm.MMSegDMNet(19, channels=16, aux_channels=8, **tiny), 0)\n"
        "torch.save({'meta': {}, 'state_dict': dmnet.state_dict()}, "
        "'dmnet_r50-d8_512x1024_40k_cityscapes_20201215_042326-615373cf.pth')\n"
        "dff = tm.randomize(tm.DFF(19, **tiny), 0)\n"
        "torch.save({'epoch': 200, 'state_dict': dff.state_dict()}, 'checkpoint_200.pth.tar')"
        "\nEOF" % ROOT],
}
#: Pages whose snippets read ``data/synthetic``: a tiny copy is built there first.
NEEDS_SYNTHETIC = {"README.md", "docs/evaluation.md", "docs/export.md", "docs/training.md",
                   "docs/methods/dff.md", "docs/methods/gff.md", "docs/methods/dmnet.md",
                   "docs/methods/decouple.md", "docs/methods/exfuse.md"}


def _normalise(command):
    return " ".join(command.replace("\\\n", " ").split())


def shell_commands(text):
    """Split a bash block into commands: continuation lines and multi-line quotes joined,
    comments dropped, a ``<<'EOF'`` here-document kept with its command."""
    commands, current, heredoc = [], "", None
    for line in text.splitlines():
        if heredoc is not None:
            current += "\n" + line
            if line.strip() == heredoc:
                commands.append(current)
                current, heredoc = "", None
            continue
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current = f"{current}\n{line}" if current else line
        try:
            tokens = shlex.split(current, comments=True)
        except ValueError:          # an open quote: the command goes on
            continue
        if current.rstrip().endswith("\\"):
            continue
        match = re.search(r"<<\s*'?(\w+)'?", current)
        if match:
            heredoc = match.group(1)
            continue
        if tokens:
            commands.append(_strip_comment(current))
        current = ""
    return commands


def _strip_comment(command):
    """Drop a trailing ``# comment`` outside quotes."""
    quote = None
    for i, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command.rstrip()


def snippets(path):
    """(line, language, text) of every fenced block of ``path`` that is a command or code."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    for match in FENCE.finditer(text):
        lang = RUN_LANGS.get(match.group(1))
        if lang:
            yield text[:match.start()].count("\n") + 1, lang, match.group(2)


def _key(lang, text):
    if lang == "python":
        return text.strip().splitlines()[0]
    return _normalise(text.split("\n")[0] if "<<" in text else text)


def _shrink(command):
    for pattern, replacement in SHRINK:
        command = re.sub(pattern, replacement, command, flags=re.S)
    command = re.sub(r"\bpython (train|evaluate|predict|export_tflite)\.py\b",
                     lambda m: f"{sys.executable} {ROOT}/{m.group(1)}.py", command)
    command = re.sub(r"\bpython (bench/\w+\.py)", lambda m: f"{sys.executable} {ROOT}/"
                     f"{m.group(1)}", command)
    return re.sub(r"^python\b", sys.executable, command)


def _run_shell(command, cwd, where):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(["bash", "-c", _shrink(command)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{where}: `{command}` exited {result.returncode}\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}")


def _run_python(code, namespace, where):
    for pattern, replacement in SHRINK_PYTHON:
        code = re.sub(pattern, replacement, code)
    try:
        exec(compile(code, where, "exec"), namespace)
    except Exception as err:        # report the page and line, keep the cause
        raise AssertionError(f"{where}: snippet failed: {err!r}\n{code}") from err


def documented_items():
    for path in DOC_FILES:
        for line, lang, text in snippets(path):
            items = shell_commands(text) if lang == "bash" else [text]
            for item in items:
                yield path, line, lang, item


def test_not_run_entries_are_all_still_documented():
    keys = {_key(lang, item) for _, _, lang, item in documented_items()}
    stale = sorted(set(NOT_RUN) - keys)
    assert not stale, f"NOT_RUN lists commands the docs no longer contain: {stale}"


def test_shell_command_splitting():
    text = ("# a comment\npython a.py --x 1 \\\n    --y 2   # trailing\n"
            "A='{\"k\": [1,\n 2]}' python b.py\npython - <<'EOF'\nprint(1)\nEOF\n")
    assert [_normalise(c) for c in shell_commands(text)] == [
        "python a.py --x 1 --y 2", "A='{\"k\": [1, 2]}' python b.py",
        "python - <<'EOF' print(1) EOF"]


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    from pipelines import build_synthetic

    out = tmp_path_factory.mktemp("doc_synthetic") / "synthetic"
    build_synthetic(out, train=8, val=4, image_size=(64, 64), num_shards=4, workers=1,
                    progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", DOC_FILES)
def test_documented_commands_run(path, tmp_path, monkeypatch, tiny_synthetic):
    items = [(line, lang, item) for p, line, lang, item in documented_items() if p == path]
    if path in NEEDS_SYNTHETIC:
        os.makedirs(tmp_path / "data")
        os.symlink(tiny_synthetic, tmp_path / "data" / "synthetic")
    monkeypatch.chdir(tmp_path)
    for command in SETUP.get(path, []):
        _run_shell(command, tmp_path, f"{path} (setup)")
    namespace = {"np": np, "__name__": "__doc__"}
    exec(PRELUDES.get(path, ""), namespace)
    ran, assignments = 0, {}
    for line, lang, item in items:
        if _key(lang, item) in NOT_RUN:
            continue
        where = f"{path}:{line}"
        if lang == "bash" and ASSIGNMENT.match(item):
            # A shell variable set in a block is seen by that block's later commands.
            assignments[line] = assignments.get(line, "") + item + "\n"
        elif lang == "bash":
            _run_shell(assignments.get(line, "") + item, tmp_path, where)
        else:
            _run_python(item, namespace, where)
        ran += 1
    assert ran or all(_key(lang, item) in NOT_RUN for _, lang, item in items)
