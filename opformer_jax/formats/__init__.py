"""The file formats of the field, read (and written) without any model.

`keypoint_formats` reads what 2D detectors write (VideoPose3D / Detectron2,
MMPose, AlphaPose, OpenPose, the lifting demos' `keypoints.npz`, plain
arrays) into H36M-17 tracks, with the COCO-17 / Halpe-26 / BODY_25 joint
mappings (`blazepose`: MediaPipe's 33 landmarks through the COCO-17
rules); `bvh` reads and writes BVH animation files. Everything else in
the package may import these modules; they import only `skeleton`, `errors`
and `data.camera`.
"""
