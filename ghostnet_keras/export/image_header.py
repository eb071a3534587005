"""Reads the size an encoded image declares, without decoding it: graph ops only.

`read_header(data)` classifies JPEG / PNG / GIF / BMP bytes the way `tf.io.decode_image` does
(by their magic bytes) and returns what the header declares: width, height, the number of
frames, and the pixels the decoder will hold (for a GIF, giflib keeps every frame: the canvas
plus the frame rectangles). Nothing is allocated in proportion to the declared size, so a
decompression bomb is seen for what it is before a decoder runs. Used by the TF Serving export
(`ghostnet_keras.export.serving`) to bound every request; docs/serving.md says what is refused.

Sources: JPEG through `tf.io.extract_jpeg_shape` (libjpeg's header reader, which refuses a
truncated header), PNG from the IHDR chunk, BMP from the BITMAPINFOHEADER (read as
TensorFlow's BMP decoder reads it), GIF from the logical screen and a walk over its blocks.
"""

from __future__ import annotations

from typing import NamedTuple

from ghostnet_keras.backends import require_tensorflow

require_tensorflow("ghostnet_keras.export.image_header (graph ops)", backend=False)

import tensorflow as tf  # noqa: E402

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
"""The formats `read_header` knows, in the order of `ImageHeader.format` (-1: none of them)."""

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")  # as tf.io.decode_image
_HEAD_BYTES = 32  # enough for every fixed header read here

_GIF_HOPS = 8  # data sub-blocks one step of the GIF walk follows at most
MAX_GIF_STEPS = 8_000
"""The most steps `read_header` walks in one GIF: a block and up to 8 of its data sub-blocks.

Encoders write 255-byte sub-blocks, so that is about 16 MB of image data, or some 4,000
frames; a GIF in more pieces than this is reported (`problem`) instead of walked further.
"""


class ImageHeader(NamedTuple):
    """What an encoded image declares (scalar tensors)."""

    format: tf.Tensor  # int32 index into FORMATS, -1 when the bytes are none of them
    width: tf.Tensor  # int64
    height: tf.Tensor  # int64
    frames: tf.Tensor  # int64: 1, or the number of GIF frames walked
    pixels: tf.Tensor  # int64: pixels the decoder holds (GIF: canvas + every frame rectangle)
    problem: tf.Tensor  # string: why the header cannot be read; empty when it can


def _bytes(data: tf.Tensor, start: int | tf.Tensor, count: int) -> tf.Tensor:
    """`count` bytes of `data` from `start` as int64, zero past the end."""
    length = tf.strings.length(data)
    start = tf.minimum(tf.cast(start, tf.int32), length)
    piece = tf.io.decode_raw(tf.strings.substr(data, start, count), tf.uint8)
    piece = tf.cast(piece, tf.int64)
    return tf.pad(piece, [[0, count - tf.shape(piece)[0]]])


def _little_endian(raw: tf.Tensor, start: int, count: int) -> tf.Tensor:
    return sum(raw[start + i] * (1 << (8 * i)) for i in range(count))


def _big_endian(raw: tf.Tensor, start: int, count: int) -> tf.Tensor:
    return sum(raw[start + i] * (1 << (8 * (count - 1 - i))) for i in range(count))


def _format_index(head: tf.Tensor) -> tf.Tensor:
    index = tf.constant(-1, tf.int32)
    for i, magic in reversed(list(enumerate(_MAGIC))):
        matches = tf.reduce_all(tf.equal(head[: len(magic)], list(magic)))
        index = tf.where(matches, i, index)
    return index


def _result(width, height, frames=1, pixels=None, problem="") -> tuple[tf.Tensor, ...]:
    width = tf.cast(width, tf.int64)
    height = tf.cast(height, tf.int64)
    if pixels is None:  # clamped: a PNG may declare 2^32 - 1 a side, and the product wraps
        pixels = tf.minimum(width, 1 << 31) * tf.minimum(height, 1 << 31)
    return (width, height, tf.cast(frames, tf.int64), tf.cast(pixels, tf.int64),
            tf.convert_to_tensor(problem, tf.string))


def _too_short(data: tf.Tensor, needed: int, name: str) -> tf.Tensor:
    return tf.where(
        tf.strings.length(data) < needed,
        tf.strings.format(f"truncated {name} header ({{}} bytes; it needs {needed})",
                          tf.strings.length(data)),
        "",
    )


def _jpeg(data: tf.Tensor) -> tuple[tf.Tensor, ...]:
    # libjpeg's header reader: SOF dimensions, no pixel buffers; a cut header is an error
    # ("Invalid JPEG data, size N") raised by the op itself.
    shape = tf.io.extract_jpeg_shape(data, output_type=tf.int64)
    return _result(shape[1], shape[0])


def _png(data: tf.Tensor, head: tf.Tensor) -> tuple[tf.Tensor, ...]:
    problem = _too_short(data, 24, "PNG")
    is_ihdr = tf.reduce_all(tf.equal(head[12:16], list(b"IHDR")))
    problem = tf.where(
        tf.logical_and(tf.equal(problem, ""), tf.logical_not(is_ihdr)),
        "PNG without an IHDR chunk first", problem,
    )
    return _result(_big_endian(head, 16, 4), _big_endian(head, 20, 4), problem=problem)


