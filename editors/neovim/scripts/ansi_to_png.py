"""Render `tmux capture-pane -e -p` output (text with SGR colour codes) to a PNG.

Only for docs/neovim-ghost-text.png (editors/neovim/scripts/screenshot.sh); needs Pillow,
which is not a dependency of the project. Every cell is taken as one column wide.
Usage: python ansi_to_png.py SCREEN.ansi OUT.png [--cursor ROW,COL]
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_FG = (220, 220, 220)
DEFAULT_BG = (20, 22, 27)
BASE16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
OTHER_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-ln-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def xterm256(n: int) -> tuple[int, int, int]:
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return steps[n // 36], steps[(n // 6) % 6], steps[n % 6]
    grey = 8 + (n - 232) * 10
    return grey, grey, grey


@dataclass(frozen=True)
class Style:
    fg: tuple[int, int, int] | None = None
    bg: tuple[int, int, int] | None = None
    bold: bool = False
    italic: bool = False
    underline: bool = False
    reverse: bool = False


def apply_sgr(style: Style, params: str) -> Style:
    codes = [int(c) if c else 0 for c in params.replace(":", ";").split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            style = Style()
        elif code == 1:
            style = replace(style, bold=True)
        elif code == 3:
            style = replace(style, italic=True)
        elif code in (4, 21):
            style = replace(style, underline=True)
        elif code == 7:
            style = replace(style, reverse=True)
        elif code == 22:
            style = replace(style, bold=False)
        elif code == 23:
            style = replace(style, italic=False)
        elif code == 24:
            style = replace(style, underline=False)
        elif code == 27:
            style = replace(style, reverse=False)
        elif 30 <= code <= 37:
            style = replace(style, fg=BASE16[code - 30])
        elif 90 <= code <= 97:
            style = replace(style, fg=BASE16[code - 90 + 8])
        elif 40 <= code <= 47:
            style = replace(style, bg=BASE16[code - 40])
        elif 100 <= code <= 107:
            style = replace(style, bg=BASE16[code - 100 + 8])
        elif code == 39:
            style = replace(style, fg=None)
        elif code == 49:
            style = replace(style, bg=None)
        elif code in (38, 48) and i + 1 < len(codes):
            if codes[i + 1] == 5 and i + 2 < len(codes):
                colour = xterm256(codes[i + 2])
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                colour = (codes[i + 2], codes[i + 3], codes[i + 4])
                i += 4
            else:
                colour = None
            style = replace(style, fg=colour) if code == 38 else replace(style, bg=colour)
        i += 1
    return style


def parse(screen: str) -> list[list[tuple[str, Style]]]:
    rows = []
    style = Style()
    for line in screen.split("\n"):
        line = OTHER_ESCAPE.sub("", line)
        cells: list[tuple[str, Style]] = []
        pos = 0
        for match in SGR.finditer(line):
            cells.extend((ch, style) for ch in line[pos:match.start()])
            style = apply_sgr(style, match.group(1))
            pos = match.end()
        cells.extend((ch, style) for ch in line[pos:])
        rows.append(cells)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def render(rows, out: Path, cursor: tuple[int, int] | None, font_size: int = 18) -> None:
    fonts = {
        (False, False): ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono.ttf"), font_size),
        (True, False): ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-Bold.ttf"), font_size),
        (False, True): ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-Oblique.ttf"), font_size),
        (True, True): ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono-BoldOblique.ttf"), font_size),
    }
    left, top, right, bottom = fonts[(False, False)].getbbox("M")
    cell_w = int(fonts[(False, False)].getlength("M") + 0.5)
    cell_h = int(font_size * 1.35)
    columns = max((len(r) for r in rows), default=80)
    pad = 12
    image = Image.new("RGB", (columns * cell_w + 2 * pad, len(rows) * cell_h + 2 * pad), DEFAULT_BG)
    draw = ImageDraw.Draw(image)
    for y, row in enumerate(rows):
        for x, (ch, style) in enumerate(row):
            fg, bg = style.fg or DEFAULT_FG, style.bg or DEFAULT_BG
            if style.reverse:
                fg, bg = bg, fg
            if cursor == (y, x):
                fg, bg = DEFAULT_BG, DEFAULT_FG
            px, py = pad + x * cell_w, pad + y * cell_h
            if bg != DEFAULT_BG:
                draw.rectangle([px, py, px + cell_w - 1, py + cell_h - 1], fill=bg)
            if ch.strip():
                draw.text((px, py + (cell_h - (bottom - top)) // 2 - top), ch, fill=fg,
                          font=fonts[(style.bold, style.italic)])
            if style.underline:
                draw.line([px, py + cell_h - 2, px + cell_w, py + cell_h - 2], fill=fg)
    image.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("screen", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cursor", help="ROW,COL (0-based) to draw as a block cursor")
    args = parser.parse_args()
    cursor = tuple(int(v) for v in args.cursor.split(",")) if args.cursor else None
    render(parse(args.screen.read_text(errors="replace")), args.out, cursor)


if __name__ == "__main__":
    main()
