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
* ``tile``, ``titled``, ``save_png``: layout and writing;
* ``error_map``, ``prediction_picture``: the class-aware picture of one prediction,
  image | ground truth | prediction | error map with a legend of class names and colours;
  ``edges_over_image``, ``edge_picture``: the same for semantic-edge models (per-class
  edges drawn over the image in the class colours);
* ``confusion_matrix_picture``: a row-normalised confusion matrix with class names;
  ``curves_picture``: learning curves (loss, learning rate, validation score vs step).

Method-specific figures (``visualize_model``) read intermediates with
``kerasfuse.models.intermediates(model, names)`` and write one PNG per figure.
"""

import os

import cv2
import keras
import numpy as np

from kerasfuse.inference import sigmoid

IGNORE_COLOR = (224, 224, 192)  # the Pascal VOC colour of label 255
#: Error maps: wrong pixels in pure red, ignore pixels in mid grey; right pixels show the
#: image in grey at half brightness (values 0..127), so neither colour can occur there.
ERROR_COLOR = (255, 0, 0)
ERROR_IGNORE_COLOR = (160, 160, 160)
#: Panels of ``prediction_picture`` / ``edge_picture`` are enlarged (nearest, integer
#: factor) until their longer side is at least this many pixels.
PANEL_SIZE = 256
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
    """A legend image: one colour swatch (``row_height - 6`` pixels square) and name per
    class, on white; ``width=None`` fits the longest name."""
    names = [str(n) for n in class_names]
    palette = color_palette(len(names)) if palette is None else np.asarray(palette, "uint8")
    if len(palette) < len(names):
        raise ValueError(f"palette has {len(palette)} colours for {len(names)} class names")
    scale = row_height / 45.0
    if width is None:
        text = max((cv2.getTextSize(n, _FONT, scale, 1)[0][0] for n in names), default=0)
        width = row_height + 10 + text
    out = np.full((row_height * len(names) + 4, width, 3), 255, dtype="uint8")
    for i, name in enumerate(names):
        top = 2 + i * row_height
        color = tuple(int(c) for c in palette[i])
        cv2.rectangle(out, (4, top + 3), (row_height - 3, top + row_height - 4), color,
                      thickness=-1)
        cv2.putText(out, name, (row_height + 4, top + row_height - 7), _FONT, scale,
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
    """``image`` with a white title bar on top (text scaled with ``bar_height``)."""
    image = to_uint8(image)
    bar = np.full((bar_height, image.shape[1], 3), 255, dtype="uint8")
    cv2.putText(bar, str(title), (2, bar_height - 4), _FONT, bar_height / 40.0, (0, 0, 0), 1,
                cv2.LINE_AA)
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


def _enlarge(image, factor):
    return image if factor == 1 else np.repeat(np.repeat(image, factor, 0), factor, 1)


def panel_scale(height, width, panel_size=PANEL_SIZE):
    """The integer factor ``prediction_picture`` enlarges ``height x width`` panels by:
    the smallest one that makes the longer side at least ``panel_size`` (1 when it is)."""
    return max(1, -(-int(panel_size) // max(int(height), int(width))))


def error_map(image, labels, prediction, ignore_label=255):
    """Where ``prediction`` [H,W] differs from ``labels`` [H,W]: ``ERROR_COLOR`` on wrong
    pixels, ``ERROR_IGNORE_COLOR`` on ignore pixels, the image in half-bright grey
    elsewhere (so a wrong pixel is never confused with a right one)."""
    image = to_uint8(image)
    labels, prediction = np.asarray(labels), np.asarray(prediction)
    if labels.shape != prediction.shape or labels.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape[:2]}, labels {labels.shape} and prediction "
                         f"{prediction.shape} sizes differ")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) // 2
    out = np.repeat(gray[..., None], 3, axis=-1)
    ignore = labels == ignore_label
    out[(labels != prediction) & ~ignore] = ERROR_COLOR
    out[ignore] = ERROR_IGNORE_COLOR
    return out


def _picture(panels, titles, class_names, palette, panel_size):
    height, width = panels[0].shape[:2]
    factor = panel_scale(height, width, panel_size)
    bar = max(16, 8 * factor)
    row = hstack([titled(_enlarge(p, factor), t, bar) for p, t in zip(panels, titles)],
                 gap=4)
    return hstack([row, legend(class_names, palette, max(22, 6 * factor), None)],
                  gap=8)


def _names_and_palette(class_names, palette, num_classes):
    names = [str(i) for i in range(num_classes)] if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for {num_classes} classes")
    palette = color_palette(num_classes) if palette is None else np.asarray(palette, "uint8")
    if palette.shape != (num_classes, 3):
        raise ValueError(f"palette must be [{num_classes}, 3], got shape {palette.shape}")
    return names, palette


def prediction_picture(image, labels, prediction, class_names=None, palette=None,
                       ignore_label=255, panel_size=PANEL_SIZE):
    """The picture of one segmentation: image | ground truth | prediction | error map,
    each titled, then the legend of class names and colours.

    Args:
        image: RGB ``[H,W,3]`` (uint8, or float in [0, 255]).
        labels: ground-truth train ids ``[H,W]`` (``ignore_label`` = void).
        prediction: predicted class ids ``[H,W]``.
        class_names: K names (default "0".."K-1", K = the palette's length, else
            ``max(labels, prediction) + 1``).
        palette: ``[K, 3]`` colours (default ``color_palette(K)``).
        ignore_label: void id, drawn ``IGNORE_COLOR`` in the truth and
            ``ERROR_IGNORE_COLOR`` in the error map.
        panel_size: panels are enlarged by ``panel_scale(H, W, panel_size)`` (nearest).

    Returns:
        RGB uint8 picture; the error panel's title gives the share of wrong pixels among
        the non-ignore ones.
    """
    image = to_uint8(image)
    labels, prediction = np.asarray(labels), np.asarray(prediction)
    if palette is not None:
        num_classes = len(palette)
    elif class_names is not None:
        num_classes = len(class_names)
    else:
        valid = labels[labels != ignore_label]
        num_classes = int(max(valid.max() if valid.size else 0, prediction.max())) + 1
    names, palette = _names_and_palette(class_names, palette, num_classes)
    errors = error_map(image, labels, prediction, ignore_label)
    valid = labels != ignore_label
    wrong = float(np.mean(labels[valid] != prediction[valid])) if valid.any() else 0.0
    panels = [image, colorize(labels, palette, ignore_label),
              colorize(prediction, palette, ignore_label), errors]
    titles = ["image", "ground truth", "prediction", f"errors {100 * wrong:.1f}%"]
    return _picture(panels, titles, names, palette, panel_size)


def edges_over_image(image, edges, palette=None):
    """Per-class edge maps ``[H,W,K]`` (probabilities or 0/1) drawn over a faded copy of
    the image: each pixel takes its strongest class's colour, blended by that strength.
    Ties go to the higher class id: a boundary between background (id 0) and an object is
    an edge of both, and is drawn in the object's colour."""
    image = to_uint8(image)
    edges = np.asarray(edges, dtype="float32")
    if edges.ndim != 3 or edges.shape[:2] != image.shape[:2]:
        raise ValueError(f"edges must be [H,W,K] of the image's size {image.shape[:2]}, got "
                         f"{edges.shape}")
    k = edges.shape[-1]
    palette = color_palette(k + 1)[1:] if palette is None else np.asarray(palette, "uint8")
    faded = 0.4 * image.astype("float32") + 0.6 * 255.0
    strength = np.clip(edges.max(axis=-1, keepdims=True), 0.0, 1.0)
    strongest = k - 1 - edges[..., ::-1].argmax(axis=-1)
    colors = palette[strongest].astype("float32")
    return np.clip(strength * colors + (1 - strength) * faded + 0.5, 0, 255).astype("uint8")


