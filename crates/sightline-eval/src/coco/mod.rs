//! COCO detection / instance-segmentation evaluation, number-for-number with pycocotools' `COCOeval`.
//!
//! Conventions reproduced (see `pycocotools/cocoeval.py`):
//! - images and categories are those of the ground truth (sorted ids); detections on unknown images are an
//!   error, detections of unknown categories are ignored; detection ids are their 1-based position in the file;
//! - a ground-truth annotation is ignored iff it is a crowd (`iscrowd`; the `ignore` field is overwritten by
//!   pycocotools and therefore has no effect) or its `area` is outside the area range;
//! - detections are sorted by score with a stable sort (numpy mergesort), the top 100 per image and category are
//!   kept; matching is greedy per IoU threshold, crowd regions can absorb many detections and unmatched
//!   detections outside the area range are ignored;
//! - precision is interpolated at the 101 recall points 0:.01:1, averaged over the 10 IoU thresholds .50:.05:.95;
//!   a summary number is `-1` when nothing defines it;
//! - the results file decides the detection area as pycocotools' `loadRes` does: if its first entry has a
//!   `bbox`, every area is `w * h` of the box (even for `segm`), otherwise the mask area;
//! - an empty results list is evaluated as "no detections" (pycocotools cannot load one).

mod eval;
mod json;

pub use eval::{AREA_LABELS, CocoEval, IouType, STAT_NAMES, evaluate};
pub use json::{
    CocoAnnotation, CocoCategory, CocoDetection, CocoGt, CocoImage, Flag, RleCounts, Segmentation,
    load_detections,
};
