//! Vision models in Burn (YOLOv8-seg, MobileNetV3) and the inference pipeline shared by CLI, evaluation and server: preprocessing, decoding, NMS, masks.
