//! Instance-mask geometry: COCO RLE (compressed and uncompressed), polygon rasterisation, boxes, areas and IoU, bit-exact with pycocotools.
