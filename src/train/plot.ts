/**
 * Loss-curve plots (train loss and eval loss vs step, learning rate optional on a right axis) as
 * SVG and PNG, without a plotting or canvas dependency.
 *
 * Both outputs come from one scene of lines, rectangles and text laid out in pixel coordinates:
 * the SVG serializes it, the PNG rasterizes it with anti-aliased strokes and a built-in 5x7
 * bitmap font, then encodes with pngjs.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';

/** One x position of the plot; any of the values may be missing (train and eval log separately). */
export interface LossPoint {
  step: number;
  loss?: number;
  eval_loss?: number;
  lr?: number;
}

export interface LossPlotOptions {
  svgPath?: string;
  pngPath?: string;
  title?: string;
  /** Draw the learning rate on a right-hand axis (default: when points carry lr values). */
  showLr?: boolean;
  width?: number;
  height?: number;
}

// ---------------------------------------------------------------------------------------------
// Scene

type Color = string; // '#rrggbb'
type Anchor = 'start' | 'middle' | 'end';
type XY = [number, number];

type SceneItem =
  | { kind: 'line'; points: XY[]; color: Color; width: number }
  | { kind: 'rect'; x: number; y: number; w: number; h: number; fill?: Color; stroke?: Color }
  | { kind: 'circle'; x: number; y: number; r: number; fill: Color }
  /** `scale` is the PNG font's pixel scale; glyphs are 7·scale px tall. `vertical` reads bottom-to-top. */
  | {
      kind: 'text';
      x: number;
      y: number;
      text: string;
      scale: number;
      color: Color;
      anchor: Anchor;
      vertical?: boolean;
    };

interface Scene {
  width: number;
  height: number;
  items: SceneItem[];
}

const COLORS = {
  train: '#1f77b4',
  eval: '#ff7f0e',
  lr: '#2ca02c',
  axis: '#333333',
  grid: '#e6e6e6',
  text: '#222222',
};
const GLYPH_W = 5;
const GLYPH_H = 7;
const ADVANCE = GLYPH_W + 1;

/** Width in pixels of `text` drawn with the bitmap font at `scale` (the SVG uses a matching size). */
function textWidth(text: string, scale: number): number {
  return text.length * ADVANCE * scale - scale;
}

/** Axis ticks at 1, 2 or 5 times a power of ten, covering [lo, hi]. */
export function niceTicks(
  lo: number,
  hi: number,
  target = 6,
): { lo: number; hi: number; step: number; ticks: number[] } {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  // The tolerance keeps float noise (5e-4 / 5 = 1.0000000000000001e-4) from doubling the step.
  const rough = (hi - lo) / target;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step =
    [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough * (1 - 1e-9)) ?? 10 * power;
  const first = Math.floor(lo / step + 1e-9) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i++)
    ticks.push(roundTo(first + i * step, step));
  return { lo: first, hi: last, step, ticks };
}

function roundTo(value: number, step: number): number {
  // Removes float noise such as 0.30000000000000004 from tick values.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(value.toFixed(Math.min(20, decimals)));
}

/** Labels for one axis's ticks, all with the same number of digits (e.g. 0, 5.0e-5, 1.0e-4). */
function tickLabels(ticks: readonly number[], step: number): string[] {
  const largest = Math.max(...ticks.map(Math.abs));
  const stepExponent = Math.floor(Math.log10(step) + 1e-9);
  if (largest < 1e-3 || largest >= 1e6) {
    const digits = Math.max(0, Math.floor(Math.log10(largest)) - stepExponent);
    return ticks.map((t) => (t === 0 ? '0' : t.toExponential(digits).replace('e+', 'e')));
  }
  return ticks.map((t) => t.toFixed(Math.max(0, -stepExponent)));
}

/**
 * Keeps, per pixel column, the first, lowest, highest and last point (in order): the drawn line
 * looks the same, while a 100k-step log no longer costs 100k segments in the SVG and rasterizer.
 */
