"""The camera ingester: one supervised worker per camera, video metadata into the database.

Modules: ``analysis`` (detector, tracker, line counters, image statistics — pure, no I/O),
``health`` (fault detection state machines), ``source`` (``cv2.VideoCapture`` with pacing,
looping and reconnection), ``worker`` (the per-camera loop), ``store`` (messages → database
work for the shared batched writer), ``supervisor`` (threads or processes, restarts with
backoff), ``service`` (``ioc ingest cameras``). Only metadata is stored, never frames.
"""
