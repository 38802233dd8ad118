// The .pth reader on files made here as torch.save(model.state_dict()) makes them: every dtype,
// any device, strided views, and one clear error for each defect or hostile pickle.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../src/lib/diffusion';
import { isPth, pthToSafetensors, readPth } from '../src/lib/runtime/pth';
import {
  callPickle, fromHost, PICKLE_OPS as OP, Pickler, pthRecords, withPickle, writePth, zipPth,
  type PthTensor,
} from './helpers/pth-writer';

const FIXTURE = join(__dirname, 'fixtures/pytorch-parity/weights.safetensors');
const fixture = () => readSafetensors(new Uint8Array(readFileSync(FIXTURE))).tensors;
const f32 = (...v: number[]) => new Float32Array(v);
const bits = (...v: number[]) => new Uint16Array(v);
const arange = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

describe('readPth', () => {
  it('reads float32, float16 and bfloat16 exactly, and parameters saved with keep_vars', () => {
    const half = [1, -2, 0.333251953125, 65504, 2 ** -24, -0, Infinity];
    const bfloat = [1, -3, 0.333984375, 3.3895313892515355e38, 2 ** -133, -Infinity];
    const pth = writePth({
      single: { storage: f32(1.5, -0.1, 3e38, 1e-45), shape: [2, 2] },
      half: { dtype: 'float16', storage: bits(0x3c00, 0xc000, 0x3555, 0x7bff, 1, 0x8000, 0x7c00),
        shape: [7] },
      bfloat: { dtype: 'bfloat16', storage: bits(0x3f80, 0xc040, 0x3eab, 0x7f7f, 1, 0xff80),
        shape: [3, 2] },
      parameter: { storage: f32(7, 8), shape: [2], parameter: true },
      scalar: { storage: f32(42), shape: [] },
      empty: { storage: f32(), shape: [0, 3] },
    });
    const tensors = readPth(pth);
    expect([...tensors.keys()])
      .toEqual(['single', 'half', 'bfloat', 'parameter', 'scalar', 'empty']);
    expect(tensors.get('single')).toEqual({ shape: [2, 2], data: f32(1.5, -0.1, 3e38, 1e-45) });
    expect(tensors.get('half')).toEqual({ shape: [7], data: f32(...half) });
    expect(Object.is(tensors.get('half')!.data[5], -0)).toBe(true);
    expect(tensors.get('bfloat')).toEqual({ shape: [3, 2], data: f32(...bfloat) });
    expect(tensors.get('parameter')).toEqual({ shape: [2], data: f32(7, 8) });
    expect(tensors.get('scalar')).toEqual({ shape: [], data: f32(42) });
    expect(tensors.get('empty')).toEqual({ shape: [0, 3], data: f32() });
  });

  it('reads storages saved on cpu and on cuda:0, under any archive folder, the same', () => {
    const tensors = {
      w: { storage: arange(6), shape: [2, 3] }, b: { storage: f32(-1), shape: [1] },
    };
    const cpu = writePth(tensors);
    const cuda = writePth(tensors, { location: 'cuda:0', archive: 'checkpoint_epoch_10' });
    expect(new TextDecoder().decode(cuda)).toContain('cuda:0');
    expect(readPth(cuda)).toEqual(readPth(cpu));
    expect(readPth(cpu).get('w')).toEqual({ shape: [2, 3], data: arange(6) });
  });

  it('materialises strided views: a transpose, a storage offset, a shared storage', () => {
    const storage = arange(12); // [3, 4] row-major: 0..11
    const tensors = readPth(writePth({
      m: { storage, shape: [3, 4], key: 's' },
      mT: { storage, shape: [4, 3], stride: [1, 4], key: 's' }, // m.t()
      column: { storage, shape: [3], stride: [4], offset: 2, key: 's' }, // m[:, 2]
      block: { storage, shape: [2, 2], stride: [4, 1], offset: 5, key: 's' }, // m[1:, 1:3]
      halfT: { dtype: 'float16', storage: bits(0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600),
        shape: [3, 2], stride: [1, 3] }, // [[1, 2, 3], [4, 5, 6]].t()
    }));
    expect(tensors.get('mT')!.data).toEqual(f32(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11));
    expect(tensors.get('column')!.data).toEqual(f32(2, 6, 10));
    expect(tensors.get('block')!.data).toEqual(f32(5, 6, 9, 10));
    expect(tensors.get('halfT')).toEqual({ shape: [3, 2], data: f32(1, 4, 2, 5, 3, 6) });
  });

  it('reads a state_dict of 1,001 tensors (LONG_BINPUT memo, two SETITEMS batches)', () => {
    const tensors: Record<string, PthTensor> = {};
    for (let i = 0; i < 1001; i++) tensors[`l${i}.weight`] = { storage: f32(i, -i), shape: [2] };
    const read = readPth(writePth(tensors));
    expect(read.size).toBe(1001);
    expect(read.get('l1000.weight')!.data).toEqual(f32(1000, -1000));
  });

  it('reads protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL): torch.save(pickle_protocol=4)', () => {
    // CPython 3's pickle.Pickler(protocol=4) output for OrderedDict w = _rebuild_tensor_v2(
    // ('storage', torch.FloatStorage, '0', 'cuda:0', 6), 0, (2, 3), (3, 1), False, OrderedDict())
    const pickle = Uint8Array.from(Buffer.from([
      '800495c4000000000000008c0b636f6c6c656374696f6e73948c0b4f7264657265644469637494939429',
      '52948c0177948c0c746f7263682e5f7574696c73948c125f72656275696c645f74656e736f725f763294',
      '939428288c0773746f72616765948c05746f726368948c0c466c6f617453746f726167659493948c0130',
      '948c06637564613a30944b067494514b004b024b0386944b034b01869489680229529474945294737d94',
      '8c095f6d657461646174619468022952948c00947d948c0776657273696f6e944b01737373622e',
    ].join(''), 'hex'));
    const records = pthRecords({ w: { storage: arange(6), shape: [2, 3] } });
    records['data.pkl'] = pickle;
    expect(readPth(zipPth(records)).get('w')).toEqual({ shape: [2, 3], data: arange(6) });
  });

  it('pads entries as torch does: each storage starts on a 64-byte boundary', () => {
    const zip = writePth({ w: { storage: arange(3), shape: [3] } }, { archive: 'model' });
    const name = new TextEncoder().encode('model/data/0');
    const at = indexOf(zip, name); // the first occurrence is in the local header
    const extra = zip[at - 2] | (zip[at - 1] << 8);
    expect((at + name.length + extra) % 64).toBe(0);
  });

  it('matches the safetensors it was made from: the PyTorch parity weights, byte for byte', () => {
    const tensors = fixture();
    const pth = writePth(fromHost(tensors), { location: 'cuda:0' });
    expect(isPth(pth)).toBe(true);
    expect(isPth(new Uint8Array(readFileSync(FIXTURE)))).toBe(false);
    const read = readPth(pth);
    expect([...read.keys()]).toEqual([...tensors.keys()]);
    for (const [name, { shape, data }] of tensors) {
      expect(read.get(name)!.shape, name).toEqual(shape);
      expect(same(read.get(name)!.data, data), name).toBe(true);
    }
    expect(same(pthToSafetensors(pth), writeSafetensors(Object.fromEntries(tensors)))).toBe(true);
  });

  it('reads the parity weights stored as bfloat16 as their upper 16 bits', () => {
    const tensors = fixture();
    const bfloat = Object.fromEntries([...tensors].map(([name, { shape, data }]) => [name, {
      dtype: 'bfloat16' as const, shape,
      storage: Uint16Array.from(new Uint32Array(data.slice().buffer), (w) => w >>> 16),
    }]));
    const read = readPth(writePth(bfloat));
    for (const [name, { data }] of tensors) {
      const truncated = new Float32Array(Uint32Array.from(new Uint32Array(data.slice().buffer),
        (w) => w & 0xffff0000).buffer);
      expect(same(read.get(name)!.data, truncated), name).toBe(true);
    }
  });
});

