"""Pictures of predictions and of the fusion methods' intermediates (OpenCV + NumPy only).

Generic primitives (all return RGB ``uint8`` arrays ``[H, W, 3]``):

* ``color_palette``, ``colorize``, ``overlay``, ``legend``, ``with_legend``: colour-coded
  segmentation maps and overlays with a legend of class colours;
* ``heatmap``: a scalar map (gate, fusion weight, boundary probability) through a colour map;
* ``flow_to_color`` / ``color_wheel``: a 2-D flow field on the usual colour wheel (hue =
  direction, saturation = magnitude);
* ``pca_to_rgb``: a ``[H, W, C]`` feature map projected on its first three principal
  components (DecoupleSegNet Fig. 5);
* ``kernel_grid``: per-channel ``k x k`` kernels tiled in a grid (DMNet generated filters);
* ``edge_to_color``: multi-label edge probabilities coloured by class (CASENet / DFF style);
* ``tile``, ``titled``, ``save_png``: layout and writing.

Method-specific figures (``visualize_model``) read intermediates with
``kerasfuse.models.intermediates(model, names)`` and write one PNG per figure.
"""

import os

import cv2
import keras
import numpy as np

IGNORE_COLOR = (224, 224, 192)  # the Pascal VOC colour of label 255
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_palette(num_classes):
    """Deterministic, well separated RGB colours ``[K, 3]`` uint8 (Pascal VOC bit scheme:
    the bits of the class index are spread over the high bits of R, G and B)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    palette = np.zeros((num_classes, 3), dtype="uint8")
    for index in range(num_classes):
        value, rgb = index, [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
            value >>= 3
        palette[index] = rgb
    return palette


def _palette_for(labels, palette, ignore_label):
    if palette is not None:
        return np.asarray(palette, dtype="uint8")
    valid = labels[labels != ignore_label]
    return color_palette(int(valid.max()) + 1 if valid.size else 1)


def colorize(labels, palette=None, ignore_label=255):
    """Colour a label map ``[H,W]``; ignore pixels and labels beyond the palette get
    ``IGNORE_COLOR``."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H,W], got shape {labels.shape}")
    palette = _palette_for(labels, palette, ignore_label)
    out = np.zeros(labels.shape + (3,), dtype="uint8")
    out[...] = IGNORE_COLOR
    known = (labels >= 0) & (labels < len(palette)) & (labels != ignore_label)
    out[known] = palette[labels[known]]
    return out


def overlay(image, labels, alpha=0.5, palette=None, ignore_label=255):
    """Blend the colour-coded ``labels`` over the RGB ``image`` (ignore pixels: image only).
    """
    image = to_uint8(image)
    labels = np.asarray(labels)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} sizes differ")
    colors = colorize(labels, palette, ignore_label)
    blend = (1 - alpha) * image.astype("float32") + alpha * colors.astype("float32")
    out = np.where((labels == ignore_label)[..., None], image, blend)
    return np.clip(out + 0.5, 0, 255).astype("uint8")


def to_uint8(image):
    """An RGB image as uint8 ``[H,W,3]`` (float input is taken to be in [0, 255])."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    return np.clip(np.asarray(image, dtype="float32") + 0.5, 0, 255).astype("uint8")


def legend(class_names, palette=None, row_height=18, width=160):
    """A legend image: one colour swatch and name per class."""
    names = list(class_names)
    palette = color_palette(len(names)) if palette is None else np.asarray(palette, "uint8")
    out = np.full((row_height * len(names) + 4, width, 3), 255, dtype="uint8")
    for i, name in enumerate(names):
        top = 2 + i * row_height
        color = tuple(int(c) for c in palette[i])
        cv2.rectangle(out, (4, top + 2), (4 + row_height - 4, top + row_height - 3), color,
                      thickness=-1)
        cv2.putText(out, str(name), (row_height + 6, top + row_height - 5), _FONT, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return out


def with_legend(picture, class_names, palette=None):
    """``picture`` with the class legend appended on its right (heights padded white)."""
    return hstack([to_uint8(picture), legend(class_names, palette)])


def hstack(images, gap=4):
    """Place RGB images side by side, top-aligned, on a white background."""
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    out = np.full((height, width, 3), 255, dtype="uint8")
    x = 0
    for im in images:
        out[: im.shape[0], x:x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def titled(image, title, bar_height=16):
    """``image`` with a white title bar on top."""
    image = to_uint8(image)
    bar = np.full((bar_height, image.shape[1], 3), 255, dtype="uint8")
    cv2.putText(bar, str(title), (2, bar_height - 4), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def tile(images, titles=None, columns=4, gap=4):
    """Grid of RGB images (optionally titled), ``columns`` per row, white background."""
    images = [to_uint8(im) for im in images]
    if titles is not None:
        images = [titled(im, t) for im, t in zip(images, titles)]
    rows = [hstack(images[i:i + columns], gap) for i in range(0, len(images), columns)]
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    out = np.full((height, width, 3), 255, dtype="uint8")
    y = 0
    for r in rows:
        out[y:y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return out


def heatmap(values, vmin=None, vmax=None, colormap=cv2.COLORMAP_JET):
    """Scalar map ``[H,W]`` -> RGB through an OpenCV colour map (range ``vmin..vmax``,
    default the map's own min..max)."""
    values = np.asarray(values, dtype="float64")
    if values.ndim != 2:
        raise ValueError(f"heatmap expects [H,W], got shape {values.shape}")
    low = float(values.min()) if vmin is None else float(vmin)
    high = float(values.max()) if vmax is None else float(vmax)
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    gray = np.clip(scaled * 255 + 0.5, 0, 255).astype("uint8")
    return cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)


