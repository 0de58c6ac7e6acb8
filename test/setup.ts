// Model tests run long synchronous tfjs computations. Yield to the event loop after every test so vitest's worker can
// answer its RPC messages in time (it times them out after 60 s of wall time, even when the reply is already waiting).
import { afterEach } from 'vitest';

afterEach(() => new Promise<void>((resolve) => setImmediate(resolve)));