def _bmp(data: tf.Tensor, head: tf.Tensor) -> tuple[tf.Tensor, ...]:
    # TensorFlow's BMP decoder reads int32 width and height at 18 and 22 (negative height:
    # top-down rows), whatever the DIB header size.
    def signed(value: tf.Tensor) -> tf.Tensor:
        return tf.where(value >= 1 << 31, value - (1 << 32), value)

    width = signed(_little_endian(head, 18, 4))
    height = tf.abs(signed(_little_endian(head, 22, 4)))
    return _result(width, height, problem=_too_short(data, 26, "BMP"))


def _color_table_bytes(packed: tf.Tensor) -> tf.Tensor:
    has_table = tf.bitwise.bitwise_and(packed, 0x80) > 0
    entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7))
    return tf.where(has_table, 3 * entries, tf.constant(0, tf.int64))


def _gif(data: tf.Tensor, head: tf.Tensor, max_pixels: int) -> tuple[tf.Tensor, ...]:
    """Walks the blocks: per step, one block header, then up to `_GIF_HOPS` data sub-blocks.

    Stops at the trailer, at the end of the data (truncated), at an unknown block, after
    `MAX_GIF_STEPS` steps, or as soon as the frames hold more than `max_pixels`.
    """
    width = _little_endian(head, 6, 2)
    height = _little_endian(head, 8, 2)
    raw = tf.pad(tf.io.decode_raw(data, tf.uint8), [[0, 1]])  # a zero past the end
    length = tf.cast(tf.strings.length(data), tf.int64)
    zero = tf.constant(0, tf.int64)

    def at(position: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.gather(raw, tf.minimum(position, length)), tf.int64)

    # outcome 0: walking, 1: trailer reached, 2: truncated, 3: unknown block, 4: too many steps
    def step(position, in_chain, frames, pixels, steps, outcome):
        byte = at(position)
        block = tf.logical_not(in_chain)
        is_image = tf.logical_and(block, tf.equal(byte, 0x2C))  # image descriptor
        is_extension = tf.logical_and(block, tf.equal(byte, 0x21))
        is_trailer = tf.logical_and(block, tf.equal(byte, 0x3B))
        unknown = tf.logical_and(block, tf.logical_not(
            tf.logical_or(tf.logical_or(is_image, is_extension), is_trailer)))
        frame_pixels = (at(position + 5) + 256 * at(position + 6)) * (
            at(position + 7) + 256 * at(position + 8))
        frames += tf.cast(is_image, tf.int64)
        pixels += tf.where(is_image, frame_pixels, zero)
        # descriptor, local colour table, LZW code size; extension: introducer and label
        position = tf.where(is_image, position + 11 + _color_table_bytes(at(position + 9)),
                            tf.where(is_extension, position + 2, position))
        in_chain = tf.logical_or(in_chain, tf.logical_or(is_image, is_extension))
        for _ in range(_GIF_HOPS):  # data sub-blocks: a size byte, then that many bytes
            size = at(position)
            position = tf.where(in_chain, position + 1 + size, position)
            in_chain = tf.logical_and(in_chain, tf.not_equal(size, 0))
        steps += 1
        outcome = tf.where(is_trailer, 1, tf.where(
            position >= length, 2, tf.where(
                unknown, 3, tf.where(steps >= MAX_GIF_STEPS, 4, 0))))
        return position, in_chain, frames, pixels, steps, outcome

    def walking(position, in_chain, frames, pixels, steps, outcome):
        return tf.logical_and(tf.equal(outcome, 0), pixels <= max_pixels)

    start = 13 + _color_table_bytes(head[10])
    _, _, frames, pixels, _, outcome = tf.while_loop(
        walking, step, (start, tf.constant(False), zero, zero, zero, tf.constant(0)),
        parallel_iterations=1, name="walk_gif_blocks",
    )
    problems = tf.constant([
        "", "", "truncated GIF (its data ends before the trailer)",
        "GIF with an unknown block", f"GIF in more than {MAX_GIF_STEPS} steps of its walk",
    ])
    problem = tf.where(pixels > max_pixels, "", tf.gather(problems, outcome))
    problem = tf.where(tf.strings.length(data) < 13, "truncated GIF header", problem)
    problem = tf.where(
        tf.logical_and(tf.equal(problem, ""), tf.equal(frames, 0)), "GIF without an image",
        problem)
    # giflib holds every frame it reads, TensorFlow a canvas on top
    return _result(width, height, frames, pixels + width * height, problem)


def read_header(data: tf.Tensor, max_pixels: int) -> ImageHeader:
    """What the encoded image `data` (a scalar string) declares; graph ops, no decoding.

    `max_pixels` only ends a GIF's walk early, once its frames hold more than that (the
    `pixels` returned then exceed it).
    """
    data = tf.convert_to_tensor(data, tf.string)
    head = _bytes(data, 0, _HEAD_BYTES)
    index = _format_index(head)
    branches = [
        lambda: _jpeg(data),
        lambda: _png(data, head),
        lambda: _gif(data, head, max_pixels),
        lambda: _bmp(data, head),
    ]
    unknown = lambda: _result(0, 0, 0, 0, "Unknown image file format (not JPEG, PNG, GIF or BMP)")  # noqa: E731
    values = tf.switch_case(tf.where(index < 0, len(branches), index), [*branches, unknown])
    return ImageHeader(index, *values)
