"""What one request to the TF Serving export may hold: `RequestLimits`, fixed at export.

`ghostnet_keras.export.serving` checks them in the graph before any decoding (docs/serving.md,
"What a request may hold").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ghostnet_keras import preprocessing

DEFAULT_MAX_PIXELS = 25_000_000  # a 24-megapixel photo (6000 x 4000, 6016 x 4016) fits
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_IMAGE_BYTES = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may hold; fixed at export, checked in the graph before any decoding.

    `max_pixels` bounds the pixels an image's header declares (a GIF: the canvas plus every
    frame, all of which the decoder holds), the image the resize makes of it (the shorter
    side scaled to `eval_resize_size(image_size)`: a 1 x 100000 strip would become huge), and
    the height x width of a `predict_images` input.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES

    def checked(self, image_size: int) -> RequestLimits:
        """These limits as plain ints, or ValueError naming the one that cannot work."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(
                    f"{field.name} must be a positive integer; received {value!r}.")
        least = 4 * preprocessing.eval_resize_size(image_size) ** 2
        if self.max_pixels < least:
            raise ValueError(
                f"max_pixels={self.max_pixels} is too small for image_size={image_size}: "
                f"it must be at least {least} (four times the resized image before the crop)."
            )
        return RequestLimits(*(int(value) for value in dataclasses.astuple(self)))
