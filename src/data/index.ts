// The procedural demo world (clips, captions, held-out combinations, Fun training metadata) and its analyzer.
export * from './world.js';
export { renderClip, renderFrame, insideShape } from './render.js';
export { canonicalCaption, sampleCaption } from './captions.js';
export { writeWorld, writeEntries, worldEntries, type FunMetadataEntry, type WorldEntry, type WriteWorldOptions } from './write_world.js';
export { analyzeVideo, median, psnr, shapeFromFill, TRIANGLE_MAX, SQUARE_MIN, type Analysis, type AnalyzeOptions, type FrameObject, type VideoLike } from './analyze.js';
export { benchCases, benchCombos, scoreT2V, scoreI2V, scoreStartEnd, scoreV2V, summarize, formatTable, TARGETS, FRAME0_MIN_DB, END_FRAMES_MIN_DB, type Mode, type Scored, type SeenOrder, type TableRow } from './quality.js';
export { remapEntries, parseColorRemap, formatColorRemap, remapGroups, DEFAULT_REMAP, type ColorRemap, type RemapEntry, type RemapOptions } from './remap.js';
export { summarizeProof, formatProofTable, proofVerdict, type ProofGeneration, type ProofRow, type ProofVerdict, type ProofGroup, type ProofVariant } from './lora_proof.js';