function thinToPixels(points: XY[]): XY[] {
  if (points.length < 4) return points;
  const out: XY[] = [];
  let start = 0;
  while (start < points.length) {
    const column = Math.floor(points[start]![0]);
    let end = start;
    let [low, high] = [start, start];
    while (end + 1 < points.length && Math.floor(points[end + 1]![0]) === column) {
      end++;
      if (points[end]![1] < points[low]![1]) low = end;
      if (points[end]![1] > points[high]![1]) high = end;
    }
    for (const i of [...new Set([start, low, high, end])].sort((a, b) => a - b))
      out.push(points[i]!);
    start = end + 1;
  }
  return out;
}

/** Min and max without spreading into Math.min (long logs would overflow the argument list). */
function extent(values: readonly number[], empty: [number, number]): { min: number; max: number } {
  if (!values.length) return { min: empty[0], max: empty[1] };
  let [min, max] = [Infinity, -Infinity];
  for (const v of values) [min, max] = [Math.min(min, v), Math.max(max, v)];
  return { min, max };
}

function series(points: readonly LossPoint[], key: 'loss' | 'eval_loss' | 'lr'): XY[] {
  return points
    .filter((p) => Number.isFinite(p.step) && typeof p[key] === 'number' && Number.isFinite(p[key]))
    .map((p) => [p.step, p[key] as number] as XY)
    .sort((a, b) => a[0] - b[0]);
}

