"""`synthetic_images`: deterministic photo-like RGB test images (calibration smoke runs, warm-up
requests, tests), one generator for the whole library."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np


def synthetic_images(
    num_images: int = 100, size: int | tuple[int, int] = 224, seed: int = 0
) -> Callable[[], Iterator[np.ndarray]]:
    """Deterministic "real-ish" RGB images in [0, 255]: smooth colour fields with edges.

    Each image is a sum of a few random low-frequency colour gratings, a couple of flat shapes
    and a little noise, stretched to a random contrast range (every fourth image to the full
    0-255 range, so that a calibrated int8 input covers it), so activations cover ranges
    similar to photographs (unlike uniform noise). Good for tests and smoke runs; calibrate real
    deployments on real images (`folder_images`).

    Args:
        num_images: how many images each call yields.
        size: output height and width (an int for square images).
        seed: random seed; the same seed gives the same images.

    Returns:
        A callable yielding float32 arrays of shape `(H, W, 3)`.
    """
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        yy, xx = np.meshgrid(
            np.linspace(0.0, 1.0, height, dtype=np.float32),
            np.linspace(0.0, 1.0, width, dtype=np.float32),
            indexing="ij",
        )
        for index in range(num_images):
            image = np.zeros((height, width, 3), np.float32)
            for _ in range(4):
                fx, fy = rng.uniform(-4.0, 4.0, size=2)
                phase = rng.uniform(0.0, 2.0 * math.pi)
                grating = np.cos(2.0 * math.pi * (fx * xx + fy * yy) + phase)
                image += grating[..., None] * rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
            for _ in range(2):
                cy, cx = rng.uniform(0.0, 1.0, size=2)
                ry, rx = rng.uniform(0.1, 0.4, size=2)
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
                image[mask] += rng.uniform(-1.5, 1.5, size=3).astype(np.float32)
            image += rng.normal(0.0, 0.05, size=image.shape).astype(np.float32)
            low, high = image.min(), image.max()
            lo, hi = rng.uniform(0.0, 60.0), rng.uniform(190.0, 255.0)
            if index % 4 == 0:  # full range, so that calibrated input ranges span 0-255
                lo, hi = 0.0, 255.0
            image = (image - low) / max(float(high - low), 1e-6) * (hi - lo) + lo
            yield np.clip(image, 0.0, 255.0).astype(np.float32)

    return generate


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """One `synthetic_images` image as uint8 `(height, width, 3)` (for encoding as JPEG/PNG)."""
    image = next(iter(synthetic_images(1, (height, width), seed)()))
    return np.round(image).astype(np.uint8)
