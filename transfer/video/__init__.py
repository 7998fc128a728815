"""Video style transfer without flicker: frames in and out, optical flow, the flicker metric, the job.

`frames` reads and writes clips (GIF, a folder of frames, MP4 with the `video` extra), `flow`
estimates optical flow and where it can be trusted, `metrics` measures flicker (warping
error), `job` runs the per-frame loop (resumable, one content-addressed result per frame).
The temporal loss itself lives with the other loss terms, in `transfer.core.temporal`.
"""
