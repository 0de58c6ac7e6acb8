// Public API.
export { setBackend, availableBackends, describeBackend, shutdownBackend, type BackendName } from './nn/backend.js';
export { T5Tokenizer, type TokenizeOptions, type TokenizerOutput } from './models/t5_tokenizer.js';
export { T5EncoderModel, type T5Config, type T5LoadOptions, type T5ForwardOptions } from './models/t5.js';
export { SafetensorsFile, SafetensorsError, saveSafetensors, type SafetensorsDtype, type TensorToWrite } from './weights/safetensors.js';
export { WeightStore, readConfig } from './weights/checkpoint.js';
export { HostTensor, type HostStorage } from './weights/host_tensor.js';
export type { Residency } from './weights/residency.js';
export { LoraFile, LoraMerge, ModuleTree, resolveLoraLayer, type LoraLayer, type LoraSpec } from './weights/lora.js';
export {
  CogVideoXTransformer3DModel,
  prepareRotaryPositionalEmbeddings,
  sincosPositionTable,
  type TransformerConfig,
  type TransformerFlavor,
  type TransformerInputs,
  type TransformerLoadOptions,
  type TransformerForwardOptions,
} from './models/transformer.js';
export type { RotaryTables } from './nn/embeddings.js';
export { transformerFlavor, transformerKind, isFunCheckpoint, type TransformerKind } from './weights/transformer_kind.js';
export * from './schedulers/index.js';
export { AutoencoderKLCogVideoX, DiagonalGaussianDistribution, type VaeConfig, type DecodeOptions, type VaeRunOptions, type TilingOptions, type VaeLoadOptions } from './models/vae.js';
// media
export * from './media/index.js';
// pipelines
export * from './pipelines/index.js';
