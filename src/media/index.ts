// Media input/output: images, videos, Pillow- and OpenCV-exact resizing, CogVideoX-Fun's input loading.
export { MediaError } from './errors.js';
export { type RasterImage, toGray, toRgb, luma, framesToChannelsFirst } from './raster.js';
export { readImage, readMask, decodeImage, encodePng, writePng, sniffImageFormat, type ImageFormat } from './image.js';
export { resizeImage, type ResampleFilter } from './resize.js';
export { resizeLinearCv2 } from './cv2_resize.js';
export { readVideo, funFrameSkip, type ReadVideoOptions, type VideoFrames } from './video_read.js';
export { writeVideo, videoFormatFor, type VideoToWrite, type WriteVideoOptions, type VideoFormat } from './video_write.js';
export {
  readImageForFun,
  readMaskForFun,
  readVideoForFun,
  type FunSize,
  type FunVideo,
  type FunVideoOptions,
} from './fun_inputs.js';
