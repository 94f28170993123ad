"""`genre-hpc bench`'s probes: what the package is measured by, apart from what it runs.

Each module is one probe: extraction (both extractors, schedulers, worker counts, start-up,
memory), mpvariants (the study's multiprocessing variants), mp3 (decode and end to end on MP3),
new_worker (a new worker's first result), scale (validate and extract at 10^3-10^5 tracks),
training (xgboost and dask-ml timings). Probes time clusters of several sizes, so unlike a stage
they build them, through infra.cluster, the one place clusters are built.
"""
