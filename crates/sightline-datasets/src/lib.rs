//! Datasets: COCO/VOC/YOLO/image-folder import and export, one annotation model, content-addressed DVC-compatible versions, diff and stats.
