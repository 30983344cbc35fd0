//! Training pipelines: YOLOv8-seg detector and MobileNetV3 classifier, data loading and augmentation, losses, optimisers, experiments.
