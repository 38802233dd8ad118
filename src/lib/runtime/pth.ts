// Reads the .pth files that `torch.save(model.state_dict(), path)` writes, without running them.
// The format (PyTorch 1.6 and later) is a zip: ARCHIVE/data.pkl, a pickle of the state_dict, and
// ARCHIVE/data/KEY, the raw little-endian bytes of each storage (ARCHIVE is any folder name).
// A pickle is a program for Python's unpickler, and a hostile one can call os.system. This one is
// interpreted, never executed: only the opcodes torch.save emits and the few globals a state_dict
// of tensors names (collections.OrderedDict, torch._utils' tensor rebuilders, torch storage types
// and dtypes) are known, nothing is called, and anything else is refused with a message naming it.
import { unzipSync } from 'fflate';
import { toFloat32, writeSafetensors, type HostTensor } from '../diffusion';

/** The dtype of each storage type torch.save may name; only the float ones are read. */
const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'float32', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64', LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16',
  CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
  ComplexFloatStorage: 'complex64', ComplexDoubleStorage: 'complex128',
  'storage.UntypedStorage': 'uint8', // with _rebuild_tensor_v3, which names the dtype itself
};
/** dtypes _rebuild_tensor_v3 names (torch.float8_e4m3fn, ...): those with no XStorage class. */
const V3_DTYPES = ['uint16', 'uint32', 'uint64', 'float8_e4m3fn', 'float8_e5m2', 'float8_e4m3fnuz',
  'float8_e5m2fnuz', 'float8_e8m0fnu', 'float4_e2m1fn_x2', 'complex32',
  ...Object.values(STORAGE_DTYPES)];
const READ: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; bytes: 2 | 4 }> = {
  float32: { dtype: 'F32', bytes: 4 }, float16: { dtype: 'F16', bytes: 2 },
  bfloat16: { dtype: 'BF16', bytes: 2 },
};
const FUNCTIONS = ['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter'];
const GLOBALS = new Set([...FUNCTIONS,
  ...[...Object.keys(STORAGE_DTYPES), ...V3_DTYPES].map((name) => `torch.${name}`)]);

/** True if `bytes` start like a zip, as a .pth does (a safetensors file starts otherwise). */
export function isPth(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3
    && bytes[3] === 4;
}

/** The tensors of a .pth state_dict by name, upcast to float32, in the order they were saved. */
export function readPth(bytes: Uint8Array): Map<string, HostTensor> {
  const { files, root } = openArchive(bytes);
  const order = files[`${root}byteorder`];
  const endian = order && new TextDecoder().decode(order).trim();
  if (endian && endian !== 'little') {
    throw new Error(`this .pth stores its tensors ${endian}-endian; expected little-endian`);
  }
  const state = unpickle(files[`${root}data.pkl`]);
  if (!(state instanceof Dict)) {
    throw new Error(`data.pkl holds ${describe(state)}, not a state_dict: save one with `
      + 'torch.save(model.state_dict(), path)');
  }
  const tensors = new Map<string, HostTensor>();
  for (const [name, value] of state.entries) {
    if (typeof name !== 'string') throw new Error(`a state_dict key is ${describe(name)}`);
    if (!(value instanceof TensorRef)) {
      throw new Error(`state_dict entry "${name}" is ${describe(value)}, not a tensor: `
        + 'save only the tensors, with torch.save(model.state_dict(), path)');
    }
    tensors.set(name, materialise(name, value, files, root));
  }
  return tensors;
}

/** The safetensors bytes of a weights file: a .pth is converted, a .safetensors passes through. */
export function asSafetensors(bytes: Uint8Array): Uint8Array {
  return isPth(bytes) ? pthToSafetensors(bytes) : bytes;
}

/** A .pth state_dict as safetensors bytes, so that every safetensors loader (loadUNet) reads it. */
export function pthToSafetensors(bytes: Uint8Array, metadata: Record<string, string> = {}) {
  return writeSafetensors(Object.fromEntries(readPth(bytes)), metadata);
}