function buildScene(points: readonly LossPoint[], options: LossPlotOptions): Scene {
  const width = options.width ?? 960;
  const height = options.height ?? 540;
  const train = series(points, 'loss');
  const evals = series(points, 'eval_loss');
  const lr = series(points, 'lr');
  const showLr = (options.showLr ?? true) && lr.length > 0;

  const margin = { left: 90, right: showLr ? 120 : 30, top: options.title ? 50 : 20, bottom: 70 };
  const plot = {
    x: margin.left,
    y: margin.top,
    w: width - margin.left - margin.right,
    h: height - margin.top - margin.bottom,
  };
  const items: SceneItem[] = [{ kind: 'rect', x: 0, y: 0, w: width, h: height, fill: '#ffffff' }];

  const steps = extent(
    [...train, ...evals, ...lr].map((p) => p[0]),
    [0, 1],
  );
  const xAxis = niceTicks(Math.min(0, steps.min), steps.max);
  // 3 % headroom so curves and markers do not sit on the frame when they hit a tick exactly.
  const losses = extent(
    [...train, ...evals].map((p) => p[1]),
    [0, 1],
  );
  const headroom = (losses.max - losses.min) * 0.03;
  const yAxis = niceTicks(losses.min - headroom, losses.max + headroom);
  // A zero learning rate throughout still gets a 0..1 axis rather than a degenerate one.
  const lrAxis = niceTicks(
    0,
    extent(
      lr.map((p) => p[1]),
      [0, 1],
    ).max * 1.03 || 1,
    5,
  );
  const px = (step: number) => plot.x + ((step - xAxis.lo) / (xAxis.hi - xAxis.lo)) * plot.w;
  const py = (v: number, axis: { lo: number; hi: number }) =>
    plot.y + plot.h - ((v - axis.lo) / (axis.hi - axis.lo)) * plot.h;

  const xLabels = tickLabels(xAxis.ticks, xAxis.step);
  xAxis.ticks.forEach((t, i) => {
    const x = px(t);
    items.push({
      kind: 'line',
      points: [
        [x, plot.y],
        [x, plot.y + plot.h],
      ],
      color: COLORS.grid,
      width: 1,
    });
    items.push({
      kind: 'line',
      points: [
        [x, plot.y + plot.h],
        [x, plot.y + plot.h + 6],
      ],
      color: COLORS.axis,
      width: 1,
    });
    items.push({
      kind: 'text',
      x,
      y: plot.y + plot.h + 12,
      text: xLabels[i]!,
      scale: 2,
      color: COLORS.text,
      anchor: 'middle',
    });
  });
  const yLabels = tickLabels(yAxis.ticks, yAxis.step);
  yAxis.ticks.forEach((t, i) => {
    const y = py(t, yAxis);
    items.push({
      kind: 'line',
      points: [
        [plot.x, y],
        [plot.x + plot.w, y],
      ],
      color: COLORS.grid,
      width: 1,
    });
    items.push({
      kind: 'line',
      points: [
        [plot.x - 6, y],
        [plot.x, y],
      ],
      color: COLORS.axis,
      width: 1,
    });
    items.push({
      kind: 'text',
      x: plot.x - 10,
      y: y - 7,
      text: yLabels[i]!,
      scale: 2,
      color: COLORS.text,
      anchor: 'end',
    });
  });
  if (showLr) {
    const lrLabels = tickLabels(lrAxis.ticks, lrAxis.step);
    lrAxis.ticks.forEach((t, i) => {
      const y = py(t, lrAxis);
      items.push({
        kind: 'line',
        points: [
          [plot.x + plot.w, y],
          [plot.x + plot.w + 6, y],
        ],
        color: COLORS.lr,
        width: 1,
      });
      items.push({
        kind: 'text',
        x: plot.x + plot.w + 10,
        y: y - 7,
        text: lrLabels[i]!,
        scale: 2,
        color: COLORS.lr,
        anchor: 'start',
      });
    });
    items.push({
      kind: 'line',
      points: thinToPixels(lr.map(([s, v]) => [px(s), py(v, lrAxis)] as XY)),
      color: COLORS.lr,
      width: 1.5,
    });
  }
  items.push({ kind: 'rect', x: plot.x, y: plot.y, w: plot.w, h: plot.h, stroke: COLORS.axis });
  if (train.length)
    items.push({
      kind: 'line',
      points: thinToPixels(train.map(([s, v]) => [px(s), py(v, yAxis)] as XY)),
      color: COLORS.train,
      width: 2,
    });
  if (evals.length) {
    items.push({
      kind: 'line',
      points: evals.map(([s, v]) => [px(s), py(v, yAxis)] as XY),
      color: COLORS.eval,
      width: 2,
    });
    for (const [s, v] of evals)
      items.push({ kind: 'circle', x: px(s), y: py(v, yAxis), r: 4, fill: COLORS.eval });
  }

  items.push({
    kind: 'text',
    x: plot.x + plot.w / 2,
    y: height - 28,
    text: 'step',
    scale: 2,
    color: COLORS.text,
    anchor: 'middle',
  });
  items.push({
    kind: 'text',
    x: 22,
    y: plot.y + plot.h / 2,
    text: 'loss',
    scale: 2,
    color: COLORS.text,
    anchor: 'middle',
    vertical: true,
  });
  if (showLr) {
    items.push({
      kind: 'text',
      x: width - 26,
      y: plot.y + plot.h / 2,
      text: 'learning rate',
      scale: 2,
      color: COLORS.lr,
      anchor: 'middle',
      vertical: true,
    });
  }
  if (options.title) {
    items.push({
      kind: 'text',
      x: width / 2,
      y: 14,
      text: options.title,
      scale: 3,
      color: COLORS.text,
      anchor: 'middle',
    });
  }
  if (!train.length && !evals.length) {
    items.push({
      kind: 'text',
      x: plot.x + plot.w / 2,
      y: plot.y + plot.h / 2 - 7,
      text: 'no data yet',
      scale: 2,
      color: COLORS.text,
      anchor: 'middle',
    });
  }
  items.push(
    ...legend(plot, [
      ...(train.length ? [{ label: 'train loss', color: COLORS.train }] : []),
      ...(evals.length ? [{ label: 'eval loss', color: COLORS.eval }] : []),
      ...(showLr ? [{ label: 'learning rate', color: COLORS.lr }] : []),
    ]),
  );
  return { width, height, items };
}