def flow_to_color(flow, max_magnitude=None):
    """Flow ``[H,W,2]`` (dx, dy) -> RGB: hue = direction, saturation = magnitude relative
    to ``max_magnitude`` (default the largest magnitude), value = full."""
    flow = np.asarray(flow, dtype="float32")
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be [H,W,2], got shape {flow.shape}")
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    top = float(magnitude.max()) if max_magnitude is None else float(max_magnitude)
    hsv = np.zeros(flow.shape[:2] + (3,), dtype="uint8")
    hsv[..., 0] = (angle / 2).astype("uint8") % 180
    hsv[..., 1] = np.clip(magnitude / top * 255 if top > 0 else 0, 0, 255).astype("uint8")
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def color_wheel(size=64):
    """The colour-wheel key of ``flow_to_color`` (unit disk, white outside)."""
    coords = (np.arange(size) - (size - 1) / 2) / ((size - 1) / 2)
    dx, dy = np.meshgrid(coords, coords)
    wheel = flow_to_color(np.stack([dx, dy], -1), max_magnitude=1.0)
    wheel[np.hypot(dx, dy) > 1] = 255
    return wheel


def pca_to_rgb(features, max_samples=20000, seed=0):
    """Project features ``[H,W,C]`` on their first three principal components -> RGB.

    Each component is min-max scaled to 0..255 (sign fixed so the largest loading is
    positive). Fewer than three channels are zero-padded.
    """
    features = np.asarray(features, dtype="float64")
    if features.ndim != 3:
        raise ValueError(f"features must be [H,W,C], got shape {features.shape}")
    height, width, channels = features.shape
    flat = features.reshape(-1, channels)
    mean = flat.mean(axis=0)
    sample = flat
    if len(flat) > max_samples:
        rows = np.random.default_rng(seed).choice(len(flat), max_samples, replace=False)
        sample = flat[rows]
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    components = vt[:3]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])
    projected = (flat - mean) @ (components * signs[:, None]).T
    if projected.shape[1] < 3:
        projected = np.pad(projected, ((0, 0), (0, 3 - projected.shape[1])))
    low, high = projected.min(axis=0), projected.max(axis=0)
    scaled = np.where(high > low, (projected - low) / np.where(high > low, high - low, 1), 0)
    return (scaled * 255 + 0.5).astype("uint8").reshape(height, width, 3)


def kernel_grid(kernels, max_channels=64, cell=24, columns=8, gap=2):
    """Tile per-channel kernels ``[k,k,C]`` (first ``max_channels``) as a grid of heat maps
    on one shared symmetric colour range, each ``k x k`` cell enlarged to ``cell`` pixels."""
    kernels = np.asarray(kernels, dtype="float64")
    if kernels.ndim != 3:
        raise ValueError(f"kernels must be [k,k,C], got shape {kernels.shape}")
    kernels = kernels[..., :max_channels]
    bound = float(np.abs(kernels).max()) or 1.0
    cells = []
    for c in range(kernels.shape[-1]):
        rgb = heatmap(kernels[..., c], vmin=-bound, vmax=bound, colormap=cv2.COLORMAP_COOL)
        cells.append(cv2.resize(rgb, (cell, cell), interpolation=cv2.INTER_NEAREST))
    return tile(cells, columns=columns, gap=gap)


def edge_to_color(probabilities, palette=None):
    """Multi-label edge probabilities ``[H,W,K]`` -> RGB on white: each pixel takes the
    colour of its most probable class, blended with white by that probability."""
    probabilities = np.asarray(probabilities, dtype="float32")
    if probabilities.ndim != 3:
        raise ValueError(f"edge probabilities must be [H,W,K], got {probabilities.shape}")
    k = probabilities.shape[-1]
    palette = color_palette(k + 1)[1:] if palette is None else np.asarray(palette, "uint8")
    strength = probabilities.max(axis=-1, keepdims=True)
    colors = palette[probabilities.argmax(axis=-1)].astype("float32")
    out = strength * colors + (1 - strength) * 255.0
    return np.clip(out + 0.5, 0, 255).astype("uint8")


def save_png(path, rgb):
    """Write an RGB uint8 image as PNG (parent folders created); returns ``path``."""
    rgb = to_uint8(rgb)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write PNG {path!r}")
    return path


def to_numpy(x):
    """Any tensor -> NumPy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))