// ---- the zip ----------------------------------------------------------------------------------

/** The zip's entries and the folder holding data.pkl (with its slash), every defect one error. */
function openArchive(bytes: Uint8Array): { files: Record<string, Uint8Array>; root: string } {
  if (!isPth(bytes)) {
    const legacy = bytes[0] === 0x80 && bytes[2] === 0x8a && bytes[3] === 0x0a;
    throw new Error(legacy
      ? 'not a PyTorch .pth file this reader knows: it is the legacy format of PyTorch before 1.6; '
        + 're-save it with a newer torch.save'
      : `not a PyTorch .pth file: its ${bytes.length} bytes do not start a zip archive`);
  }
  if (!hasEndRecord(bytes)) {
    throw new Error(`truncated .pth file: the zip's directory at its end is missing `
      + `(${bytes.length} bytes); the file is cut short or damaged`);
  }
  const sizes = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter: (f) => (sizes.set(f.name, f.originalSize), true) });
  } catch (error) {
    throw new Error(`damaged .pth file: its zip cannot be read (${(error as Error).message})`);
  }
  for (const [name, data] of Object.entries(files)) {
    if (data.length !== sizes.get(name)) {
      throw new Error(`truncated .pth file: zip entry ${name} holds ${data.length} of its `
        + `${sizes.get(name)} bytes`);
    }
  }
  const pickles = Object.keys(files).filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) {
    throw new Error(`not a PyTorch .pth file: expected one ARCHIVE/data.pkl in the zip, found `
      + `${pickles.length} among ${Object.keys(files).slice(0, 6).join(', ') || 'no entries'}`);
  }
  return { files, root: pickles[0].slice(0, -'data.pkl'.length) };
}

/** True if the zip's end-of-central-directory record (22 bytes + comment) ends the file. */
function hasEndRecord(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) !== 0x06054b50) continue;
    return at + 22 + view.getUint16(at + 20, true) === bytes.length;
  }
  return false;
}

// ---- the pickle -------------------------------------------------------------------------------

/** A Python global the pickle named, `module.name`, already checked against GLOBALS. */
class Global { constructor(readonly path: string) {} }
/** A dict or an OrderedDict (insertion order kept). */
class Dict { readonly entries = new Map<unknown, unknown>(); }
/** A persistent id ('storage', torch.XStorage, key, location, numel): ARCHIVE/data/KEY. */
class StorageRef {
  constructor(readonly type: string, readonly key: string, readonly numel: number) {}
}
/** A tensor: a view [shape] with [stride] into a storage, from element `offset`. */
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[],
    readonly stride: number[], readonly dtype = STORAGE_DTYPES[storage.type]) {}
}

/** Checks a global against what a state_dict needs; anything else ends the load here. */
function resolveGlobal(module: string, name: string): Global {
  const path = `${module}.${name}`;
  if (!GLOBALS.has(path)) {
    throw new Error(`refusing to load this .pth: its pickle asks for the Python global ${path}, `
      + 'which a state_dict of tensors never needs (nothing was run); allowed are '
      + `${FUNCTIONS.join(', ')}, torch storage types and dtypes`);
  }
  return new Global(path);
}

/** Calls an allowed function (REDUCE) on `args`: builds a dict or a tensor reference. */
function call(fn: unknown, args: unknown): unknown {
  if (!(fn instanceof Global) || !Array.isArray(args)) {
    throw new Error(`data.pkl calls ${describe(fn)} with ${describe(args)}: not a state_dict`);
  }
  switch (fn.path) {
    case 'collections.OrderedDict':
      if (args.length) throw new Error('data.pkl builds an OrderedDict from arguments');
      return new Dict();
    case 'torch._utils._rebuild_tensor_v2': // (storage, offset, size, stride, requires_grad, ...)
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v3': { // (..., backward_hooks, dtype, metadata?)
      const [storage, offset, shape, stride, , , dtype] = args;
      const v3 = fn.path.endsWith('v3');
      if (!(storage instanceof StorageRef) || !isIndex(offset) || !isIndices(shape)
        || !isIndices(stride) || stride.length !== shape.length || v3 !== dtype instanceof Global) {
        throw new Error(`data.pkl rebuilds a tensor from malformed arguments ${describe(args)}`);
      }
      const named = dtype instanceof Global ? dtype.path.replace(/^torch\./, '') : undefined;
      return new TensorRef(storage, offset, shape, stride, named);
    }
    case 'torch._utils._rebuild_parameter': // (data, requires_grad, backward_hooks)
      if (!(args[0] instanceof TensorRef)) throw new Error('data.pkl: a Parameter of no tensor');
      return args[0];
    default:
      throw new Error(`data.pkl calls ${fn.path}, which is not a function a state_dict calls`);
  }
}

