//! Reads PyTorch checkpoints without Python: Ultralytics .pt (zip + pickled module tree) and torchvision .pth state dicts, plus safetensors, into named f32 tensors.
