//! Evaluation metrics: COCO-exact box/mask AP and AR (pycocotools conventions), classification metrics, operating-point metrics and business-rule gates.
