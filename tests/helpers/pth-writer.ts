// Writes .pth files the way `torch.save(model.state_dict(), path)` does, for tests without Python:
// a pickle (protocol 2, memoised like CPython's pickler) of an OrderedDict whose values are
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) with
// persistent ids ('storage', torch.XStorage, key, location, numel), in a zip of stored entries
// whose data starts on 64-byte boundaries (PyTorch pads the local header's extra field, id "FB").
import { zipSync, type ZipOptions } from 'fflate';

export type PthDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64';
const STORAGE: Record<PthDtype, string> = {
  float32: 'FloatStorage', float16: 'HalfStorage', bfloat16: 'BFloat16Storage',
  float64: 'DoubleStorage', int64: 'LongStorage',
};

export interface PthTensor {
  /** float32 values, or the bit patterns of float16 / bfloat16, or raw bytes of other dtypes */
  storage: Float32Array | Uint16Array | Uint8Array;
  dtype?: PthDtype; // default float32
  shape: number[];
  stride?: number[]; // default row-major
  offset?: number; // storage offset in elements, default 0
  key?: string; // storage key; tensors given the same key share the first one's storage
  parameter?: boolean; // wrap in torch._utils._rebuild_parameter, as keep_vars=True saves
}

export interface PthOptions {
  location?: string; // 'cpu' (default), 'cuda:0', ...
  archive?: string; // the zip's folder; torch.save names it after the file ('archive' for buffers)
  byteorder?: string; // default 'little'
  /** edits the records (path in the archive -> bytes) before zipping, for crafting bad files */
  edit?: (records: Record<string, Uint8Array>) => void;
}

const OP = {
  MARK: 0x28, STOP: 0x2e, BINPERSID: 0x51, REDUCE: 0x52, EMPTY_TUPLE: 0x29, TUPLE: 0x74,
  TUPLE1: 0x85, EMPTY_DICT: 0x7d, SETITEM: 0x73, SETITEMS: 0x75, BUILD: 0x62, NEWTRUE: 0x88,
  NEWFALSE: 0x89, NONE: 0x4e, BINPUT: 0x71, LONG_BINPUT: 0x72, BINGET: 0x68, LONG_BINGET: 0x6a,
} as const;
export { OP as PICKLE_OPS };

/** Emits pickle opcodes; strings and globals are memoised and recalled as CPython does. */
export class Pickler {
  private out: number[] = [];
  private memo = new Map<string, number>();
  private next = 0;
  op(...bytes: number[]) {
    this.out.push(...bytes);
    return this;
  }
  private u32(n: number) {
    return this.op(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff);
  }
  proto(n = 2) {
    return this.op(0x80, n);
  }
  /** Memoises the top of the stack (BINPUT, or LONG_BINPUT past 255). */
  put() {
    const i = this.next++;
    return i < 256 ? this.op(OP.BINPUT, i) : this.op(OP.LONG_BINPUT).u32(i);
  }
  private recall(id: string) {
    const i = this.memo.get(id);
    if (i === undefined) return false;
    if (i < 256) this.op(OP.BINGET, i);
    else this.op(OP.LONG_BINGET).u32(i);
    return true;
  }
  private remember(id: string) {
    this.memo.set(id, this.next);
    return this.put();
  }
  global(module: string, name: string) {
    if (this.recall(`g:${module}.${name}`)) return this;
    this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
    return this.remember(`g:${module}.${name}`);
  }
  str(s: string) {
    if (this.recall(`s:${s}`)) return this;
    const bytes = new TextEncoder().encode(s);
    this.op(0x58).u32(bytes.length).op(...bytes); // BINUNICODE
    return this.remember(`s:${s}`);
  }
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(0x4b, n); // BININT1
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >> 8); // BININT2
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a).u32(n); // BININT
    const bytes: number[] = []; // LONG1: little-endian two's complement
    let v = BigInt(n);
    do {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    } while (!(v === 0n && !(bytes.at(-1)! & 0x80)) && !(v === -1n && bytes.at(-1)! & 0x80));
    return this.op(0x8a, bytes.length, ...bytes);
  }
  /** A tuple of the values `items` pushes: EMPTY_TUPLE, TUPLE1..3 or MARK ... TUPLE, memoised. */
  tuple(n: number, items: () => void) {
    if (n === 0) return this.op(OP.EMPTY_TUPLE);
    if (n > 3) this.op(OP.MARK);
    items();
    return this.op(n > 3 ? OP.TUPLE : OP.TUPLE1 + n - 1).put();
  }
  ints(values: number[]) {
    return this.tuple(values.length, () => values.forEach((v) => this.int(v)));
  }
  /** `collections.OrderedDict()`: the empty dict torch passes as backward_hooks. */
  orderedDict() {
    return this.global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE, OP.REDUCE).put();
  }
  /** SETITEM / SETITEMS in batches of 1000 for the pairs `items(k)` pushes, as CPython does. */
  setItems(count: number, item: (i: number) => void) {
    for (let start = 0; start < count; start += 1000) {
      const end = Math.min(count, start + 1000);
      if (end - start > 1) this.op(OP.MARK);
      for (let i = start; i < end; i++) item(i);
      this.op(end - start > 1 ? OP.SETITEMS : OP.SETITEM);
    }
    return this;
  }
  bytes() {
    return new Uint8Array(this.out);
  }
}