function legend(
  plot: { x: number; y: number; w: number },
  entries: { label: string; color: Color }[],
): SceneItem[] {
  if (!entries.length) return [];
  const rowH = 24;
  const boxW = 44 + Math.max(...entries.map((e) => textWidth(e.label, 2)));
  const box = {
    x: plot.x + plot.w - boxW - 10,
    y: plot.y + 10,
    w: boxW,
    h: entries.length * rowH + 8,
  };
  const items: SceneItem[] = [{ kind: 'rect', ...box, fill: '#ffffff', stroke: '#bbbbbb' }];
  entries.forEach((e, i) => {
    const cy = box.y + 4 + i * rowH + rowH / 2;
    items.push({
      kind: 'line',
      points: [
        [box.x + 8, cy],
        [box.x + 32, cy],
      ],
      color: e.color,
      width: 2,
    });
    items.push({
      kind: 'text',
      x: box.x + 38,
      y: cy - 7,
      text: e.label,
      scale: 2,
      color: COLORS.text,
      anchor: 'start',
    });
  });
  return items;
}

// ---------------------------------------------------------------------------------------------
// SVG

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function svgNumber(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export function renderLossSvg(points: readonly LossPoint[], options: LossPlotOptions = {}): string {
  const scene = buildScene(points, options);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${scene.width}" height="${scene.height}" viewBox="0 0 ${scene.width} ${scene.height}" font-family="sans-serif">`,
  ];
  if (options.title) out.push(`<title>${escapeXml(options.title)}</title>`);
  for (const item of scene.items) {
    switch (item.kind) {
      case 'line':
        if (item.points.length < 2) break;
        out.push(
          `<polyline fill="none" stroke="${item.color}" stroke-width="${item.width}" stroke-linejoin="round" points="${item.points.map(([x, y]) => `${svgNumber(x)},${svgNumber(y)}`).join(' ')}"/>`,
        );
        break;
      case 'rect':
        out.push(
          `<rect x="${svgNumber(item.x)}" y="${svgNumber(item.y)}" width="${svgNumber(item.w)}" height="${svgNumber(item.h)}" fill="${item.fill ?? 'none'}"${item.stroke ? ` stroke="${item.stroke}"` : ''}/>`,
        );
        break;
      case 'circle':
        out.push(
          `<circle cx="${svgNumber(item.x)}" cy="${svgNumber(item.y)}" r="${item.r}" fill="${item.fill}"/>`,
        );
        break;
      case 'text': {
        // Scene y is the glyph box top; SVG places text by baseline, about 0.85 em lower.
        const size = GLYPH_H * item.scale * 1.25;
        const anchorAttr = `text-anchor="${item.anchor}" font-size="${svgNumber(size)}" fill="${item.color}"`;
        if (item.vertical) {
          out.push(
            `<text transform="translate(${svgNumber(item.x + size * 0.85)},${svgNumber(item.y)}) rotate(-90)" ${anchorAttr}>${escapeXml(item.text)}</text>`,
          );
        } else {
          out.push(
            `<text x="${svgNumber(item.x)}" y="${svgNumber(item.y + GLYPH_H * item.scale)}" ${anchorAttr}>${escapeXml(item.text)}</text>`,
          );
        }
        break;
      }
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// PNG

/** 5x7 glyphs, rows top to bottom; g j p q y add two descender rows below the baseline. */
const FONT: Record<string, string> = {
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '###.. #..#. #...# #...# #...# #..#. ###..',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  a: '..... ..... .###. ....# .#### #...# .####',
  b: '#.... #.... #.##. ##..# #...# #...# ####.',
  c: '..... ..... .###. #.... #.... #...# .###.',
  d: '....# ....# .##.# #..## #...# #...# .####',
  e: '..... ..... .###. #...# ##### #.... .###.',
  f: '..##. .#..# .#... ###.. .#... .#... .#...',
  g: '..... ..... .#### #...# #...# #...# .#### ....# .###.',
  h: '#.... #.... #.##. ##..# #...# #...# #...#',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  j: '...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#.',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  m: '..... ..... ##.#. #.#.# #.#.# #...# #...#',
  n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.',
  p: '..... ..... ####. #...# #...# #...# ####. #.... #....',
  q: '..... ..... .#### #...# #...# #...# .#### ....# ....#',
  r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .###. #.... .###. ....# ####.',
  t: '.#... .#... ###.. .#... .#... .#..# ..##.',
  u: '..... ..... #...# #...# #...# #..## .##.#',
  v: '..... ..... #...# #...# #...# .#.#. ..#..',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#.',
  x: '..... ..... #...# .#.#. ..#.. .#.#. #...#',
  y: '..... ..... #...# #...# #...# #...# .#### ....# .###.',
  z: '..... ..... ##### ...#. ..#.. .#... #####',
  ' ': '..... ..... ..... ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
  _: '..... ..... ..... ..... ..... ..... #####',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '"': '.#.#. .#.#. ..... ..... ..... ..... .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
};

function glyphRows(ch: string): string[] {
  return (FONT[ch] ?? FONT['?']!).split(' ');
}

class Raster {
  readonly rgba: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4);
  }

  private readonly rgbCache = new Map<Color, [number, number, number]>();

  /** Blends `color` over pixel (x, y) with opacity `alpha` in [0, 1]. */
  blend(x: number, y: number, color: Color, alpha: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || alpha <= 0) return;
    const rgb = this.rgb(color);
    const i = (y * this.width + x) * 4;
    const a = Math.min(1, alpha);
    for (let c = 0; c < 3; c++)
      this.rgba[i + c] = Math.round(rgb[c]! * a + this.rgba[i + c]! * (1 - a));
    this.rgba[i + 3] = 255;
  }

  private rgb(color: Color): [number, number, number] {
    let rgb = this.rgbCache.get(color);
    if (!rgb) {
      rgb = [0, 1, 2].map((c) => parseInt(color.slice(1 + 2 * c, 3 + 2 * c), 16)) as [
        number,
        number,
        number,
      ];
      this.rgbCache.set(color, rgb);
    }
    return rgb;
  }

  fillRect(x: number, y: number, w: number, h: number, color: Color): void {
    for (let yy = Math.round(y); yy < Math.round(y + h); yy++) {
      for (let xx = Math.round(x); xx < Math.round(x + w); xx++) this.blend(xx, yy, color, 1);
    }
  }

  /**
   * Anti-aliased polyline: per-pixel coverage from the distance to the nearest segment, kept as
   * a maximum per pixel so joints between segments are not painted twice (no dark dots).
   */
  polyline(points: XY[], color: Color, width: number): void {
    const coverage = new Map<number, number>();
    const half = width / 2;
    // A single point is drawn as a zero-length segment (a dot).
    const segments =
      points.length === 1
        ? [[points[0]!, points[0]!]]
        : points.slice(1).map((b, i) => [points[i]!, b]);
    for (const [[ax, ay], [bx, by]] of segments as [XY, XY][]) {
      const x0 = Math.floor(Math.min(ax, bx) - half - 1);
      const x1 = Math.ceil(Math.max(ax, bx) + half + 1);
      const y0 = Math.floor(Math.min(ay, by) - half - 1);
      const y1 = Math.ceil(Math.max(ay, by) + half + 1);
      for (let y = Math.max(0, y0); y <= Math.min(this.height - 1, y1); y++) {
        for (let x = Math.max(0, x0); x <= Math.min(this.width - 1, x1); x++) {
          const cover = Math.min(
            1,
            Math.max(0, half + 0.5 - distanceToSegment(x + 0.5, y + 0.5, ax, ay, bx, by)),
          );
          const key = y * this.width + x;
          if (cover > (coverage.get(key) ?? 0)) coverage.set(key, cover);
        }
      }
    }
    for (const [key, cover] of coverage)
      this.blend(key % this.width, Math.floor(key / this.width), color, cover);
  }

  circle(cx: number, cy: number, r: number, color: Color): void {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++) {
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        this.blend(x, y, color, r + 0.5 - Math.hypot(x + 0.5 - cx, y + 0.5 - cy));
      }
    }
  }

  text(item: Extract<SceneItem, { kind: 'text' }>): void {
    const { text, scale, color, anchor, vertical } = item;
    const w = textWidth(text, scale);
    const shift = anchor === 'start' ? 0 : anchor === 'middle' ? w / 2 : w;
    // Along = reading direction, across = glyph rows; vertical text reads upwards.
    const origin = vertical
      ? { x: Math.round(item.x), y: Math.round(item.y + shift) }
      : { x: Math.round(item.x - shift), y: Math.round(item.y) };
    [...text].forEach((ch, index) => {
      glyphRows(ch).forEach((row, gy) => {
        for (let gx = 0; gx < GLYPH_W; gx++) {
          if (row[gx] !== '#') continue;
          const along = (index * ADVANCE + gx) * scale;
          const across = gy * scale;
          for (let dy = 0; dy < scale; dy++) {
            for (let dx = 0; dx < scale; dx++) {
              if (vertical) this.blend(origin.x + across + dy, origin.y - along - dx - 1, color, 1);
              else this.blend(origin.x + along + dx, origin.y + across + dy, color, 1);
            }
          }
        }
      });
    });
  }
}

