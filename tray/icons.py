"""The tray icon, drawn with Pillow: one look per state, crisp from 16 to 48 px.

A token-shaped badge with a glyph. Each state differs by colour *and* glyph, so it
reads without colour too; a dark outline and a light inner edge keep it visible on
light and dark panels. Drawn at 8x and reduced with a Lanczos filter.
"""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import Image, ImageDraw

from tokenstation.tray.model import TrayState

COLOURS: dict[TrayState, tuple[int, int, int]] = {
    TrayState.IDLE: (96, 110, 128),
    TrayState.OK: (30, 140, 70),
    TrayState.DRIFT: (222, 140, 0),
    TrayState.BURNING: (35, 105, 210),
    TrayState.ERROR: (200, 40, 40),
    TrayState.PAUSED: (120, 120, 120),
    TrayState.NO_DAEMON: (150, 150, 150),
}
OUTLINE = (20, 20, 20, 255)
WHITE = (255, 255, 255, 255)
SIZES = (16, 22, 24, 32, 48, 64, 128, 256)


def _glyph(d: ImageDraw.ImageDraw, state: TrayState, s: int) -> None:
    c = s / 2
    w = max(2, s // 11)
    if state == TrayState.OK:
        d.line(
            [(s * 0.28, c), (s * 0.44, s * 0.66), (s * 0.72, s * 0.34)],
            fill=WHITE,
            width=w,
            joint="curve",
        )
    elif state == TrayState.DRIFT:  # a clock: hands at ten past two
        r = s * 0.24
        d.ellipse([c - r, c - r, c + r, c + r], outline=WHITE, width=max(2, w * 2 // 3))
        d.line([(c, c), (c, c - r * 0.8)], fill=WHITE, width=w)
        d.line([(c, c), (c + r * 0.65, c + r * 0.2)], fill=WHITE, width=w)
    elif state == TrayState.BURNING:  # an arrow into the token
        d.line([(c, s * 0.26), (c, s * 0.64)], fill=WHITE, width=w)
        d.polygon([(c - s * 0.16, s * 0.52), (c + s * 0.16, s * 0.52), (c, s * 0.74)], fill=WHITE)
    elif state == TrayState.ERROR:
        d.line([(s * 0.32, s * 0.32), (s * 0.68, s * 0.68)], fill=WHITE, width=w)
        d.line([(s * 0.68, s * 0.32), (s * 0.32, s * 0.68)], fill=WHITE, width=w)
    elif state == TrayState.PAUSED:
        for x in (0.38, 0.62):
            d.line([(s * x, s * 0.3), (s * x, s * 0.7)], fill=WHITE, width=w + 1)
    elif state == TrayState.NO_DAEMON:
        d.line([(s * 0.28, s * 0.72), (s * 0.72, s * 0.28)], fill=WHITE, width=w)
    else:  # idle: the token's display, three dashes
        for x in (0.32, 0.5, 0.68):
            d.line([(s * (x - 0.06), c), (s * (x + 0.06), c)], fill=WHITE, width=w)


@functools.lru_cache(maxsize=32)
def draw(state: TrayState, size: int = 32) -> Image.Image:
    """The icon for ``state`` at ``size`` px (RGBA). Cached: treat it as read-only."""
    big = size * 8
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pad = big * 0.06
    radius = big * 0.22
    fill = COLOURS[state] + ((170,) if state == TrayState.NO_DAEMON else (255,))
    d.rounded_rectangle(
        [pad, pad, big - pad, big - pad], radius, fill=fill, outline=OUTLINE, width=int(big * 0.05)
    )
    inner = pad + big * 0.05
    d.rounded_rectangle(
        [inner, inner, big - inner, big - inner],
        radius * 0.8,
        outline=(255, 255, 255, 90),
        width=max(1, int(big * 0.02)),
    )
    _glyph(d, state, big)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def write_icons(folder: Path, size: int = 64) -> dict[TrayState, Path]:
    """PNG files of every state (for notification app icons); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for state in TrayState:
        path = folder / f"tokenstation-{state.name.lower().replace('_', '-')}.png"
        draw(state, size).save(path)
        paths[state] = path
    return paths
