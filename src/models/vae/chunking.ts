// How AutoencoderKLCogVideoX splits time into encoder / decoder calls; GroupNorm statistics and causal-conv context
// are per call, so the chunking defines the numbers.
//   encode: chunks of num_sample_frames_batch_size = 8 frames, the first taking the remainder (49 → 9, 8, 8, …)
//     (diffusers/.../autoencoder_kl_cogvideox.py `_encode`, which CogVideoX-Fun keeps: autoencoder_magvit.py:1283).
//   decode 'fun' (CogVideoX-Fun autoencoder_magvit.py:1359-1383, its default auto_split_process=False): latent frame 0
//     alone with the Upsample3D first-frame flag, then pairs (1,2), (3,4), …
//   decode 'diffusers' (diffusers/.../autoencoder_kl_cogvideox.py `_decode`): num_latent_frames_batch_size = 2 with the
//     first call taking the remainder: (0,1,2), (3,4), … for odd T; (0,1), (2,3), … for even T.

/**
 * How a time-compressing Upsample3D repeats frames in one decoder call:
 *   'fun-first' — Fun's first call (first_frame_flag): the single frame is upsampled in 2-D only;
 *   'fun'       — Fun's later calls: 3-D nearest ×2, every frame twice;
 *   'diffusers' — diffusers: t > 1 odd → frame 0 once, the rest twice; t = 1 → once; t even → every frame twice.
 * (CogVideoX-Fun autoencoder_magvit.py:235-271; diffusers/.../upsampling.py CogVideoXUpsample3D.forward)
 */
export type UpsampleMode = 'fun-first' | 'fun' | 'diffusers';

export type DecodeChunking = 'fun' | 'diffusers';

const SAMPLE_FRAME_BATCH = 8; // num_sample_frames_batch_size
const LATENT_FRAME_BATCH = 2; // num_latent_frames_batch_size

/** Decoder calls [start, end, upsample mode] over T latent frames. */
export function decodeCalls(T: number, chunking: DecodeChunking): [number, number, UpsampleMode][] {
  const calls: [number, number, UpsampleMode][] = [];
  if (chunking === 'fun') {
    calls.push([0, 1, 'fun-first']);
    for (let s = 1; s < T; s += LATENT_FRAME_BATCH) calls.push([s, Math.min(s + LATENT_FRAME_BATCH, T), 'fun']);
  } else {
    const n = Math.max(Math.floor(T / LATENT_FRAME_BATCH), 1);
    const r = T % LATENT_FRAME_BATCH;
    for (let k = 0; k < n; k++) {
      const start = LATENT_FRAME_BATCH * k + (k === 0 ? 0 : r);
      calls.push([start, Math.min(LATENT_FRAME_BATCH * (k + 1) + r, T), 'diffusers']);
    }
  }
  return calls;
}

/** Encoder chunks [start, end) over F pixel frames. */
export function encodeChunks(F: number): [number, number][] {
  const n = Math.max(Math.floor(F / SAMPLE_FRAME_BATCH), 1);
  const r = F % SAMPLE_FRAME_BATCH;
  return Array.from({ length: n }, (_, k) => [SAMPLE_FRAME_BATCH * k + (k === 0 ? 0 : r), Math.min(SAMPLE_FRAME_BATCH * (k + 1) + r, F)]);
}

/** Time repeat count of each input frame of an Upsample3D (1 or 2). */
export function upsampleRepeats(t: number, compressTime: boolean, mode: UpsampleMode): number[] {
  if (!compressTime) return new Array<number>(t).fill(1);
  switch (mode) {
    case 'fun-first':
      if (t !== 1) throw new Error(`Upsample3D first-frame pass over ${t} frames (the reference squeezes a single frame)`);
      return [1];
    case 'fun':
      return new Array<number>(t).fill(2);
    case 'diffusers':
      if (t === 1) return [1];
      if (t % 2 === 1) return [1, ...new Array<number>(t - 1).fill(2)];
      return new Array<number>(t).fill(2);
  }
}
