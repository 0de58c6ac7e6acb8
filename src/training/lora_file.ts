// Writing a trained LoRA.
// - Fun / kohya format (cogvideox/utils/lora_utils.py:316-340 LoRANetwork.save_weights): `<name>.alpha` (0-d),
//   `<name>.lora_down.weight` [r, in], `<name>.lora_up.weight` [out, r], every tensor in the save dtype (alpha too),
//   metadata {sshs_model_hash, sshs_legacy_hash} computed as lora_utils.py:115-155 does: over the bytes of
//   safetensors.torch.save(tensors, {}) — the sha256 of everything after the header, and the first 8 hex digits of
//   the sha256 of bytes [1 MiB, 1 MiB + 64 KiB). safetensors orders tensors by dtype, then name; we write the same
//   bytes (so the files are byte-identical to Fun's).
// - diffusers / PEFT format (what diffusers' CogVideoX LoRA training writes and `load_lora_weights` reads):
//   `transformer.<module>.lora_A.weight` = down, `transformer.<module>.lora_B.weight` = up. That format stores no
//   alpha and loads with scale 1 (PEFT lora_alpha = r), so alpha/rank is folded into lora_B.
import { createHash } from 'node:crypto';
import { HostTensor } from '../weights/host_tensor.js';
import { saveSafetensors, type TensorToWrite } from '../weights/safetensors.js';
import type { LoraNetwork } from './lora.js';

export type LoraSaveDtype = 'F32' | 'BF16';
export type LoraFormat = 'fun' | 'diffusers';

function tensorBytes(t: TensorToWrite): Uint8Array {
  const bits = t.dtype === 'BF16' ? HostTensor.float32ToBf16(Float32Array.from(t.data)) : Float32Array.from(t.data);
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/** safetensors' serialization of (same-dtype) tensors: name order, 8-byte padded JSON header. */
function serialize(tensors: [string, TensorToWrite][], metadata: Record<string, string>): { header: Buffer; data: Uint8Array[] } {
  const head: Record<string, unknown> = { __metadata__: metadata };
  const data: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    const b = tensorBytes(t);
    head[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + b.byteLength] };
    data.push(b);
    off += b.byteLength;
  }
  let json = JSON.stringify(head);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return { header: Buffer.concat([len, Buffer.from(json, 'utf8')]), data };
}

/** lora_utils.py precalculate_safetensors_hashes(tensors, {}) → (model hash, legacy hash). */
export function sshsHashes(tensors: [string, TensorToWrite][]): { model: string; legacy: string } {
  const { header, data } = serialize(tensors, {});
  const model = createHash('sha256');
  for (const d of data) model.update(d);
  const all = Buffer.concat([header, ...data]);
  const legacy = createHash('sha256').update(all.subarray(0x100000, 0x110000)).digest('hex').slice(0, 8);
  return { model: model.digest('hex'), legacy };
}

/** The tensors of a LoRA file in safetensors' order (one dtype: by name). */
export function loraTensors(net: LoraNetwork, format: LoraFormat, dtype: LoraSaveDtype): [string, TensorToWrite][] {
  const out: [string, TensorToWrite][] = [];
  for (const t of net.targets) {
    const down = net.params.get(`${t.name}.lora_down.weight`)!;
    const up = net.params.get(`${t.name}.lora_up.weight`)!;
    if (format === 'fun') {
      out.push([`${t.name}.alpha`, { dtype, shape: [], data: [net.alpha] }]);
      out.push([`${t.name}.lora_down.weight`, { dtype, shape: [net.rank, t.inFeatures], data: down }]);
      out.push([`${t.name}.lora_up.weight`, { dtype, shape: [t.outFeatures, net.rank], data: up }]);
    } else {
      const s = Math.fround(net.scale);
      out.push([`transformer.${t.module}.lora_A.weight`, { dtype, shape: [net.rank, t.inFeatures], data: down }]);
      out.push([`transformer.${t.module}.lora_B.weight`, { dtype, shape: [t.outFeatures, net.rank], data: up.map((x) => Math.fround(x * s)) }]);
    }
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Writes the LoRA atomically; Fun format as save_weights(file, dtype, None), diffusers format with {"format": "pt"}. */
export function saveLora(file: string, net: LoraNetwork, format: LoraFormat = 'fun', dtype: LoraSaveDtype = 'F32'): void {
  const tensors = loraTensors(net, format, dtype);
  let metadata: Record<string, string>;
  if (format === 'fun') {
    const h = sshsHashes(tensors);
    metadata = { sshs_model_hash: h.model, sshs_legacy_hash: h.legacy };
  } else {
    metadata = { format: 'pt' };
  }
  saveSafetensors(file, Object.fromEntries(tensors), metadata);
}
