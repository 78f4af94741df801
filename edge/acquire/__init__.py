"""One acquisition layer: a recording file (:mod:`edge.acquire.files`) or a front end on
the wire (:mod:`edge.acquire.board`) -> canonical int16 blocks at the model's rate, with
explicit gap events. Scaling, resampling and flushing live here and nowhere else."""
