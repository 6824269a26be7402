/** Decoding a tensor's element bytes (see safetensors.ts) into JavaScript typed arrays: float32 or int32. */
import { DTYPE_BYTES, SafetensorsError, type SafetensorsDtype } from "./safetensors-format.js";

export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE 754 half precision (1 sign bit, 5 exponent bits, 10 fraction bits) to a JavaScript number. */
export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals: 0.fraction * 2^-14
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/**
 * bfloat16 is the top half of a float32 (same 8-bit exponent, 7 fraction bits): shifting its bits left by 16
 * gives the float32 with exactly the same value.
 */
export function bfloat16ToNumber(bits: number): number {
  const u32 = new Uint32Array([(bits & 0xffff) << 16]);
  return new Float32Array(u32.buffer)[0]!;
}

let float16Table: Float32Array | undefined;
/** All 65,536 half-precision values, computed once: decoding a tensor is then one table lookup per element. */
function float16Lookup(): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) float16Table[i] = float16ToNumber(i);
  }
  return float16Table;
}

/** Decodes raw little-endian bytes of a floating-point dtype into a Float32Array (F64 is rounded to float32). */
export function decodeFloats(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  // F32 on a little-endian machine (nearly all of them): the bytes already are the Float32Array, no copy.
  if (dtype === "F32" && LITTLE_ENDIAN_HOST && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  }
  const out = new Float32Array(n);
  switch (dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case "F16": {
      const table = float16Lookup();
      for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)]!;
      return out;
    }
    case "BF16": {
      const bits = new Uint32Array(out.buffer); // write the float32 bit patterns directly
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    default:
      throw new SafetensorsError(`cannot decode ${dtype} as floats`);
  }
}

/** Decodes raw little-endian bytes of an integer dtype into an Int32Array; values outside int32 are an error. */
export function decodeInts(dtype: SafetensorsDtype, bytes: Uint8Array, source = "decodeInts"): Int32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Int32Array(n);
  function tooBig(i: number, what: string): never {
    throw new SafetensorsError(`${source}: ${dtype} element ${i} (${what}) does not fit in an int32`);
  }
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "BOOL":
      case "U8":
        out[i] = view.getUint8(i);
        break;
      case "I8":
        out[i] = view.getInt8(i);
        break;
      case "I16":
        out[i] = view.getInt16(2 * i, true);
        break;
      case "U16":
        out[i] = view.getUint16(2 * i, true);
        break;
      case "I32":
        out[i] = view.getInt32(4 * i, true);
        break;
      case "U32": {
        const v = view.getUint32(4 * i, true);
        out[i] = v <= 0x7fffffff ? v : tooBig(i, String(v));
        break;
      }
      case "I64":
      case "U64": {
        // An int64 fits in an int32 when its high word is just the sign extension of the low word.
        const lo = view.getInt32(8 * i, true);
        const hi = view.getInt32(8 * i + 4, true);
        out[i] = hi === (lo < 0 ? -1 : 0) && !(dtype === "U64" && hi !== 0) ? lo : tooBig(i, `high word ${hi}`);
        break;
      }
      default:
        throw new SafetensorsError(`cannot decode ${dtype} as integers`);
    }
  }
  return out;
}