function distanceToSegment(
  px: number,
  py: number,
  ax: number,
  ay: number,
  bx: number,
  by: number,
): number {
  const dx = bx - ax;
  const dy = by - ay;
  const lengthSq = dx * dx + dy * dy;
  const t =
    lengthSq === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / lengthSq));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function snapToPixelCentre([x, y]: XY): XY {
  return [Math.floor(x) + 0.5, Math.floor(y) + 0.5];
}

interface PngEncoder {
  PNG: { sync: { write(image: { width: number; height: number; data: Uint8Array }): Uint8Array } };
}

/** PNG bytes of the loss plot. */
export function renderLossPng(
  points: readonly LossPoint[],
  options: LossPlotOptions = {},
): Uint8Array {
  const scene = buildScene(points, options);
  const raster = new Raster(scene.width, scene.height);
  for (const item of scene.items) {
    switch (item.kind) {
      case 'line':
        // 1-px axis and grid lines go through pixel centres so they stay crisp, not 2 px of grey.
        raster.polyline(
          item.width <= 1 ? item.points.map(snapToPixelCentre) : item.points,
          item.color,
          item.width,
        );
        break;
      case 'rect':
        if (item.fill) raster.fillRect(item.x, item.y, item.w, item.h, item.fill);
        if (item.stroke) {
          const [x0, y0, x1, y1] = [item.x, item.y, item.x + item.w, item.y + item.h];
          raster.polyline(
            (
              [
                [x0, y0],
                [x1, y0],
                [x1, y1],
                [x0, y1],
                [x0, y0],
              ] as XY[]
            ).map(snapToPixelCentre),
            item.stroke,
            1,
          );
        }
        break;
      case 'circle':
        raster.circle(item.x, item.y, item.r, item.fill);
        break;
      case 'text':
        raster.text(item);
        break;
    }
  }
  // pngjs ships no type declarations; this is the one call used.
  const { PNG } = createRequire(import.meta.url)('pngjs') as PngEncoder;
  return PNG.sync.write({ width: scene.width, height: scene.height, data: raster.rgba });
}

/** Writes the SVG and/or PNG loss plot (atomically, creating parent folders). */
export function writeLossPlot(points: readonly LossPoint[], options: LossPlotOptions): void {
  if (options.svgPath) {
    mkdirSync(dirname(options.svgPath), { recursive: true });
    writeFileAtomic(options.svgPath, renderLossSvg(points, options));
  }
  if (options.pngPath) {
    mkdirSync(dirname(options.pngPath), { recursive: true });
    writeFileAtomic(options.pngPath, renderLossPng(points, options));
  }
}
