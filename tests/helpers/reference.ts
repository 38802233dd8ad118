// An independent float64 reference of the paper's PyTorch code, written from its description
// (tests/fixtures/pytorch-parity/README.md) in plain loops over NCHW arrays, sharing no code with the library.
// It makes parity fixtures in the PyTorch fixture's format for other widths, T, batch sizes and without classes.

type Arr = Float64Array;
export interface RefModel { io: number; C: number; classes: number | null; size: number; w: Record<string, { shape: number[]; data: Arr }> }

function conv(x: Arr, B: number, Ci: number, H: number, W: number, w: Arr, b: Arr, Co: number, stride: number) {
  const Ho = Math.floor((H + 2 - 3) / stride) + 1;
  const Wo = Math.floor((W + 2 - 3) / stride) + 1;
  const out = new Float64Array(B * Co * Ho * Wo);
  for (let n = 0; n < B; n++) for (let o = 0; o < Co; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    let acc = b[o];
    for (let c = 0; c < Ci; c++) for (let ki = 0; ki < 3; ki++) {
      const y = i * stride + ki - 1;
      if (y < 0 || y >= H) continue;
      for (let kj = 0; kj < 3; kj++) {
        const xx = j * stride + kj - 1;
        if (xx < 0 || xx >= W) continue;
        acc += x[((n * Ci + c) * H + y) * W + xx] * w[((o * Ci + c) * 3 + ki) * 3 + kj];
      }
    }
    out[((n * Co + o) * Ho + i) * Wo + j] = acc;
  }
  return { out, H: Ho, W: Wo };
}

function gnRelu(x: Arr, B: number, C: number, HW: number) {
  const per = (C / 32) * HW;
  for (let n = 0; n < B; n++) for (let g = 0; g < 32; g++) {
    const start = (n * C + g * (C / 32)) * HW;
    let mean = 0;
    for (let k = 0; k < per; k++) mean += x[start + k];
    mean /= per;
    let v = 0;
    for (let k = 0; k < per; k++) v += (x[start + k] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / per + 1e-5);
    for (let k = 0; k < per; k++) x[start + k] = Math.max(0, (x[start + k] - mean) * inv);
  }
  return x;
}

const add = (a: Arr, b: Arr) => a.map((v, i) => v + b[i]);

function up2(x: Arr, B: number, C: number, H: number, W: number) {
  const out = new Float64Array(B * C * 4 * H * W);
  for (let n = 0; n < B * C; n++) for (let i = 0; i < 2 * H; i++) for (let j = 0; j < 2 * W; j++) {
    out[(n * 2 * H + i) * 2 * W + j] = x[(n * H + (i >> 1)) * W + (j >> 1)];
  }
  return out;
}

/** eps_theta(x, t, label) for a batch, NCHW in and out. */
export function refEps(m: RefModel, x: Arr, B: number, t: number[], labels: number[] | null): Arr {
  const { io, C, size } = m;
  const W = (n: string) => m.w[`${n}.weight`].data;
  const Bi = (n: string) => m.w[`${n}.bias`].data;
  const block = (n: string, inp: Arr, ci: number, co: number, h: number, stride = 1) => {
    const r = conv(inp, B, ci, h, h, W(n), Bi(n), co, stride);
    return { x: gnRelu(r.out, B, co, r.H * r.W), h: r.H };
  };
  const x1 = block('down_block1', x, io, C, size);
  const x2 = block('down_block2.conv', x1.x, C, C, x1.h, 2);
  const x3 = block('down_block3', x2.x, C, 2 * C, x2.h);
  const x4 = block('down_block4.conv', x3.x, 2 * C, 2 * C, x3.h, 2);
  const h1 = block('middle_block.conv1', x4.x, 2 * C, 2 * C, x4.h);
  const h2 = block('middle_block.conv2', h1.x, 2 * C, 2 * C, x4.h);
  const middle = add(h2.x, x4.x);
  const half = C / 2;
  const hw = x4.h * x4.h;
  for (let n = 0; n < B; n++) {
    const emb = new Float64Array(C);
    for (let i = 0; i < half; i++) {
      const f = Math.exp((-Math.log(10000) * i) / half);
      emb[i] = Math.cos(t[n] * f);
      emb[half + i] = Math.sin(t[n] * f);
    }
    for (let o = 0; o < 2 * C; o++) {
      let z = Bi('noise_embedding')[o];
      for (let i = 0; i < C; i++) z += W('noise_embedding')[o * C + i] * emb[i];
      let v = Math.max(0, z);
      if (labels) v += Math.max(0, m.w['class_emb.weight'].data[labels[n] * 2 * C + o]);
      for (let k = 0; k < hw; k++) middle[(n * 2 * C + o) * hw + k] += v;
    }
  }
  const x5 = block('up_block1.conv', up2(add(middle, x4.x), B, 2 * C, x4.h, x4.h), 2 * C, 2 * C, 2 * x4.h);
  const x6 = block('up_block2', add(x5.x, x3.x), 2 * C, C, x5.h);
  const x7 = block('up_block3.conv', up2(add(x6.x, x2.x), B, C, x6.h, x6.h), C, C, 2 * x6.h);
  return conv(add(x7.x, x1.x), B, C, size, size, W('up_block4'), Bi('up_block4'), io, 1).out;
}

/** A small deterministic PRNG for fixtures (xorshift), values rounded to float32 like a saved checkpoint. */
export function uniform(seed: number) {
  let s = seed >>> 0 || 1;
  return (lo: number, hi: number) => {
    s ^= s << 13; s >>>= 0; s ^= s >> 17; s ^= s << 5; s >>>= 0;
    return Math.fround(lo + ((hi - lo) * s) / 2 ** 32);
  };
}
