/** Public API of the weights module: safetensors reading, checkpoints, and atomic writing. */
export { DTYPES, DTYPE_SIZES, dtypeSize, isDType, isFloatDType, numElements, type DType } from './dtypes.js';
export { bf16BitsToFloat32, f16BitsToFloat32, f8e4m3BitsToFloat32, f8e5m2BitsToFloat32, float32ToBf16Bits, float32ToF16Bits } from './bits.js';
export { decodeToFloat32, decodeToFloat64, decodeToInt32 } from './decode.js';
export { canEncode, encodeElements, type TensorData } from './encode.js';
export { MAX_HEADER_BYTES, SafetensorsFile, WeightsError, type TensorInfo } from './safetensors.js';
export { Checkpoint, INDEX_FILE_NAME, MAX_INDEX_BYTES, SINGLE_FILE_NAME } from './checkpoint.js';
export { MAX_DEPTH, MAX_KEY_CHARS, MAX_VALUES } from './header-json.js';
export { SmallFileError, readSmallFile } from './small-file.js';
export { describeJson } from './header-json.js';
export {
  SafetensorsWriter,
  planSafetensors,
  writeSafetensors,
  type PlannedTensor,
  type SafetensorsLayout,
  type TensorSpec,
  type TensorToWrite,
} from './writer.js';
export { GgufFile, type GgufTensorInfo, type GgufValue } from './gguf.js';
export { GGML_TYPES, type GgmlType } from './quants/index.js';