const BYTES: Record<PthDtype, number> = {
  float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8,
};
const rowMajor = (shape: number[]) =>
  shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/** The data.pkl torch.save writes for `tensors` (keys '0', '1', ... unless given). */
export function pickleStateDict(tensors: Record<string, PthTensor>, location = 'cpu'): Uint8Array {
  const p = new Pickler().proto(2);
  p.orderedDict();
  const names = Object.keys(tensors);
  const keys = new Map<PthTensor, string>();
  names.forEach((name, i) => keys.set(tensors[name], tensors[name].key ?? String(i)));
  p.setItems(names.length, (i) => {
    const t = tensors[names[i]];
    const dtype = t.dtype ?? 'float32';
    const tensor = () => p.global('torch._utils', '_rebuild_tensor_v2').tuple(6, () => {
      p.tuple(5, () => {
        p.str('storage').global('torch', STORAGE[dtype]).str(keys.get(t)!).str(location);
        p.int(t.storage.byteLength / BYTES[dtype]);
      });
      p.op(OP.BINPERSID).int(t.offset ?? 0).ints(t.shape).ints(t.stride ?? rowMajor(t.shape));
      p.op(OP.NEWFALSE).orderedDict();
    }).op(OP.REDUCE).put();
    p.str(names[i]);
    if (!t.parameter) tensor();
    else {
      p.global('torch._utils', '_rebuild_parameter');
      p.tuple(3, () => tensor().op(OP.NEWTRUE).orderedDict()).op(OP.REDUCE).put();
    }
  });
  // the state_dict's _metadata attribute: {'_metadata': OrderedDict({'': {'version': 1}})}
  p.op(OP.EMPTY_DICT).put().str('_metadata').orderedDict();
  p.str('').op(OP.EMPTY_DICT).put().str('version').int(1).op(OP.SETITEM);
  return p.op(OP.SETITEM, OP.SETITEM, OP.BUILD, OP.STOP).bytes();
}

/** The zip torch.save writes: stored entries, each one's data 64-byte aligned. */
export function zipPth(records: Record<string, Uint8Array>, archive = 'archive'): Uint8Array {
  const files: Record<string, [Uint8Array, ZipOptions]> = {};
  let offset = 0;
  for (const [path, data] of Object.entries(records)) {
    const name = `${archive}/${path}`;
    const start = offset + 30 + new TextEncoder().encode(name).length + 4; // + the extra's header
    const padding = new Uint8Array((64 - (start % 64)) % 64).fill(0x5a); // 'Z', as torch pads
    files[name] = [data, { level: 0, mtime: new Date(2025, 0, 1), extra: { 0x4246: padding } }];
    offset = start + padding.length + data.length;
  }
  return zipSync(files);
}

/** The records of a .pth: data.pkl, byteorder, data/KEY per storage, version. */
export function pthRecords(tensors: Record<string, PthTensor>, options: PthOptions = {}) {
  const records: Record<string, Uint8Array> = {
    'data.pkl': pickleStateDict(tensors, options.location),
    byteorder: new TextEncoder().encode(options.byteorder ?? 'little'),
  };
  Object.values(tensors).forEach((t, i) => {
    const key = `data/${t.key ?? i}`;
    records[key] ??= new Uint8Array(t.storage.buffer, t.storage.byteOffset, t.storage.byteLength);
  });
  records.version = new TextEncoder().encode('3\n');
  records['.data/serialization_id'] = new TextEncoder().encode('0'.repeat(40));
  return records;
}

/** A .pth file of `tensors`, as torch.save(state_dict) writes it. */
export function writePth(tensors: Record<string, PthTensor>, options: PthOptions = {}): Uint8Array {
  const records = pthRecords(tensors, options);
  options.edit?.(records);
  return zipPth(records, options.archive);
}

/** Contiguous float32 tensors (a readSafetensors result) as writePth input. */
export function fromHost(tensors: Map<string, { shape: number[]; data: Float32Array }>) {
  const entries = [...tensors].map(([name, { shape, data }]) => [name, { storage: data, shape }]);
  return Object.fromEntries(entries) as Record<string, PthTensor>;
}

/** A pickle that calls module.name(arg) when Python loads it, as an exploit's __reduce__ writes. */
export function callPickle(module: string, name: string, arg: string, protocol = 2): Uint8Array {
  const p = new Pickler().proto(protocol);
  const short = (s: string) => [0x8c, s.length, ...new TextEncoder().encode(s)]; // ASCII names
  if (protocol >= 4) p.op(...short(module), ...short(name), 0x93); // STACK_GLOBAL
  else p.global(module, name);
  return p.str(arg).op(OP.TUPLE1, OP.REDUCE, OP.STOP).bytes();
}

/** A .pth whose data.pkl is `pickle` (plus one float32 storage, key '0'). */
export function withPickle(pickle: Uint8Array): Uint8Array {
  return zipPth({
    'data.pkl': pickle, byteorder: new TextEncoder().encode('little'),
    'data/0': new Uint8Array(new Float32Array([1, 2]).buffer),
  });
}