/** The storage named by a persistent id ('storage', torch.XStorage, key, location, numel). */
function storageRef(pid: unknown): StorageRef {
  const [tag, type, key, location, numel] = Array.isArray(pid) ? pid : [];
  const typeName = type instanceof Global ? type.path.replace(/^torch\./, '') : '';
  if (tag !== 'storage' || !(typeName in STORAGE_DTYPES) || typeof key !== 'string'
    || typeof location !== 'string' || !isIndex(numel)) {
    throw new Error(`data.pkl names a storage by ${describe(pid)}; expected `
      + "('storage', torch.XStorage, key, location, numel)");
  }
  return new StorageRef(typeName, key, numel); // location (cpu, cuda:0, ...) does not matter here
}

const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isIndices = (v: unknown): v is number[] => Array.isArray(v) && v.every(isIndex);

/** Names a pickled value for an error message, briefly (lists may be long, nested or cyclic). */
function describe(v: unknown, depth = 0): string {
  if (v === null) return 'None';
  if (v instanceof Global) return `the global ${v.path}`;
  if (v instanceof Dict) return 'a dict';
  if (v instanceof StorageRef) return 'a storage';
  if (v instanceof TensorRef) return 'a tensor';
  if (Array.isArray(v)) {
    if (depth > 2) return '(...)';
    const items = v.slice(0, 6).map((item) => describe(item, depth + 1));
    return `(${items.join(', ')}${v.length > 6 ? ', ...' : ''})`;
  }
  return typeof v === 'string' ? JSON.stringify(v.slice(0, 80)) : `${typeof v} ${String(v)}`;
}

/** Opcodes that are valid pickle but that a state_dict never uses; named in the refusal. */
const REFUSED: Record<number, string> = {
  0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x50: 'PERSID', 0x82: 'EXT1',
  0x83: 'EXT2', 0x84: 'EXT4', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x98: 'READONLY_BUFFER',
  0x97: 'NEXT_BUFFER', 0x91: 'FROZENSET', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x49: 'INT',
  0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING', 0x56: 'UNICODE', 0x70: 'PUT', 0x67: 'GET',
};