def edge_picture(image, edges, probabilities, class_names=None, palette=None,
                 ignore=None, threshold=0.5, panel_size=PANEL_SIZE):
    """The picture of one semantic-edge prediction: image | ground-truth edges | predicted
    edges (both over the image in class colours) | error map, then the legend.

    The error map marks pixels where "some class's edge" differs between the truth and the
    prediction thresholded at ``threshold`` (``ERROR_COLOR``), ``ignore`` [H,W] pixels in
    ``ERROR_IGNORE_COLOR``.
    """
    image = to_uint8(image)
    edges = np.asarray(edges, dtype="float32")
    probabilities = np.asarray(probabilities, dtype="float32")
    if edges.shape != probabilities.shape:
        raise ValueError(f"edges {edges.shape} and probabilities {probabilities.shape} differ")
    k = edges.shape[-1]
    if palette is None:
        palette = color_palette(k + 1)[1:]
    names, palette = _names_and_palette(class_names, palette, k)
    truth = (edges > 0.5).any(-1).astype("int32")
    predicted = (probabilities > threshold).any(-1).astype("int32")
    if ignore is not None:
        truth = np.where(np.asarray(ignore, bool), 255, truth)
    panels = [image, edges_over_image(image, edges, palette),
              edges_over_image(image, probabilities, palette),
              error_map(image, truth, predicted)]
    titles = ["image", "ground-truth edges", "predicted edges",
              f"edge errors (p > {threshold:g})"]
    return _picture(panels, titles, names, palette, panel_size)


