// Heap-view replacements for the wasm backend's Slice / Unpack / SplitV kernels.
// The stock Slice reads the WHOLE input out of the heap (readSync = HEAPU8.slice) on every call and loops per
// element for rank > 4; unstacking [60,1024,1024] took 6.4 s instead of 42 ms (measured, tfjs-backend-wasm 4.22).
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): tf.TypedArray;
}

/** Copies x[begin : begin+size] into a new output, one contiguous run per outer index. */
function heapSlice(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const rank = x.shape.length;
  // Output first: allocating may grow (and move) the heap, invalidating earlier views.
  const out = backend.makeOutput(size, x.dtype);
  if (size.some((s) => s === 0)) return out;
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const strides = new Array<number>(rank);
  let acc = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = acc;
    acc *= x.shape[d]!;
  }
  // Axes after `k` are taken whole, so each run covers size[k] * strides[k] contiguous elements.
  let k = rank - 1;
  while (k > 0 && size[k] === x.shape[k]) k--;
  const run = size[k]! * strides[k]!;
  const idx = new Array<number>(k).fill(0);
  let o = 0;
  for (;;) {
    let off = begin[k]! * strides[k]!;
    for (let d = 0; d < k; d++) off += (begin[d]! + idx[d]!) * strides[d]!;
    dst.set(src.subarray(off, off + run), o);
    o += run;
    let d = k - 1;
    while (d >= 0 && ++idx[d]! === size[d]) idx[d--] = 0;
    if (d < 0) break;
  }
  return out;
}

const slice: KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs.x as TensorInfo;
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs!.begin as number[], attrs!.size as number[]);
  return heapSlice(backend as unknown as WasmBackend, x, begin, size);
};

const unpack: KernelFunc = ({ inputs, attrs, backend }) => {
  const value = inputs.value as TensorInfo;
  const rank = value.shape.length;
  const axis = ((attrs!.axis as number) + rank) % rank;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const begin = new Array<number>(rank).fill(0);
  const size = value.shape.slice();
  size[axis] = 1;
  const outs: TensorInfo[] = [];
  for (let i = 0; i < value.shape[axis]!; i++) {
    begin[axis] = i;
    const o = heapSlice(backend as unknown as WasmBackend, value, begin, size);
    outs.push({ dataId: o.dataId, dtype: o.dtype, shape: outShape });
  }
  return outs;
};

const splitV: KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs.x as TensorInfo;
  const axis = tf.util.parseAxisParam(attrs!.axis as number, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs!.numOrSizeSplits as number[] | number, axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = x.shape.slice();
    size[axis] = s;
    const o = heapSlice(backend as unknown as WasmBackend, x, begin, size);
    begin[axis]! += s;
    return o;
  });
};

export function registerWasmKernels(): void {
  const configs: KernelConfig[] = [
    { kernelName: tf.Slice, backendName: 'wasm', kernelFunc: slice },
    { kernelName: tf.Unpack, backendName: 'wasm', kernelFunc: unpack },
    { kernelName: tf.SplitV, backendName: 'wasm', kernelFunc: splitV },
  ];
  for (const c of configs) {
    if (tf.getKernel(c.kernelName, 'wasm')) tf.unregisterKernel(c.kernelName, 'wasm');
    tf.registerKernel(c);
  }
}