describe('readPth errors', () => {
  const ok = () => writePth({ w: { storage: arange(6), shape: [2, 3] } });

  it('says when a file is not a zip, or the legacy format', () => {
    expect(() => readPth(new Uint8Array(readFileSync(FIXTURE)))).toThrow(
      /^not a PyTorch \.pth file: its \d+ bytes do not start a zip archive$/);
    expect(() => readPth(new Uint8Array(0))).toThrow(/not a PyTorch \.pth file/);
    const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]);
    expect(() => readPth(legacy)).toThrow(/legacy format of PyTorch before 1\.6/);
  });

  it('says when the zip is truncated', () => {
    const pth = ok();
    for (const length of [pth.length - 1, pth.length - 30, pth.length >> 1, 10]) {
      expect(() => readPth(pth.subarray(0, length)), `${length}`).toThrow(/^truncated \.pth file/);
    }
  });

  it('says when data.pkl or a storage is missing, or a storage is too small', () => {
    const noPickle = writePth({ w: { storage: arange(6), shape: [2, 3] } },
      { edit: (r) => delete r['data.pkl'] });
    expect(() => readPth(noPickle)).toThrow(/expected one ARCHIVE\/data\.pkl in the zip, found 0/);
    const two = { a: { storage: f32(1), shape: [1] }, b: { storage: f32(2), shape: [1] } };
    const noStorage = writePth(two, { edit: (r) => delete r['data/1'] });
    expect(() => readPth(noStorage)).toThrow(
      'tensor "b": its storage archive/data/1 is missing from the .pth zip');
    const short = writePth({ w: { storage: arange(6), shape: [2, 3] } },
      { edit: (r) => (r['data/0'] = r['data/0'].slice(0, 20)) });
    expect(() => readPth(short)).toThrow(/storage archive\/data\/0 has 20 bytes, less than its 6/);
    const past = writePth({ w: { storage: arange(6), shape: [2, 3], stride: [3, 1], offset: 1 } });
    expect(() => readPth(past)).toThrow('tensor "w" with shape [2,3], stride [3,1] and offset 1 '
      + 'reaches element 6 of storage archive/data/0, which holds 6');
    const expand = writePth({ w: { storage: f32(1), shape: [1 << 30], stride: [0] } });
    expect(() => readPth(expand)).toThrow(/has 1073741824 elements, far more than the 1 of its/);
  });

  it('says which dtype it does not read, and refuses a big-endian file', () => {
    const long = writePth({ steps: { dtype: 'int64', storage: new Uint8Array(8), shape: [] } });
    expect(() => readPth(long)).toThrow(
      'tensor "steps" has dtype int64; expected float32, float16 or bfloat16');
    const double = writePth({ w: { dtype: 'float64', storage: new Uint8Array(16), shape: [2] } });
    expect(() => readPth(double)).toThrow(/dtype float64/);
    const records = pthRecords({ w: { storage: new Uint8Array(4), shape: [4] } });
    const p = new Pickler().proto(2).orderedDict().str('fp8');
    p.global('torch._utils', '_rebuild_tensor_v3').tuple(7, () => {
      p.tuple(5, () => p.str('storage').global('torch.storage', 'UntypedStorage').str('0')
        .str('cuda:0').int(4));
      p.op(OP.BINPERSID).int(0).ints([4]).ints([1]).op(OP.NEWFALSE).orderedDict();
      p.global('torch', 'float8_e4m3fn');
    }).op(OP.REDUCE, OP.SETITEM, OP.STOP);
    records['data.pkl'] = p.bytes();
    expect(() => readPth(zipPth(records))).toThrow('"fp8" has dtype float8_e4m3fn; expected');
    expect(() => readPth(writePth({ w: { storage: f32(1), shape: [1] } }, { byteorder: 'big' })))
      .toThrow('this .pth stores its tensors big-endian; expected little-endian');
  });

  it('refuses os.system, builtins.eval and every other unknown global, by name', () => {
    const cases: [Uint8Array, RegExp][] = [
      [callPickle('os', 'system', 'touch /tmp/pwned'), /global os\.system/],
      [callPickle('posix', 'system', 'touch /tmp/pwned'), /global posix\.system/],
      [callPickle('builtins', 'eval', '__import__("os").system("id")'), /global builtins\.eval/],
      [callPickle('__builtin__', 'eval', '1'), /global __builtin__\.eval/],
      [callPickle('os', 'system', 'id', 4), /global os\.system/], // protocol 4's STACK_GLOBAL
      [callPickle('torch', 'load', 'x'), /global torch\.load/],
    ];
    for (const [pickle, message] of cases) {
      expect(() => readPth(withPickle(pickle))).toThrow(message);
      expect(() => readPth(withPickle(pickle)))
        .toThrow(/^refusing to load this \.pth: .*nothing was run/);
    }
    const inst = new Pickler().proto(2).op(OP.MARK).str('id')
      .op(0x69, ...new TextEncoder().encode('os\nsystem\n'), OP.STOP).bytes(); // INST
    expect(() => readPth(withPickle(inst))).toThrow(/global os\.system/);
  });

  it('refuses a hostile value hidden among the tensors of a real state_dict', () => {
    const records = pthRecords({ w: { storage: arange(6), shape: [2, 3] } });
    const p = new Pickler().proto(2).orderedDict().op(OP.MARK).str('w');
    p.global('torch._utils', '_rebuild_tensor_v2').tuple(6, () => {
      p.tuple(5, () => p.str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(6));
      p.op(OP.BINPERSID).int(0).ints([2, 3]).ints([3, 1]).op(OP.NEWFALSE).orderedDict();
    }).op(OP.REDUCE).put();
    p.str('x').global('builtins', 'eval').str('1+1').op(OP.TUPLE1, OP.REDUCE);
    records['data.pkl'] = p.op(OP.SETITEMS, OP.STOP).bytes();
    expect(() => readPth(zipPth(records))).toThrow(/global builtins\.eval/);
  });

  it('refuses opcodes a state_dict does not use, and allowed globals used otherwise', () => {
    const newobj = new Pickler().proto(2).global('collections', 'OrderedDict')
      .op(OP.EMPTY_TUPLE, 0x81, OP.STOP).bytes();
    expect(() => readPth(withPickle(newobj))).toThrow(/pickle opcode NEWOBJ \(0x81\) at byte \d+/);
    const storageCall = callPickle('torch', 'FloatStorage', 'x');
    expect(() => readPth(withPickle(storageCall))).toThrow(/calls torch\.FloatStorage/);
    const cut = callPickle('os', 'system', 'id').subarray(0, 3);
    expect(() => readPth(withPickle(cut))).toThrow(/truncated pickle|ends inside/);
  });

  it('says what it found when the pickle is not a state_dict of tensors', () => {
    const list = new Pickler().proto(2).op(0x5d, OP.STOP).bytes(); // []
    expect(() => readPth(withPickle(list))).toThrow(/data\.pkl holds \(\), not a state_dict/);
    const epoch = new Pickler().proto(2).op(OP.EMPTY_DICT).str('epoch').int(3)
      .op(OP.SETITEM, OP.STOP).bytes();
    expect(() => readPth(withPickle(epoch))).toThrow(/entry "epoch" is number 3, not a tensor/);
  });
});

/** Bitwise equality of two typed arrays (fast where toEqual walks elements one by one). */
function same(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength),
    Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((b, j) => haystack[i + j] === b)) return i;
  }
  return -1;
}
