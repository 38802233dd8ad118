// npm run -s parity -- --fixture DIR --out FILE [--backend X] [--fused]
// Recomputes every value of a PyTorch parity fixture from its inputs alone and writes them as JSON.
// --fused: the network as the CLIs and cells run it (src/lib/runtime/fused-unet.ts), not epsTheta.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  ddimSample, ddimStep, ddimTimesteps, epsTheta, loadUNet, makeSchedule, plainEps, posterior,
  predictX0, qSample, type Labels,
} from '../src/lib/diffusion';
import { fusedEpsTheta, fusedPlainEps } from '../src/lib/runtime/fused-unet';
import { backendFlag, need, parseFlags, readJsonFile, runMain, writeAtomic } from './cli';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** An NCHW image batch from the fixture as an NHWC tensor. */
function images(value: unknown, field: string, c: number, size: number): tf.Tensor4D {
  const flat = Array.isArray(value) ? (value as unknown[]).flat(3) : [];
  const B = Array.isArray(value) ? value.length : 0;
  if (!B || flat.length !== B * c * size * size || !flat.every((v) => typeof v === 'number')) {
    throw new Error(`${field} must be a [B, ${c}, ${size}, ${size}] array of numbers`);
  }
  return tf.tidy(() => // [B, C, H, W] -> [B, H, W, C]
    tf.transpose(tf.tensor4d(flat as number[], [B, c, size, size]), [0, 2, 3, 1]));
}

/** NHWC tensor back to nested NCHW arrays, as the fixture writes them. */
async function nchw(x: tf.Tensor4D): Promise<unknown> {
  const t = tf.transpose(x, [0, 3, 1, 2]);
  const out = await t.array();
  t.dispose();
  return out;
}

const ints = (v: unknown, field: string): number[] => {
  if (!Array.isArray(v) || !v.every(Number.isInteger)) {
    throw new Error(`${field} must be an array of integers`);
  }
  return v;
};
const labels = (v: unknown, field: string): Labels | undefined => {
  if (v === null || v === undefined) return undefined;
  return ints(v, field);
};

async function main() {
  const flags = parseFlags(process.argv.slice(2), ['fixture', 'out', 'backend'], ['fused']);
  const [net, netEps] = flags.fused ? [fusedEpsTheta, fusedPlainEps] : [epsTheta, plainEps];
  const dir = need(flags, 'fixture');
  const out = need(flags, 'out');
  await useNodeBackend(backendFlag(flags));
  const c = readJsonFile<Json>(join(dir, 'case.json'));
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(join(dir, 'weights.safetensors')));
  } catch {
    throw new Error(`cannot read ${join(dir, 'weights.safetensors')}`);
  }
  const section = (name: string): Json => {
    if (!c[name] || typeof c[name] !== 'object') {
      throw new Error(`case.json has no "${name}" object`);
    }
    return c[name];
  };
  const m = section('model');
  const config = {
    imageChannels: m.io_channels, channels: m.model_channels, classes: m.class_num ?? null,
  };
  if (![config.imageChannels, config.channels, m.image_size].every(Number.isInteger)) {
    throw new Error('case.json model needs integer io_channels, model_channels and image_size');
  }
  const { params } = loadUNet(bytes, config);
  const sc = section('schedule');
  if (sc.kind !== 'paper-linear') {
    throw new Error(`schedule.kind ${JSON.stringify(sc.kind)} is not supported; `
      + 'expected "paper-linear"');
  }
  const s = makeSchedule('paper-linear', sc.timesteps);
  const img = (v: unknown, f: string) => images(v, f, config.imageChannels, m.image_size);

  const result: Json = {
    schedule: {
      betas: [...s.beta], alphas_cumprod: [...s.alphaBar], posterior_variance: [...s.betaTilde],
      posterior_mean_coef1: [...s.posteriorCoefX0], posterior_mean_coef2: [...s.posteriorCoefXt],
    },
  };

  const q = section('q_sample');
  const xt = tf.tidy(() => qSample(s, img(q.x0, 'q_sample.x0'), ints(q.t, 'q_sample.t'),
    img(q.noise, 'q_sample.noise')));
  result.q_sample = { xt: await nchw(xt) };

  const e = section('eps');
  const et = ints(e.t, 'eps.t');
  const ex = img(e.xt, 'eps.xt');
  const eps = net(params, config, ex, et, labels(e.label, 'eps.label'));
  result.eps = { eps: await nchw(eps) };

  const x0 = predictX0(s, { xt: ex, t: et, eps, clip: true });
  const post = posterior(s, x0, ex, et);
  result.p_mean_variance = {
    mean: await nchw(post.mean), variance: post.variance, log_variance: post.logVariance,
  };

  const d = section('ddim_step');
  const dx = img(d.x, 'ddim_step.x');
  const dl = labels(d.label, 'ddim_step.label');
  const step = tf.tidy(() => ddimStep(s, {
    xt: dx, t: d.t, tPrev: d.t_prev, eps: netEps(params, config, dl)(dx, d.t),
  }).x);
  result.ddim_step = { x_prev: await nchw(step) };

  // the library's DDIM loop from the fixture's x_T; the seed draws only the noise z, which eta = 0
  // (the fixture's) leaves out
  const g = section('ddim');
  const { timesteps, prev } = ddimTimesteps(s.T, g.steps, 'paper');
  const xT = img(g.xT, 'ddim.xT');
  const x = await ddimSample(netEps(params, config, labels(g.label, 'ddim.label')), s, xT.shape, {
    seed: 0, xT, steps: g.steps, spacing: 'paper', eta: g.eta ?? 0, clipX0: g.clip_x0 ?? true,
  });
  result.ddim = { timestep_seq: timesteps, prev_seq: prev, x0: await nchw(x) };
  writeAtomic(out, JSON.stringify(result));
}

runMain(main);
