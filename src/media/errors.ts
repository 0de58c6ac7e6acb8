/** A media file that is missing, cannot be decoded or cannot be written; `file` names it. */
export class MediaError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'MediaError';
  }
}
