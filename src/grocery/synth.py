"""Deterministic synthetic grocery photos in an ImageFolder layout.

Every image is drawn from its own numpy Generator seeded with (seed, split, class, index), so
the same seed always gives byte-identical PNG files (no timestamps, no metadata chunks).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from grocery import CLASSES

SPLITS = ("train", "val", "test")
DEFAULT_PER_CLASS = (200, 40, 60)
DEFAULT_SIZE = 64
_CANVAS = 128  # objects are drawn at this size, then scaled, rotated and downsampled

Colour = tuple[int, int, int]

# Hue centre (degrees), hue jitter, saturation range, value range of each class's body.
_PALETTE: dict[str, tuple[float, float, tuple[float, float], tuple[float, float]]] = {
    "apple": (356, 12, (0.65, 0.95), (0.55, 0.9)),
    "banana": (52, 6, (0.6, 0.95), (0.8, 1.0)),
    "carrot": (24, 6, (0.75, 1.0), (0.8, 1.0)),
    "eggplant": (282, 14, (0.45, 0.8), (0.25, 0.5)),
    "lemon": (54, 5, (0.6, 0.95), (0.85, 1.0)),
    "lime": (100, 14, (0.55, 0.9), (0.5, 0.85)),
    "orange": (30, 5, (0.8, 1.0), (0.85, 1.0)),
    "tomato": (4, 6, (0.75, 1.0), (0.7, 0.95)),
}


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb((h % 360) / 360.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def _body_colour(name: str, rng: np.random.Generator) -> Colour:
    hue, jitter, (s0, s1), (v0, v1) = _PALETTE[name]
    return _hsv(hue + rng.uniform(-jitter, jitter), rng.uniform(s0, s1), rng.uniform(v0, v1))


def _green(rng: np.random.Generator, dark: bool = False) -> Colour:
    v = rng.uniform(0.3, 0.5) if dark else rng.uniform(0.45, 0.75)
    return _hsv(rng.uniform(95, 130), rng.uniform(0.6, 0.9), v)


def _brown(rng: np.random.Generator) -> Colour:
    return _hsv(rng.uniform(20, 35), rng.uniform(0.5, 0.8), rng.uniform(0.2, 0.4))


def _shade(mask: Image.Image, colour: Colour, rng: np.random.Generator) -> Image.Image:
    """Fill a body mask with its colour, lit from a random upper point (fake 3-D)."""
    n = _CANVAS
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    lx, ly = rng.uniform(0.3, 0.5) * n, rng.uniform(0.25, 0.45) * n
    dist = np.hypot(xx - lx, yy - ly) / (0.6 * n)
    light = np.clip(1.25 - 0.55 * dist, 0.55, 1.25)[..., None]
    rgb = np.clip(np.array(colour, dtype=np.float32) * light, 0, 255).astype(np.uint8)
    alpha = np.asarray(mask, dtype=np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha[..., None]]), "RGBA")


def _ellipse_mask(box: tuple[float, float, float, float]) -> Image.Image:
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def _polygon_mask(points: list[tuple[float, float]]) -> Image.Image:
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(mask).polygon(points, fill=255)
    return mask


def _leaf(draw: ImageDraw.ImageDraw, x: float, y: float, angle: float, length: float, fill):
    """A pointed leaf from (x, y) in direction `angle` (radians)."""
    dx, dy = math.cos(angle), math.sin(angle)
    px, py = -dy, dx
    w = length * 0.3
    tip = (x + dx * length, y + dy * length)
    mid = (x + dx * length * 0.5, y + dy * length * 0.5)
    draw.polygon(
        [(x, y), (mid[0] + px * w, mid[1] + py * w), tip, (mid[0] - px * w, mid[1] - py * w)],
        fill=fill,
    )


def _apple(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    r = rng.uniform(38, 46)
    lobe = r * 0.62
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    d = ImageDraw.Draw(mask)
    d.ellipse((c - r, c - r * 0.8, c + r, c + r), fill=255)
    for side in (-1, 1):  # two upper lobes give the heart-like apple outline
        x = c + side * r * 0.42
        d.ellipse((x - lobe, c - r * 0.95, x + lobe, c - r * 0.95 + 2 * lobe), fill=255)
    d.ellipse((c - 5, c - r * 0.98, c + 5, c - r * 0.72), fill=0)  # stem dimple
    layer = _shade(mask, _body_colour("apple", rng), rng)
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.7:  # yellow-ish blush patch
        blush = (*_hsv(rng.uniform(30, 50), 0.7, 0.9), int(rng.uniform(60, 110)))
        bx, by = c + rng.uniform(-r * 0.5, r * 0.3), c + rng.uniform(0, r * 0.4)
        overlay = Image.new("RGBA", layer.size, (0, 0, 0, 0))
        ImageDraw.Draw(overlay).ellipse((bx - 14, by - 10, bx + 14, by + 10), fill=blush)
        overlay = overlay.filter(ImageFilter.GaussianBlur(4))
        overlay.putalpha(Image.fromarray(np.minimum(np.asarray(overlay)[..., 3], np.asarray(mask))))
        layer = Image.alpha_composite(layer, overlay)
        draw = ImageDraw.Draw(layer)
    top = c - r * 0.85
    draw.line(
        [(c, top + 4), (c + rng.uniform(-4, 4), top - rng.uniform(12, 18))],
        fill=_brown(rng),
        width=4,
    )
    if rng.random() < 0.75:
        _leaf(draw, c + 1, top - 8, rng.uniform(-0.9, -0.2), rng.uniform(16, 24), _green(rng))
    return layer


def _banana(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    radius = rng.uniform(48, 60)
    thick = rng.uniform(13, 18)
    span = rng.uniform(0.55, 0.75) * math.pi
    centre_y = c - radius * 0.55
    outer, inner = [], []
    steps = 24
    for i in range(steps + 1):
        t = math.pi / 2 - span / 2 + span * i / steps
        taper = 0.35 + 0.65 * math.sin(math.pi * i / steps)
        outer.append((c + radius * math.cos(t), centre_y + radius * math.sin(t)))
        r_in = radius - thick * taper
        inner.append((c + r_in * math.cos(t), centre_y + r_in * math.sin(t)))
    layer = _shade(_polygon_mask(outer + inner[::-1]), _body_colour("banana", rng), rng)
    draw = ImageDraw.Draw(layer)
    brown = _brown(rng)
    for end in (0, steps):  # dark stalk and tip
        x, y = outer[end]
        xi, yi = inner[end]
        draw.ellipse(
            ((x + xi) / 2 - 4, (y + yi) / 2 - 4, (x + xi) / 2 + 4, (y + yi) / 2 + 4), fill=brown
        )
    if rng.random() < 0.5:  # a few ripening spots
        for _ in range(int(rng.integers(3, 9))):
            k = int(rng.integers(3, steps - 3))
            x = (outer[k][0] + inner[k][0]) / 2
            y = (outer[k][1] + inner[k][1]) / 2
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=brown)
    return layer


def _carrot(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    half_w = rng.uniform(11, 16)
    top, bottom = c - rng.uniform(34, 40), c + rng.uniform(46, 56)
    bend = rng.uniform(-6, 6)
    points = [
        (c - half_w, top),
        (c + half_w, top),
        (c + half_w * 0.6 + bend * 0.5, (top + bottom) / 2),
        (c + 2 + bend, bottom),
        (c - 2 + bend, bottom),
        (c - half_w * 0.6 + bend * 0.5, (top + bottom) / 2),
    ]
    colour = _body_colour("carrot", rng)
    layer = _shade(_polygon_mask(points), colour, rng)
    draw = ImageDraw.Draw(layer)
    ridge = tuple(int(v * 0.75) for v in colour)
    for _ in range(int(rng.integers(3, 7))):  # horizontal root rings
        y = rng.uniform(top + 8, bottom - 12)
        frac = (y - top) / (bottom - top)
        w = half_w * (1 - frac * 0.85) * rng.uniform(0.4, 0.8)
        x0 = c + bend * frac + rng.uniform(-3, 3)
        draw.line([(x0 - w, y), (x0 + w, y)], fill=ridge, width=2)
    green = _green(rng)
    for _ in range(int(rng.integers(3, 6))):  # leafy top
        angle = -math.pi / 2 + rng.uniform(-0.7, 0.7)
        length = rng.uniform(14, 26)
        draw.line(
            [(c, top + 2), (c + math.cos(angle) * length, top + math.sin(angle) * length)],
            fill=green,
            width=int(rng.integers(2, 4)),
        )
    return layer


def _eggplant(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    r_big = rng.uniform(24, 30)
    r_small = r_big * rng.uniform(0.55, 0.7)
    top, bottom = c - 44, c + 50
    mask = Image.new("L", (_CANVAS, _CANVAS), 0)
    d = ImageDraw.Draw(mask)
    yb = bottom - r_big
    ys = top + 14 + r_small
    d.ellipse((c - r_big, yb - r_big, c + r_big, yb + r_big), fill=255)
    d.ellipse((c - r_small, ys - r_small, c + r_small, ys + r_small), fill=255)
    d.polygon([(c - r_small, ys), (c + r_small, ys), (c + r_big, yb), (c - r_big, yb)], fill=255)
    layer = _shade(mask, _body_colour("eggplant", rng), rng)
    draw = ImageDraw.Draw(layer)
    green = _green(rng, dark=True)
    cap_y = ys - r_small * 0.6
    for k in range(5):  # star-shaped calyx hugging the top
        angle = math.pi / 2 + (k - 2) * 0.55
        _leaf(draw, c, cap_y, angle, r_small * 1.1, green)
    draw.rectangle((c - 3, top, c + 3, cap_y + 2), fill=green)
    return layer


def _lemon(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    a = rng.uniform(36, 42)  # half length
    b = a * rng.uniform(0.62, 0.75)  # half height
    points = []
    for i in range(48):
        t = 2 * math.pi * i / 48
        pinch = 1 + 0.22 * abs(math.cos(t)) ** 8  # pointy ends
        points.append((c + a * math.cos(t) * pinch, c + b * math.sin(t)))
    colour = _body_colour("lemon", rng)
    layer = _shade(_polygon_mask(points), colour, rng)
    draw = ImageDraw.Draw(layer)
    dark = tuple(int(v * 0.8) for v in colour)
    for _ in range(40):  # pitted peel
        x, y = rng.uniform(c - a * 0.8, c + a * 0.8), rng.uniform(c - b * 0.7, c + b * 0.7)
        draw.point((x, y), fill=dark)
    if rng.random() < 0.6:
        tip = c + a * 1.22
        draw.ellipse((tip - 3, c - 2, tip + 1, c + 2), fill=_green(rng, dark=True))
    return layer


def _round_citrus(name: str, rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    rx = rng.uniform(32, 40) if name == "lime" else rng.uniform(38, 46)
    ry = rx * rng.uniform(0.88, 1.0)
    colour = _body_colour(name, rng)
    layer = _shade(_ellipse_mask((c - rx, c - ry, c + rx, c + ry)), colour, rng)
    draw = ImageDraw.Draw(layer)
    dark = tuple(int(v * 0.82) for v in colour)
    for _ in range(70):  # dimpled peel
        ang, rad = rng.uniform(0, 2 * math.pi), math.sqrt(rng.uniform(0, 0.8))
        x, y = c + rx * rad * math.cos(ang), c + ry * rad * math.sin(ang)
        draw.ellipse((x - 0.8, y - 0.8, x + 0.8, y + 0.8), fill=dark)
    if rng.random() < 0.7:  # navel / stem scar
        x, y = c + rng.uniform(-8, 8), c - ry * rng.uniform(0.55, 0.8)
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_brown(rng) if name == "orange" else dark)
    return layer


def _tomato(rng: np.random.Generator) -> Image.Image:
    c = _CANVAS / 2
    rx = rng.uniform(38, 46)
    ry = rx * rng.uniform(0.72, 0.85)  # flattened
    mask = _ellipse_mask((c - rx, c - ry, c + rx, c + ry))
    layer = _shade(mask, _body_colour("tomato", rng), rng)
    draw = ImageDraw.Draw(layer)
    # glossy highlight
    hx, hy = c - rx * 0.4, c - ry * 0.4
    draw.ellipse((hx - 6, hy - 3, hx + 6, hy + 3), fill=(255, 220, 210, 160))
    green = _green(rng)
    cy = c - ry * 0.75
    n_sepals = int(rng.integers(5, 7))
    offset = rng.uniform(0, 2 * math.pi)
    for k in range(n_sepals):  # green star calyx seen from above
        angle = offset + 2 * math.pi * k / n_sepals
        _leaf(draw, c, cy, angle, rng.uniform(12, 17), green)
    draw.ellipse((c - 3, cy - 3, c + 3, cy + 3), fill=green)
    return layer


_DRAWERS: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "apple": _apple,
    "banana": _banana,
    "carrot": _carrot,
    "eggplant": _eggplant,
    "lemon": _lemon,
    "lime": lambda rng: _round_citrus("lime", rng),
    "orange": lambda rng: _round_citrus("orange", rng),
    "tomato": _tomato,
}


def _background(rng: np.random.Generator, n: int) -> Image.Image:
    """Solid, gradient or cluttered background in muted colours."""

    def muted() -> Colour:
        return _hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.35), rng.uniform(0.35, 0.95))

    kind = rng.integers(0, 3)
    if kind == 0:
        image = Image.new("RGB", (n, n), muted())
    else:
        a, b = np.array(muted(), np.float32), np.array(muted(), np.float32)
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)
        ramp = np.broadcast_to(t[:, None] if rng.random() < 0.5 else t[None, :], (n, n))
        pixels = a + (b - a) * ramp[..., None]
        image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    if kind == 2:  # clutter: a table edge, shapes and lines
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 8))):
            x0, y0 = rng.uniform(-n * 0.2, n), rng.uniform(-n * 0.2, n)
            w, h = rng.uniform(n * 0.1, n * 0.5), rng.uniform(n * 0.1, n * 0.5)
            box = (x0, y0, x0 + w, y0 + h)
            if rng.random() < 0.5:
                draw.rectangle(box, fill=muted())
            else:
                draw.ellipse(box, fill=muted())
        for _ in range(int(rng.integers(0, 4))):
            pts = [(rng.uniform(0, n), rng.uniform(0, n)) for _ in range(2)]
            draw.line(pts, fill=muted(), width=int(rng.integers(1, 4)))
    return image


def render(name: str, rng: np.random.Generator, size: int = DEFAULT_SIZE) -> Image.Image:
    """Draw one `name` image (an RGB `size` x `size` picture) from `rng`."""
    if name not in _DRAWERS:
        raise ValueError(f"unknown class {name!r}; known: {', '.join(CLASSES)}")
    work = size * 2  # supersample, then downsample for smooth edges
    image = _background(rng, work)
    layer = _DRAWERS[name](rng)
    if rng.random() < 0.5:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    layer = layer.rotate(rng.uniform(0, 360), resample=Image.Resampling.BICUBIC)
    scale = rng.uniform(0.55, 0.95)
    side = max(8, round(work * scale))
    layer = layer.resize((side, side), Image.Resampling.BILINEAR)
    slack = work - side
    x = round(slack / 2 + rng.uniform(-0.5, 0.5) * (slack + side * 0.2))
    y = round(slack / 2 + rng.uniform(-0.5, 0.5) * (slack + side * 0.2))
    # soft shadow under the object
    shadow = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    shadow.putalpha(layer.getchannel("A").point(lambda a: a * 0.35))
    shadow = shadow.filter(ImageFilter.GaussianBlur(3))
    image.paste(shadow, (x + 4, y + 4), shadow)
    image.paste(layer, (x, y), layer)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32)
    pixels *= rng.uniform(0.8, 1.15)  # exposure
    pixels += rng.normal(0.0, rng.uniform(2.0, 9.0), pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")


def generate(
    root: str | Path,
    *,
    per_class: tuple[int, int, int] = DEFAULT_PER_CLASS,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Write `<root>/{train,val,test}/<class>/<class>_<index>.png`; return a summary."""
    if len(per_class) != len(SPLITS) or any(int(n) < 0 for n in per_class):
        raise ValueError("per_class must be three non-negative counts (train, val, test)")
    if size < 8:
        raise ValueError("size must be at least 8 pixels")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    root = Path(root)
    counts: dict[str, int] = {}
    for split_index, (split, count) in enumerate(zip(SPLITS, per_class, strict=True)):
        for class_index, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            written = set()
            for index in range(int(count)):
                rng = np.random.default_rng([seed, split_index, class_index, index])
                image = render(name, rng, size)
                path = folder / f"{name}_{index:04d}.png"
                # Plain PNG: no text/time chunks, so the bytes depend on pixels only.
                image.save(path, format="PNG")
                written.add(path.name)
            for stale in folder.glob(f"{name}_*.png"):  # left by an earlier, larger run
                if stale.name not in written:
                    stale.unlink()
        counts[split] = int(count) * len(CLASSES)
        if progress is not None:
            progress(f"data: wrote {counts[split]} {split} images")
    return {
        "classes": list(CLASSES),
        "size": size,
        "seed": seed,
        "per_class": dict(zip(SPLITS, (int(n) for n in per_class), strict=True)),
        "counts": counts,
    }
