// Upload checker thread: decodes an uploaded image (or a video's first frame) so a corrupt or non-image upload is
// refused with a 400 before the job is queued, without decoding on the thread that answers HTTP.
import { parentPort } from 'node:worker_threads';
import { readImage, readMask } from '../media/image.js';
import { readVideo } from '../media/video_read.js';
import { oneLine } from '../cli/errors.js';

export interface ProbeRequest {
  seq: number;
  kind: 'image' | 'mask' | 'video';
  file: string;
}
export type ProbeReply = { seq: number; ok: true; width: number; height: number } | { seq: number; ok: false; error: string };

const port = parentPort!;
port.on('message', (r: ProbeRequest) => {
  const run = async () => {
    if (r.kind === 'video') {
      const v = await readVideo(r.file, { maxFrames: 1 });
      if (v.frames.length === 0) throw new Error('the video has no frames');
      return { width: v.width, height: v.height };
    }
    const img = r.kind === 'mask' ? await readMask(r.file) : await readImage(r.file);
    return { width: img.width, height: img.height };
  };
  run().then(
    (s) => port.postMessage({ seq: r.seq, ok: true, ...s } satisfies ProbeReply),
    (e: unknown) => port.postMessage({ seq: r.seq, ok: false, error: oneLine(e) } satisfies ProbeReply),
  );
});