#: Confusion-matrix colours: row share 0 -> white, 1 -> dark blue; absent rows grey.
CONFUSION_LOW, CONFUSION_HIGH = (255, 255, 255), (8, 48, 107)
CONFUSION_ABSENT = (210, 210, 210)
CONFUSION_MARGIN = 8


def row_normalised(cm):
    """``cm[true, pred]`` divided by its row sums (rows of absent classes stay NaN)."""
    cm = np.asarray(cm, dtype="float64")
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, cm / np.where(totals > 0, totals, 1), np.nan)


def confusion_matrix_picture(cm, class_names, cell_size=None):
    """A row-normalised confusion matrix ``cm[true, pred]`` as a picture.

    True classes label the rows (left, "true class"), predicted classes the columns (top,
    written vertically, "predicted"). A cell's colour goes linearly from
    ``CONFUSION_LOW`` (0) to ``CONFUSION_HIGH`` (1) with its share of the row; rows of
    classes absent from the labels are ``CONFUSION_ABSENT``. With cells of 28 px or more
    the percentage is written in each cell. The grid is the picture's bottom-right
    ``K * cell_size`` square, ``CONFUSION_MARGIN`` pixels from both edges.

    Args:
        cm: ``[K, K]`` counts.
        class_names: K names (cut to 20 characters).
        cell_size: pixels per cell; default ``clip(640 // K, 12, 48)``.
    """
    norm = row_normalised(cm)
    k = norm.shape[0]
    if norm.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"confusion matrix {norm.shape} and {len(class_names)} class names "
                         "do not match")
    cell = int(cell_size or np.clip(640 // k, 12, 48))
    scale = min(0.45, cell / 36.0)
    names = [str(n)[:20] for n in class_names]
    label_w = max(cv2.getTextSize(n, _FONT, scale, 1)[0][0] for n in names) + 6
    axis = 18
    low, high = np.array(CONFUSION_LOW, "float64"), np.array(CONFUSION_HIGH, "float64")
    grid = np.zeros((k * cell, k * cell, 3), "uint8")
    for i in range(k):
        for j in range(k):
            value = norm[i, j]
            color = CONFUSION_ABSENT if np.isnan(value) else tuple(
                int(c + 0.5) for c in low + value * (high - low))
            grid[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell] = color
            if cell >= 28 and not np.isnan(value):
                text = f"{100 * value:.0f}"
                (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 1)
                ink = (255, 255, 255) if value > 0.5 else (0, 0, 0)
                cv2.putText(grid, text, (j * cell + (cell - tw) // 2,
                                         i * cell + (cell + th) // 2), _FONT, scale, ink, 1,
                            cv2.LINE_AA)
    grid[::cell, :] = grid[:, ::cell] = (255, 255, 255)
    left = axis + label_w
    top = axis + label_w
    out = np.full((top + k * cell + CONFUSION_MARGIN, left + k * cell + CONFUSION_MARGIN, 3),
                  255, "uint8")
    out[top:top + k * cell, left:left + k * cell] = grid
    rows = np.full((k * cell, label_w, 3), 255, "uint8")
    columns = np.full((k * cell, label_w, 3), 255, "uint8")
    for i, name in enumerate(names):
        (tw, th), _ = cv2.getTextSize(name, _FONT, scale, 1)
        baseline = i * cell + (cell + th) // 2
        cv2.putText(rows, name, (label_w - tw - 4, baseline), _FONT, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cv2.putText(columns, name, (4, baseline), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    out[top:top + k * cell, axis:left] = rows
    # column names written left to right, then turned so they read bottom to top
    out[axis:top, left:left + k * cell] = np.rot90(columns, k=1)
    return _axis_titles(out, top, left, k * cell, axis)


def _axis_titles(out, top, left, size, axis):
    scale = 0.45
    (tw, th), _ = cv2.getTextSize("predicted", _FONT, scale, 1)
    cv2.putText(out, "predicted", (left + (size - tw) // 2, th + 2), _FONT, scale,
                (0, 0, 0), 1, cv2.LINE_AA)
    strip = np.full((axis, size, 3), 255, "uint8")
    (tw, th), _ = cv2.getTextSize("true class", _FONT, scale, 1)
    cv2.putText(strip, "true class", ((size - tw) // 2, th + 2), _FONT, scale, (0, 0, 0), 1,
                cv2.LINE_AA)
    out[top:top + size, :axis] = np.rot90(strip, k=1)
    return out


#: Colours of ``curves_picture``: the curve and the point markers.
CURVE_COLOR = (31, 119, 180)


def _number(value):
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def curves_picture(panels, width=640, panel_height=170):
    """Learning curves: one plot per ``(title, steps, values)`` panel, stacked.

    Each plot draws its values against the step as a ``CURVE_COLOR`` polyline (points
    marked when there are at most 50), inside a frame labelled with the value range
    (left) and the step range (bottom). An empty series gives a frame with "no data".
    """
    plots = []
    left, right, top, bottom = 64, 12, 22, 22
    for title, steps, values in panels:
        plot = np.full((panel_height, width, 3), 255, "uint8")
        x0, x1, y0, y1 = left, width - right, top, panel_height - bottom
        cv2.rectangle(plot, (x0, y0), (x1, y1), (0, 0, 0), 1)
        cv2.putText(plot, str(title), (x0, top - 7), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        steps = np.asarray(steps, "float64")
        values = np.asarray(values, "float64")
        keep = np.isfinite(values)
        steps, values = steps[keep], values[keep]
        if not len(values):
            cv2.putText(plot, "no data", (x0 + 8, (y0 + y1) // 2), _FONT, 0.45,
                        (128, 128, 128), 1, cv2.LINE_AA)
            plots.append(plot)
            continue
        s_lo, s_hi = float(steps.min()), float(steps.max())
        v_lo, v_hi = float(values.min()), float(values.max())
        s_span = s_hi - s_lo or 1.0
        v_span = v_hi - v_lo or 1.0
        xs = x0 + 4 + (steps - s_lo) / s_span * (x1 - x0 - 8)
        ys = y1 - 4 - (values - v_lo) / v_span * (y1 - y0 - 8)
        points = np.stack([xs, ys], -1).round().astype(np.int32)
        if len(points) > 1:
            cv2.polylines(plot, [points.reshape(-1, 1, 2)], False, CURVE_COLOR, 2, cv2.LINE_AA)
        if len(points) <= 50:
            for x, y in points:
                cv2.circle(plot, (int(x), int(y)), 3, CURVE_COLOR, -1, cv2.LINE_AA)
        for text, y in ((_number(v_hi), y0 + 12), (_number(v_lo), y1 - 4)):
            cv2.putText(plot, text, (4, y), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        for text, x in ((f"{s_lo:.0f}", x0), (f"step {s_hi:.0f}", x1 - 70)):
            cv2.putText(plot, text, (x, panel_height - 6), _FONT, 0.38, (0, 0, 0), 1,
                        cv2.LINE_AA)
        plots.append(plot)
    return np.concatenate(plots, axis=0)


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


# ---------------------------------------------------------------------------------------
# Method-specific figures
# ---------------------------------------------------------------------------------------

#: Side names of DFF's class-major fusion weights (Side5_i, Side1, Side2, Side3).
DFF_SIDES = ("side5", "side1", "side2", "side3")


def resize_map(values, size, interpolation=cv2.INTER_LINEAR):
    """Resize a ``[h,w]`` or ``[h,w,C]`` array to ``size`` = (H, W) with OpenCV."""
    values = np.asarray(values, dtype="float32")
    height, width = size
    if values.shape[:2] == (height, width):
        return values
    channels = values.shape[2] if values.ndim == 3 else None
    out = cv2.resize(values, (width, height), interpolation=interpolation)
    return out[..., None] if channels == 1 else out


def _layer_names(model):
    return {layer.name for layer in model.layers}


def gff_gate_layers(model):
    """Names of GFF gate layers present in ``model``, in model order: ``gate_<level>``, or
    ``gff_head__gate<i>__0`` of the reference head (``reference_head=True``)."""
    return [layer.name for layer in model.layers
            if layer.name.startswith(("gate_", "gff_head__gate"))]


def gate_figures(model, images):
    """GFF: one heat map (0..1) per level gate; per-channel gates are averaged."""
    from kerasfuse.models import intermediates

    names = gff_gate_layers(model)
    gates = intermediates(model, names)(images, training=False)
    size = images.shape[1:3]
    figures = {}
    for name in names:
        gate = to_numpy(gates[name])[0].astype("float32").mean(axis=-1)
        figures[name] = heatmap(resize_map(gate, size), vmin=0.0, vmax=1.0)
    return figures


def decouple_figures(model, images):
    """DecoupleSegNet: flow field (colour wheel), body / edge / fused features (PCA to
    RGB) and the predicted boundary probability."""
    from kerasfuse.models.decouple import decouple_intermediates

    size = images.shape[1:3]
    values = decouple_intermediates(model)(images, training=False)
    outputs = model(images, training=False)
    figures = {"flow": flow_to_color(resize_map(to_numpy(values["flow"])[0], size))}
    figures["flow_wheel"] = color_wheel(64)
    for key in ("body_features", "edge_features", "fused_features"):
        pca = pca_to_rgb(to_numpy(values[key])[0])
        figures[key.replace("_features", "_pca")] = to_uint8(resize_map(pca, size))
    boundary = sigmoid(to_numpy(outputs["boundary_logits"])[0, ..., 0])
    figures["boundary"] = heatmap(boundary, vmin=0.0, vmax=1.0, colormap=cv2.COLORMAP_BONE)
    return figures


def dff_figures(model, images, palette=None):
    """DFF: per-pixel fusion weight of every side (mean over classes; the location-
    invariant learner gives one weight per image), the fused and Side5 edge maps."""
    from kerasfuse.models import intermediates

    size = images.shape[1:3]
    sub = intermediates(model, ["fusion_weights"])
    weights = to_numpy(sub(images, training=False)["fusion_weights"])[0]
    num_sides = len(DFF_SIDES)
    weights = weights.reshape(weights.shape[:2] + (-1, num_sides)).mean(axis=2)
    low, high = float(weights.min()), float(weights.max())
    figures = {}
    for j, side in enumerate(DFF_SIDES):
        figures[f"fusion_weight_{side}"] = heatmap(
            resize_map(weights[..., j], size, cv2.INTER_NEAREST), vmin=low, vmax=high
        )
    outputs = model(images, training=False)
    figures["fused_edges"] = edge_to_color(sigmoid(to_numpy(outputs["logits"])[0]), palette)
    figures["side5_edges"] = edge_to_color(
        sigmoid(to_numpy(outputs["side5_logits"])[0]), palette
    )
    return figures


def dmnet_figures(model, images, max_channels=32):
    """DMNet: the generated (per-image) depthwise kernels of every Dynamic Conv Module."""
    from kerasfuse.models import intermediates

    names = [layer.name for layer in model.layers
             if layer.name.startswith("dcm") and layer.name.endswith("_kernels")]
    kernels = intermediates(model, names)(images, training=False)
    return {name: kernel_grid(to_numpy(kernels[name])[0], max_channels=max_channels)
            for name in names}


def exfuse_figures(model, images, palette=None):
    """ExFuse: the SEB-enhanced low-level features (PCA to RGB) of every stage and, when
    the model has it, the ECRE auxiliary prediction."""
    from kerasfuse.models import intermediates

    size = images.shape[1:3]
    names = [layer.name for layer in model.layers if layer.name.startswith("seb_")]
    figures = {}
    if names:
        values = intermediates(model, names)(images, training=False)
        for name in names:
            pca = pca_to_rgb(to_numpy(values[name])[0])
            figures[f"{name}_pca"] = to_uint8(resize_map(pca, size))
    outputs = model(images, training=False)
    if "ecre_logits" in outputs:
        figures["ecre_prediction"] = colorize(to_numpy(outputs["ecre_logits"])[0].argmax(-1),
                                              palette)
    return figures


def method_figures(model, images, palette=None):
    """The figures of the model's method (registry field ``figures``); {} for none.

    Only a Keras Segmenter has intermediates to show; an exported SavedModel has none.
    """
    from kerasfuse.models.registry import get_spec
    from kerasfuse.models.segmenter import Segmenter

    if not isinstance(model, Segmenter):
        return {}
    family = get_spec(model.model_name).figures
    if family == "gff":
        return gate_figures(model, images)
    if family == "decouple":
        return decouple_figures(model, images)
    if family == "dff":
        return dff_figures(model, images, palette)
    if family == "dmnet":
        return dmnet_figures(model, images)
    if family == "exfuse":
        return exfuse_figures(model, images, palette)
    return {}


def model_palette(model, num_classes):
    """The model's own palette (uint8 [K, 3]) when it has one, else ``color_palette``."""
    palette = getattr(model, "palette", None)
    if palette is not None and len(palette) == num_classes:
        return np.asarray(palette, dtype="uint8")
    return color_palette(num_classes)


def visualize_model(model, image, out_dir, class_names=None, labels=None, prefix="",
                    inference_options=None, probabilities=None):
    """Write the prediction and the method's intermediates of one image as PNG files.

    Args:
        model: a Segmenter (or a loaded SavedModel): its ``task``, ``class_names`` and
            ``palette`` are used.
        image: RGB image ``[H,W,3]`` in [0, 255].
        out_dir: folder for the PNG files (created).
        class_names: names for the legend (default the model's, else "0", "1", ...).
        labels: optional GT label map ``[H,W]``, drawn next to the prediction.
        prefix: file-name prefix (e.g. the image id).
        inference_options: keyword arguments of ``kerasfuse.inference.predict`` (mode,
            crop_size, scales, ...); whole-image inference by default.
        probabilities: already computed ``[H,W,K]`` probabilities of ``image`` (then no
            inference is run for the prediction panel).

    Returns:
        Dict figure name -> PNG path. Always ``prediction`` (with ``labels``: the
        ``prediction_picture`` image | ground truth | prediction | error map + legend;
        without: overlay + legend, or coloured edges + legend for edge models) and
        ``summary`` (all panels tiled, titled); plus
        per method: GFF ``gate_<level>``; DecoupleSegNet ``flow``, ``flow_wheel``,
        ``body_pca``, ``edge_pca``, ``fused_pca``, ``boundary``; DFF
        ``fusion_weight_side5|side1|side2|side3``, ``fused_edges``, ``side5_edges``; DMNet
        ``dcm<k>_kernels``; ExFuse ``seb_<stage>_pca`` (SEB-gated features) and
        ``ecre_prediction``. Every panel except legends, wheel and kernel grids has the
        image's size.
    """
    from kerasfuse import inference

    task = model.task
    rgb = to_uint8(image)
    images = np.asarray(image, dtype="float32")[None]
    probs = probabilities
    if probs is None:
        probs = inference.predict(model, images, task=task, **(inference_options or {}))[0]
    num_classes = probs.shape[-1]
    if class_names is None:
        class_names = model.class_names or [str(i) for i in range(num_classes)]
    names = list(class_names)
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for a {num_classes}-class model")
    if task == "edge":
        palette = color_palette(num_classes + 1)[1:]
        panels = {"edges": edge_to_color(probs, palette)}
        prediction = with_legend(panels["edges"], names, palette)
    else:
        palette = model_palette(model, num_classes)
        panels = {"overlay": overlay(rgb, probs.argmax(-1), palette=palette)}
        if labels is not None:
            panels["ground_truth"] = overlay(rgb, labels, palette=palette)
            prediction = prediction_picture(rgb, labels, probs.argmax(-1), names, palette)
        else:
            prediction = with_legend(hstack(list(panels.values())), names, palette)
    panels.update(method_figures(model, images, palette))
    figures = {"prediction": prediction}
    figures.update({k: v for k, v in panels.items()
                    if k not in ("overlay", "ground_truth", "edges")})
    figures["summary"] = tile([rgb] + list(panels.values()),
                              titles=["image"] + list(panels), columns=4)
    return {name: save_png(os.path.join(out_dir, f"{prefix}{name}.png"), picture)
            for name, picture in figures.items()}
