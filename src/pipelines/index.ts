export { CogVideoXFunPipeline, type FunCallOptions, type FunComponents } from './cogvideox_fun.js';
export { CogVideoXImageToVideoPipeline, CogVideoXPipeline, type CogVideoXComponents, type ImageToVideoCallOptions } from './cogvideox.js';
export { denoise, dynamicGuidance, toUint8Videos, type CommonCallOptions, type OutputType, type PipelineOutput, type PipelineStage, type StepInfo, type Video } from './common.js';
export { componentBytes, ModelSlot, openModelFolder, type LoadOptions } from './components.js';
export { planMemory, WASM_HEAP_LIMIT, type MemoryInputs, type MemoryPlan, type MemoryRequest, type StagePlan } from './memory_plan.js';
export { addNoiseToReferenceVideo, imageToVideoInputs, maskedVideo, resizeMask, videoToVideoInputs, type GrayImage, type RgbImage } from './inpaint.js';
export { encodePrompt } from './prompt.js';
export { ASPECT_RATIO_512, MAX_FRAMES, maxFramesFor, sizeFromReference } from './rules.js';
export { generateLongVideo, planLongVideo, type LongVideoOptions, type LongVideoResult, type LongVideoSegment, type LongVideoSegmentInfo, type LongVideoPlan } from './long_video.js';