/** Bounds-checked reads from data.pkl. */
class Reader {
  pos = 0;
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  take(n: number): number {
    const at = this.pos;
    if (!(n >= 0 && at + n <= this.bytes.length)) {
      throw new Error(`data.pkl ends inside an opcode at byte ${at}: truncated pickle`);
    }
    this.pos += n;
    return at;
  }
  u8 = () => this.bytes[this.take(1)];
  u16 = () => this.view.getUint16(this.take(2), true);
  i32 = () => this.view.getInt32(this.take(4), true);
  u32 = () => this.view.getUint32(this.take(4), true);
  u64 = () => Number(this.view.getBigUint64(this.take(8), true));
  f64 = () => this.view.getFloat64(this.take(8), false); // BINFLOAT is big-endian
  raw = (n: number) => this.bytes.subarray(this.take(n), this.pos);
  utf8 = (n: number) => new TextDecoder().decode(this.raw(n));
  latin1 = (n: number) => Array.from(this.raw(n), (c) => String.fromCharCode(c)).join('');
  /** A GLOBAL's module or name: text up to a newline. */
  line = () => {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw new Error(`data.pkl ends inside a GLOBAL at byte ${this.pos}`);
    const text = this.latin1(end - this.pos);
    this.take(1);
    return text;
  };
  /** LONG1's little-endian two's-complement integer, as a number if it is exact. */
  long = (n: number) => {
    const b = this.raw(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (n && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Error(`data.pkl holds the integer ${v}, too large for a tensor's shape`);
    }
    return Number(v);
  };
}

/** Interprets a pickle (protocol 2 as torch.save writes it, up to 5) into plain values. */
function unpickle(pkl: Uint8Array): unknown {
  const r = new Reader(pkl);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = () => {
    if (stack.length <= (marks.at(-1) ?? 0)) throw new Error(`data.pkl pops an empty stack`);
    return stack.pop();
  };
  const popMark = () => {
    const at = marks.pop();
    if (at === undefined) throw new Error('data.pkl closes a MARK it never opened');
    return stack.splice(at);
  };
  const recall = (i: number) => {
    if (!memo.has(i)) throw new Error(`data.pkl recalls memo ${i}, which it never stored`);
    return memo.get(i);
  };
  const setItems = (items: unknown[]) => {
    const dict = pop();
    if (!(dict instanceof Dict) || items.length % 2) {
      throw new Error(`data.pkl sets ${items.length} keys and values on ${describe(dict)}`);
    }
    for (let i = 0; i + 1 < items.length; i += 2) dict.entries.set(items[i], items[i + 1]);
    stack.push(dict);
  };
  const append = (items: unknown[]) => {
    const list = stack.at(-1);
    if (!Array.isArray(list)) throw new Error(`data.pkl appends to ${describe(list)}`);
    list.push(...items);
  };
  for (;;) {
    const at = r.pos;
    const op = r.u8();
    switch (op) {
      case 0x80: r.u8(); break; // PROTO
      case 0x95: r.u64(); break; // FRAME (protocol 4): a length hint
      case 0x2e: { // STOP
        const result = pop();
        if (stack.length || marks.length) throw new Error('data.pkl stops with values left over');
        return result;
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4b: stack.push(r.u8()); break; // BININT1
      case 0x4d: stack.push(r.u16()); break; // BININT2
      case 0x4a: stack.push(r.i32()); break; // BININT
      case 0x8a: stack.push(r.long(r.u8())); break; // LONG1
      case 0x47: stack.push(r.f64()); break; // BINFLOAT
      case 0x58: stack.push(r.utf8(r.u32())); break; // BINUNICODE
      case 0x8c: stack.push(r.utf8(r.u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(r.utf8(r.u64())); break; // BINUNICODE8
      case 0x54: stack.push(r.latin1(r.i32())); break; // BINSTRING
      case 0x55: stack.push(r.latin1(r.u8())); break; // SHORT_BINSTRING
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x85: case 0x86: case 0x87: { // TUPLE1, TUPLE2, TUPLE3
        const items = Array.from({ length: op - 0x84 }, pop).reverse();
        stack.push(items);
        break;
      }
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x61: append([pop()]); break; // APPEND
      case 0x65: append(popMark()); break; // APPENDS
      case 0x7d: stack.push(new Dict()); break; // EMPTY_DICT
      case 0x73: { // SETITEM
        const value = pop();
        setItems([pop(), value]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(items);
        break;
      }
      case 0x71: memo.set(r.u8(), stack.at(-1)); break; // BINPUT
      case 0x72: memo.set(r.u32(), stack.at(-1)); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack.at(-1)); break; // MEMOIZE
      case 0x68: stack.push(recall(r.u8())); break; // BINGET
      case 0x6a: stack.push(recall(r.u32())); break; // LONG_BINGET
      case 0x63: { // GLOBAL "module\nname\n"
        const module = r.line();
        stack.push(resolveGlobal(module, r.line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        stack.push(resolveGlobal(String(module), String(name)));
        break;
      }
      case 0x51: stack.push(storageRef(pop())); break; // BINPERSID
      case 0x52: { // REDUCE
        const args = pop();
        stack.push(call(pop(), args));
        break;
      }
      case 0x62: { // BUILD: an OrderedDict's attributes (_metadata: module versions) are dropped
        const state = pop();
        if (!(stack.at(-1) instanceof Dict)) {
          throw new Error(`data.pkl sets state ${describe(state)} on ${describe(stack.at(-1))}`);
        }
        break;
      }
      default: {
        if (op === 0x69) resolveGlobal(r.line(), r.line()); // INST names its class: refuse by name
        const name = REFUSED[op] ? `${REFUSED[op]} (0x${op.toString(16)})` : `0x${op.toString(16)}`;
        throw new Error(`refusing to load this .pth: data.pkl uses pickle opcode ${name} at byte `
          + `${at}, which a state_dict of tensors never needs (nothing was run)`);
      }
    }
  }
}

// ---- the tensors ------------------------------------------------------------------------------

/** Reads a tensor's elements from its storage file: any strides and offset, row-major out. */
function materialise(name: string, t: TensorRef, files: Record<string, Uint8Array>, root: string) {
  const { type, key } = t.storage;
  const format = READ[t.dtype];
  if (!format) {
    throw new Error(`tensor "${name}" has dtype ${t.dtype}; expected float32, float16 or bfloat16`);
  }
  const untyped = type === 'storage.UntypedStorage'; // its numel counts bytes
  const numel = untyped ? Math.floor(t.storage.numel / format.bytes) : t.storage.numel;
  const path = `${root}data/${key}`;
  const file = files[path];
  if (!file) throw new Error(`tensor "${name}": its storage ${path} is missing from the .pth zip`);
  if (file.length < numel * format.bytes) {
    throw new Error(`tensor "${name}": storage ${path} has ${file.length} bytes, less than its `
      + `${numel} elements of ${format.bytes} bytes: truncated`);
  }
  const size = t.shape.reduce((a, b) => a * b, 1);
  if (size > numel && size > 2 ** 24) { // a stride-0 view of a small storage: refuse to expand it
    throw new Error(`tensor "${name}" with shape [${t.shape}] has ${size} elements, far more than `
      + `the ${numel} of its storage`);
  }
  const last = t.offset + t.shape.reduce((sum, d, i) => sum + (d - 1) * t.stride[i], 0);
  if (size > 0 && last >= numel) {
    throw new Error(`tensor "${name}" with shape [${t.shape}], stride [${t.stride}] and offset `
      + `${t.offset} reaches element ${last} of storage ${path}, which holds ${numel}`);
  }
  const own = file.byteOffset % format.bytes ? file.slice() : file; // typed views need alignment
  const out = format.bytes === 4
    ? gather(new Uint32Array(own.buffer, own.byteOffset, numel), new Uint32Array(size), t)
    : gather(new Uint16Array(own.buffer, own.byteOffset, numel), new Uint16Array(size), t);
  return { shape: t.shape, data: toFloat32(new Uint8Array(out.buffer), format.dtype) };
}

/** out[i] = storage[offset + sum_k index_k(i) * stride_k], i walking [shape] row-major. */
function gather<T extends Uint16Array | Uint32Array>(storage: T, out: T, t: TensorRef): T {
  const { shape, stride } = t;
  const n = shape.length;
  if (n === 0) {
    if (out.length) out[0] = storage[t.offset];
    return out;
  }
  const [width, step] = [shape[n - 1], stride[n - 1]];
  const index = new Array(n - 1).fill(0);
  let base = t.offset;
  for (let row = 0; row * width < out.length; row++) {
    if (step === 1) out.set(storage.subarray(base, base + width), row * width);
    else for (let j = 0; j < width; j++) out[row * width + j] = storage[base + j * step];
    for (let d = n - 2; d >= 0; d--) { // odometer over the outer dimensions
      base += stride[d];
      if (++index[d] < shape[d]) break;
      base -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}
