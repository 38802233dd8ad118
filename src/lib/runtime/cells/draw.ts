// Drawing on the cells' canvases, from plain arrays (read with `await tensor.data()` at the edge).

/** Draws n NHWC images of h x w (1 or 3 channels) in a grid; values map from [lo, hi] to 0..255;
 * 'auto' stretches each image. */
export function drawImages(canvas: HTMLCanvasElement, data: ArrayLike<number>, n: number,
  h: number, w: number,
  opts: { cols?: number; range?: [number, number] | 'auto'; gap?: number; channels?: 1 | 3 } = {}) {
  const c = opts.channels ?? 1;
  const cols = Math.min(opts.cols ?? n, n);
  const rows = Math.ceil(n / cols);
  const gap = opts.gap ?? 1;
  canvas.width = cols * (w + gap) - gap;
  canvas.height = rows * (h + gap) - gap;
  const ctx = canvas.getContext('2d')!;
  const image = ctx.createImageData(canvas.width, canvas.height);
  image.data.fill(255);
  for (let k = 0; k < n; k++) {
    let [lo, hi] = opts.range === 'auto' || !opts.range ? [Infinity, -Infinity] : opts.range;
    if (opts.range === 'auto' || !opts.range) {
      for (let p = 0; p < h * w * c; p++) {
        const v = data[k * h * w * c + p];
        [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      }
      if (hi - lo < 1e-12) hi = lo + 1;
    }
    const [ox, oy] = [(k % cols) * (w + gap), Math.floor(k / cols) * (h + gap)];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const at = ((oy + y) * canvas.width + ox + x) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const v = data[((k * h + y) * w + x) * c + (c === 3 ? ch : 0)];
          image.data[at + ch] = Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * 255);
        }
      }
    }
  }
  ctx.putImageData(image, 0, 0);
}

export interface Series {
  label: string; values: ArrayLike<number>; color: string; dashed?: boolean;
}

/** A line chart of several series over x = 0..len-1, with a legend, optional log-y and a
 * vertical marker. */
export function drawCurves(canvas: HTMLCanvasElement, series: Series[],
  opts: { log?: boolean; marker?: number; title?: string } = {}) {
  const ctx = canvas.getContext('2d')!;
  const [W, H] = [canvas.width, canvas.height];
  const pad = { l: 44, r: 8, t: 18, b: 18 };
  const f = (v: number) => (opts.log ? Math.log10(Math.max(v, 1e-12)) : v);
  const all = series.flatMap((s) => Array.from(s.values, f)).filter(Number.isFinite);
  let [lo, hi] = [Math.min(...all), Math.max(...all)];
  if (!(hi > lo)) [lo, hi] = [lo - 1, lo + 1];
  const n = Math.max(...series.map((s) => s.values.length), 2);
  const X = (i: number) => pad.l + (i / (n - 1)) * (W - pad.l - pad.r);
  const Y = (v: number) => pad.t + (1 - (f(v) - lo) / (hi - lo)) * (H - pad.t - pad.b);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = '#999';
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.l, pad.t, W - pad.l - pad.r, H - pad.t - pad.b);
  ctx.fillStyle = '#333';
  ctx.font = '11px sans-serif';
  const tick = (v: number) => {
    if (opts.log) return `1e${v.toFixed(0)}`;
    const far = Math.abs(v) >= 100 || (Math.abs(v) < 0.01 && v !== 0);
    return far ? v.toExponential(0) : v.toFixed(2);
  };
  ctx.fillText(tick(hi), 2, pad.t + 8);
  ctx.fillText(tick(lo), 2, H - pad.b);
  if (opts.title) ctx.fillText(opts.title, pad.l + 4, 12);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color;
    ctx.setLineDash(s.dashed ? [4, 3] : []);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    Array.from(s.values).forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, W - pad.r - 110, pad.t + 12 + 12 * k);
  });
  ctx.setLineDash([]);
  if (opts.marker !== undefined) {
    ctx.strokeStyle = '#c00';
    ctx.beginPath();
    ctx.moveTo(X(opts.marker), pad.t);
    ctx.lineTo(X(opts.marker), H - pad.b);
    ctx.stroke();
  }
}
