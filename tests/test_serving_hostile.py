"""Hostile requests to the TF Serving export: each is refused before decoding, or answered right.

The export is loaded the way TF Serving loads it (a TF1 session, `SessionServer`). Refusals are
INVALID_ARGUMENT naming the problem; valid but unusual images (16-bit, grey, CMYK, RGBA, BMP,
animated GIF) get the answer the Keras model gives on the pixels decoded another way; and the
server answers a good request after every refusal. `benchmarks/serving_load.py` reuses the
builders and the threaded load below.
"""

from __future__ import annotations

import dataclasses
import io
import json
import queue
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image  # the dev extra: animated GIFs, CMYK JPEGs, an independent decoder

from ghostnet_keras import preprocessing
from ghostnet_keras.export import image_header, serving
from ghostnet_keras.models.ghostnet import GhostNet
from ghostnet_keras.synthetic_images import synthetic_image

from .test_serving import SessionServer, _jpeg, _png, peaked_classifier

IMAGE_SIZE = 32
LIMITS = {"max_batch_size": 8, "max_image_bytes": 4 * 2**20}  # max_pixels: the default
MAX_RSS_GROWTH = 500 * 2**20


# ----------------------------------------------------------------------------- image builders


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid black RGB PNG of `width` x `height`: about 1.2 MB for 20000 x 20000.

    The zlib stream of `(1 + 3 * width) * height` zeros is one compressed run of 200 rows
    repeated (full flushes make the runs independent), with the Adler-32 of all the zeros.
    """
    row = 1 + 3 * width
    rows = 200 if height % 200 == 0 else 1
    compressor = zlib.compressobj(9)
    block = bytes(row * rows)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    run = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()[:-4]
    adler = ((row * height % 65521) << 16) | 1  # Adler-32 of zeros: a = 1, b = n mod 65521
    stream = first + run * (height // rows - 1) + end + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream)
            + _chunk(b"IEND", b""))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small baseline JPEG whose SOF0 segment is patched to declare another size."""
    data = bytearray(_jpeg(synthetic_image(16, 16, seed=9)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def pil_encode(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


TWO_COLOURS = ((255, 0, 0), (0, 0, 255))


def animated_gif(frames: int, side: int) -> bytes:
    """A real GIF of `frames` frames of `side` x `side`, alternating two palette colours."""
    palette = [value for colour in TWO_COLOURS for value in colour] + [0] * 762
    images = []
    for i in range(frames):
        image = Image.new("P", (side, side), i % 2)
        image.putpalette(palette)
        images.append(image)
    return pil_encode(images[0], "GIF", save_all=True, append_images=images[1:])


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(21)
    return peaked_classifier(
        GhostNet(width=0.1, classes=10, input_shape=(None, None, 3)), IMAGE_SIZE)


@pytest.fixture(scope="module")
def export_dir(model, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile") / "ghostnet"
    return serving.export_serving_model(
        model, base, image_size=IMAGE_SIZE, warmup=False, **LIMITS)


@pytest.fixture(scope="module")
def server(export_dir):
    server = SessionServer(export_dir)
    serve(server, [_png(synthetic_image(20, 20, seed=0))])  # warm-up, as TF Serving's
    yield server
    server.close()


def reference(model: keras.Model, pixels: np.ndarray, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """The Keras model's probabilities on decoded `pixels` ([H, W, 3] uint8)."""
    crop = preprocessing.eval_preprocess(tf.constant(pixels), image_size)
    return keras.ops.convert_to_numpy(model(crop[None], training=False))[0]


def serve(server: SessionServer, images: Sequence[bytes]) -> np.ndarray:
    outputs = server.run(
        serving.SERVING_SIGNATURE, {serving.IMAGE_BYTES_INPUT: np.array(images, dtype=object)})
    return outputs["probabilities"]


def _peak_rss_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _vm(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{name} not in /proc/self/status")


# ----------------------------------------------------------------------------- header reader


def test_read_header_of_each_format():
    pixels = synthetic_image(45, 61, seed=1)
    cases = {
        "JPEG": _jpeg(pixels),
        "PNG": _png(pixels),
        "BMP": pil_encode(Image.fromarray(pixels), "BMP"),
        "GIF": pil_encode(Image.fromarray(pixels).convert("P"), "GIF"),
    }
    for kind, data in cases.items():
        header = image_header.read_header(tf.constant(data), 10**6)
        assert image_header.FORMATS[int(header.format)] == kind
        assert (int(header.width), int(header.height)) == (61, 45), kind
        assert header.problem.numpy() == b"", kind
    animated = image_header.read_header(tf.constant(animated_gif(7, 8)), 10**6)
    assert (int(animated.frames), int(animated.pixels)) == (7, 8 * 64)  # frames + canvas
    bomb = image_header.read_header(tf.constant(png_bomb(20000, 20000)), 10**6)
    assert int(bomb.pixels) == 400_000_000
    assert int(image_header.read_header(tf.constant(b"RIFF0000WEBP"), 1).format) == -1


# ----------------------------------------------------------------------------- hostile inputs


def _hostile_cases() -> dict[str, tuple[Callable[[], bytes], str]]:
    """Name -> (builder, the message the refusal must carry)."""
    jpeg = _jpeg(synthetic_image(64, 80, seed=4))
    rng = np.random.default_rng(0)
    return {
        "png_20000x20000": (lambda: png_bomb(20000, 20000),
                            "a PNG of 20000 x 20000 pixels is over the pixel budget of "
                            f"{serving.DEFAULT_MAX_PIXELS}"),
        "png_wrapping_size": (lambda: png_bomb(20000, 1)[:16] + struct.pack(">II", *[2**32 - 1] * 2)
                              + png_bomb(20000, 1)[24:],
                              "a PNG of 4294967295 x 4294967295 pixels is over the pixel budget"),
        "jpeg_30000x20000": (lambda: jpeg_declaring(30000, 20000),
                             "a JPEG of 30000 x 20000 pixels is over the pixel budget"),
        "gif_2000_frames": (lambda: animated_gif(2000, 128),
                            "a GIF of 128 x 128 pixels ("),
        "bmp_huge": (lambda: b"BM" + bytes(16) + struct.pack("<ii", 40000, -40000) + bytes(32),
                     "a BMP of 40000 x 40000 pixels is over the pixel budget"),
        "png_strip": (lambda: png_bomb(200_000, 1),
                      "a PNG of 200000 x 1 pixels would be resized to"),
        "truncated_jpeg": (lambda: jpeg[: len(jpeg) // 2], "Invalid JPEG data"),
        "truncated_jpeg_header": (lambda: jpeg[:100], "Invalid JPEG data, size 100"),
        "truncated_gif": (lambda: animated_gif(3, 8)[:-40], "truncated GIF"),
        "zero_bytes": (lambda: b"", "empty string (no image data) at batch index] [1]"),
        "random_bytes": (lambda: rng.bytes(4096), "image_bytes[1]: Unknown image file format"),
        "png_signature_then_noise": (lambda: b"\x89PNG\r\n\x1a\n" + rng.bytes(64),
                                     "PNG without an IHDR chunk first"),
        "over_max_image_bytes": (lambda: b"\xff\xd8\xff" + bytes(LIMITS["max_image_bytes"]),
                                 f"image_bytes[1] holds {LIMITS['max_image_bytes'] + 3} bytes"),
    }


HOSTILE = _hostile_cases()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_image_is_refused_then_server_answers(server, model, name):
    build, message = HOSTILE[name]
    data = build()
    good = synthetic_image(50, 70, seed=5)
    good_png = _png(good)
    expected = reference(model, good)
    reset = _peak_rss_reset()
    before = _vm("VmHWM" if reset else "VmRSS")
    start = time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        serve(server, [good_png, data])  # the good image first: nothing is decoded at all
    seconds = time.perf_counter() - start
    growth = _vm("VmHWM" if reset else "VmRSS") - before
    print(f"{name}: {len(data)} bytes refused in {seconds:.3f} s, peak RSS +{growth >> 20} MiB")
    assert message in refused.value.message
    assert growth < MAX_RSS_GROWTH
    np.testing.assert_allclose(serve(server, [good_png])[0], expected, atol=1e-5)


def test_batch_over_max_batch_size_is_refused(server):
    crops = np.zeros([LIMITS["max_batch_size"] + 1, IMAGE_SIZE, IMAGE_SIZE, 3], np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="images holds 9 images; this model "
                       "takes at most 8 per request"):
        server.run(serving.IMAGES_SIGNATURE, {serving.IMAGES_INPUT: crops})
    png = _png(synthetic_image(20, 20, seed=1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes holds 9 images"):
        serve(server, [png] * 9)
    assert serve(server, [png] * 8).shape == (8, 10)


# ----------------------------------------------------------------------------- valid oddities


def _valid_cases() -> dict[str, tuple[bytes, np.ndarray]]:
    """Name -> (encoded image, the RGB pixels a correct decoder gives), reference not TF's."""
    pixels = synthetic_image(45, 61, seed=7)
    rgba = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 77, np.uint8)], -1)
    cases = {
        # 16-bit values v * 257: every decoder maps them to v (PIL and TF keep the high byte)
        "png_16_bit": (_png(pixels.astype(np.uint16) * 257), pixels),
        "png_rgba": (_png(rgba), pixels),  # alpha is dropped, not blended
        "bmp": (pil_encode(Image.fromarray(pixels), "BMP"), pixels),
        # the first of 2,000 frames (red; the canvas is the frame)
        "gif_2000_small_frames": (animated_gif(2000, 16),
                                  np.full((16, 16, 3), TWO_COLOURS[0], np.uint8)),
    }
    for mode in ("L", "CMYK"):  # lossy: PIL's decoder is the reference pixels
        data = pil_encode(Image.fromarray(pixels).convert(mode), "JPEG", quality=90)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        cases[f"jpeg_{mode.lower()}"] = (data, decoded)
    return cases


@pytest.mark.parametrize("name", ["png_16_bit", "png_rgba", "bmp", "gif_2000_small_frames",
                                  "jpeg_l", "jpeg_cmyk"])
def test_valid_unusual_image_is_answered_correctly(server, model, name):
    data, pixels = _valid_cases()[name]
    start = time.perf_counter()
    served = serve(server, [data])[0]
    print(f"{name}: answered in {time.perf_counter() - start:.3f} s")
    if name.startswith("jpeg"):
        # libjpeg's IDCT in TF and in PIL differ by a level or two: the same pixels as PIL's
        # within that, and exactly the model's answer on TF's own decode
        tf_pixels = tf.io.decode_jpeg(data, channels=3).numpy()
        assert np.abs(tf_pixels.astype(int) - pixels).max() <= 4
        pixels = tf_pixels
    np.testing.assert_allclose(served, reference(model, pixels), atol=1e-5)


def test_limits_are_recorded_in_the_assets(export_dir):
    record = json.loads((export_dir / serving.WARMUP_DIR / serving.LIMITS_FILE).read_text())
    assert record == {"max_pixels": serving.DEFAULT_MAX_PIXELS, **LIMITS,
                      "image_size": IMAGE_SIZE, "formats": ["JPEG", "PNG", "GIF", "BMP"]}
    assert serving.DEFAULT_MAX_PIXELS >= 6016 * 4016  # a 24-megapixel photo


def test_limits_are_validated(model, tmp_path):
    for kwargs, message in [
        ({"max_pixels": 1000}, "max_pixels=1000 is too small for image_size=32"),
        ({"max_batch_size": 0}, "max_batch_size must be a positive integer"),
        ({"max_image_bytes": 2.5}, "max_image_bytes must be a positive integer"),
        ({"max_batch_size": True}, "max_batch_size must be a positive integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            serving.export_serving_model(model, tmp_path / "m", image_size=IMAGE_SIZE, **kwargs)
    assert not (tmp_path / "m").exists()
    limits = serving.RequestLimits(np.int64(10**6), 2, 10).checked(IMAGE_SIZE)
    assert type(limits.max_pixels) is int and json.dumps(dataclasses.asdict(limits))


# ----------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    """What `run_load` saw: counts, wrong answers, latencies, peak RSS."""

    answered: int = 0
    refused: int = 0
    wrong: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_rss: int = 0
    wall: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request: its images, then the expected probabilities, or a refusal's message."""

    name: str
    images: tuple[bytes, ...]
    expected: np.ndarray | None = None
    refusal: str = ""


def run_load(server: SessionServer, requests: Sequence[Request], threads: int) -> LoadResult:
    """Sends `requests` from `threads` threads through the session, as TF Serving does."""
    pending: queue.Queue[Request] = queue.Queue()
    for request in requests:
        pending.put(request)
    result = LoadResult()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                request = pending.get_nowait()
            except queue.Empty:
                return
            start = time.perf_counter()
            try:
                outcome = serve(server, request.images)
            except tf.errors.InvalidArgumentError as error:
                outcome = error
            seconds = time.perf_counter() - start
            with lock:
                result.seconds.setdefault(request.name, []).append(seconds)
                if isinstance(outcome, tf.errors.InvalidArgumentError):
                    result.refused += 1
                    if not request.refusal or request.refusal not in outcome.message:
                        result.wrong.append(f"{request.name}: refused ({outcome.message[:200]})")
                else:
                    result.answered += 1
                    if request.expected is None or not np.allclose(
                            outcome, request.expected, atol=1e-5):
                        result.wrong.append(f"{request.name}: answered, not as expected")

    _peak_rss_reset()
    start = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    result.wall = time.perf_counter() - start
    result.peak_rss = _vm("VmHWM")
    return result


def mixed_requests(good: dict[str, tuple[bytes, np.ndarray]],
                   hostile: dict[str, tuple[bytes, str]], count: int) -> list[Request]:
    """`count` requests alternating good ones (name -> data, expected probabilities) and
    hostile ones (name -> data, message), each sent after a good image in one batch."""
    goods = [Request(n, (d,), expected=e) for n, (d, e) in good.items()]
    first = next(iter(good.values()))[0]
    bads = [Request(n, (first, d), refusal=m) for n, (d, m) in hostile.items()]
    return [(goods if i % 2 == 0 else bads)[(i // 2) % len(goods if i % 2 == 0 else bads)]
            for i in range(count)]


def test_concurrent_mixed_load(server, model):
    good = {}
    for seed, (height, width) in enumerate([(48, 64), (97, 131), (64, 48)]):
        pixels = synthetic_image(height, width, seed=seed)
        data = _png(pixels)
        good[f"png_{height}x{width}"] = (data, reference(model, pixels))
        jpeg = _jpeg(pixels)
        good[f"jpeg_{height}x{width}"] = (
            jpeg, reference(model, tf.io.decode_jpeg(jpeg, channels=3).numpy()))
    hostile = {name: (build(), message) for name, (build, message) in HOSTILE.items()}
    requests = mixed_requests(good, hostile, 48)
    result = run_load(server, requests, threads=8)
    assert result.wrong == []
    assert (result.answered, result.refused) == (24, 24)
