"""Thumbnails for dataset.parquet: PNG bytes of images, and of signals drawn as line plots."""
from __future__ import annotations

import io

import numpy as np

def png_thumbnails(images: np.ndarray, size: int = 32) -> list[bytes]:
    """PNG bytes per image (N, c, H, W): grayscale for c = 1, RGB for c = 3.

    Intensities are scaled by the range over all images (not per image, so contrast is
    comparable across the gallery); images smaller than `size` are upscaled by an integer
    factor with nearest-neighbour so pixels stay crisp.
    """
    from PIL import Image

    lo, hi = float(images.min()), float(images.max())
    pixels = np.clip((images - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if pixels.shape[1] not in (1, 3):  # other channel counts: show the first channel
        pixels = pixels[:, :1]
    pixels = pixels.transpose(0, 2, 3, 1)  # (N, H, W, c), PIL's layout
    factor = max(1, size // max(pixels.shape[1], pixels.shape[2]))
    if factor > 1:
        pixels = pixels.repeat(factor, axis=1).repeat(factor, axis=2)
    out = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def signal_thumbnails(signals: np.ndarray, size: int = 48) -> list[bytes]:
    """PNG bytes per 1-D signal (N, c, L) or (N, L): a dark line plot on white, size × size, grayscale.

    Only the first channel is drawn. The vertical range is shared by all signals (like
    png_thumbnails' intensity range, so amplitudes compare across the gallery): the 0.1–99.9 %
    quantiles of all values, so one extreme sample does not flatten the rest (values beyond are
    clipped to the edge). A light grey line marks zero. Drawn with numpy: each segment between
    neighbouring samples is sampled at `size` points, dense enough that steep ones leave no gaps.
    """
    from PIL import Image

    y = np.asarray(signals, dtype=np.float64).reshape(len(signals), -1, signals.shape[-1])[:, 0]  # (N, L)
    n, length = y.shape
    lo, hi = (float(v) for v in np.quantile(y, [0.001, 0.999]))
    margin = 2  # pixels kept free at each edge
    span = size - 1 - 2 * margin
    to_row = lambda v: margin + (hi - v) / max(hi - lo, 1e-12) * span  # high values at the top
    cols = margin + np.arange(length) / max(length - 1, 1) * span  # (L,)
    rows = np.clip(to_row(y), margin, size - 1 - margin)  # (N, L)
    s = np.linspace(0.0, 1.0, size)[:, None]  # (S, 1) positions along each segment
    seg_c = np.rint(cols[:-1] + s * np.diff(cols)).astype(np.int64).reshape(-1)  # (S·(L−1),)
    pixels = np.full((n, size, size), 255, dtype=np.uint8)
    if lo < 0 < hi:
        pixels[:, int(round(to_row(0.0))), margin:size - margin] = 200
    # in chunks: a signal has S·(L−1) segment points (1,872 for MNIST-1D), so 125,000 signals at once
    # held (N, S, L−1) float64 and int64 arrays and their index copies, a 6 GB peak
    chunk = max(1, (1 << 22) // max(1, seg_c.size))
    for start in range(0, n, chunk):
        part = rows[start:start + chunk]
        seg_r = part[:, None, :-1] + s * np.diff(part, axis=1)[:, None, :]  # (B, S, L−1)
        r = np.rint(seg_r).astype(np.int64).reshape(len(part), -1)
        pixels[np.arange(start, start + len(part))[:, None], r, seg_c[None, :]] = 0
    out = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out
