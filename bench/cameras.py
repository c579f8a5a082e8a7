"""Camera ingest benchmark (a script, not a test).

    python bench/cameras.py [--seconds 60] [--scaling 1,2,4]

1. Renders synthetic 640×360 clips (25 fps and 10 fps sources) into a temporary folder.
2. Per core (OpenCV and FFmpeg limited to one thread; CPU time of this process):
   - decode only: ``cap.grab()`` of every frame (what a live stream costs even when dropped);
   - full pipeline: the camera worker on the file, analysing EVERY frame (decode + retrieve +
     resize + statistics + MOG2 + blobs + tracking + health + line counting);
   - cameras per core at 2 analysed fps = 1 / (source_fps × decode cost + 2 × analysis cost).
3. Threads vs processes: K workers on K files as fast as possible, aggregate frames per second
   of wall time, so the GIL's effect is visible (cv2 releases the GIL inside its functions).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.cameras.worker import CameraSpec, CameraWorker, Message, WorkerOptions  # noqa: E402
from sensors.camera_synth import SceneSpec, SyntheticCamera, standard_lines  # noqa: E402


def render(folder: Path, fps: float, seconds: float, seed: int = 1, kind: str = "clean") -> Path:
    """clean = the demo scene (mp4v); noisy = rain + strong sensor noise (mp4v, harder to
    decode); mjpg = every frame a JPEG (.avi), like many HTTP cameras."""
    ext = "avi" if kind == "mjpg" else "mp4"
    path = folder / f"bench_{kind}_{int(fps)}fps_{int(seconds)}s_{seed}.{ext}"
    spec = SceneSpec(seed=seed, fps=fps, duration_s=seconds)
    if kind == "noisy":
        spec = SceneSpec(seed=seed, fps=fps, duration_s=seconds, noise=6.0, rain=True)
    if not path.exists():
        SyntheticCamera(spec).write(path)
    return path


def decode_only(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    n = 0
    t0 = time.process_time()
    while cap.grab():
        n += 1
    cpu = time.process_time() - t0
    cap.release()
    return n, cpu


def pipeline(path: Path, analysis_fps: float) -> tuple[int, int, float]:
    """(frames received, frames analysed, CPU seconds) of one worker on the whole file."""
    received = analysed = 0

    def sink(m: Message) -> None:
        nonlocal received, analysed
        values = getattr(m, "values", None)
        if values:
            received += int(values["frames_received"])
            analysed += int(values["frames_analysed"])

    spec = CameraSpec(
        id="bench", ward="0", source=str(path), analysis_fps=analysis_fps, lines=standard_lines()
    )
    w = CameraWorker(spec, sink, threading.Event(), options=WorkerOptions(speed=0, base_ts=0.0))
    t0 = time.process_time()
    w.run()
    return received, analysed, time.process_time() - t0


def _job(path: str, out: object) -> None:
    cv2.setNumThreads(1)
    spec = CameraSpec(id="b", ward="0", source=path, analysis_fps=2.0, lines=standard_lines())
    w = CameraWorker(
        spec, lambda m: None, threading.Event(), options=WorkerOptions(speed=0, base_ts=0.0)
    )
    t0 = time.time()
    w.run()
    out.put((t0, time.time()))  # type: ignore[attr-defined]


def scaling(paths: list[Path], k: int, mode: str, frames_per_file: int) -> float:
    """Aggregate frames/s of k workers (2 analysed fps each) in threads or processes, timed
    inside the workers (process start-up and imports excluded)."""
    chosen = [str(paths[i % len(paths)]) for i in range(k)]
    if mode == "threads":
        import queue

        q: queue.Queue[tuple[float, float]] = queue.Queue()
        ts = [threading.Thread(target=_job, args=(p, q)) for p in chosen]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        spans = [q.get() for _ in chosen]
    else:
        ctx = mp.get_context("spawn")
        mq = ctx.Queue()
        ps = [ctx.Process(target=_job, args=(p, mq)) for p in chosen]
        for p in ps:
            p.start()
        spans = [mq.get() for _ in chosen]
        for p in ps:
            p.join()
        mq.close()
        mq.join_thread()
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    return k * frames_per_file / wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="clip length (default 60)")
    ap.add_argument("--scaling", default="1,2,4", help="worker counts for threads vs processes")
    ap.add_argument("--dir", help="folder for the clips (default: a temporary folder)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    tmp = tempfile.TemporaryDirectory(prefix="ioc-bench-cameras-")
    folder = Path(args.dir) if args.dir else Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"OpenCV {cv2.__version__}, clips {args.seconds:.0f} s at 640x360 in {folder}")
    # analysis cost: full pipeline with every frame analysed, minus decoding
    clean = render(folder, 25.0, args.seconds)
    n, cpu = decode_only(clean)
    rec, _, cpu_full = pipeline(clean, analysis_fps=25.0)
    analysis = max(cpu_full / rec - cpu / n, 1e-6)
    print(
        f"full pipeline, every frame analysed: {rec / cpu_full:.0f} frames/s per core"
        f" ({1000 * cpu_full / rec:.2f} ms/frame incl. decode; analysis alone"
        f" {1000 * analysis:.2f} ms)"
    )
    print("\nsource              decode/core   decode ms   cameras/core @2 analysed fps")
    for kind in ("clean", "noisy", "mjpg"):
        for fps in (25.0, 10.0):
            path = render(folder, fps, args.seconds, kind=kind)
            n, cpu = decode_only(path)
            grab = cpu / n
            cams = 1.0 / (fps * grab + 2.0 * analysis)
            label = f"{kind} {fps:.0f} fps"
            print(f"{label:18s} {n / cpu:10.0f}/s   {1000 * grab:8.3f}   {cams:8.0f}")
    rec2, ana2, cpu2 = pipeline(clean, analysis_fps=2.0)
    print(
        f"\nmeasured end to end (clean 25 fps, 2 fps analysis): {rec2} frames received,"
        f" {ana2} analysed in {cpu2:.2f} s CPU -> {args.seconds / cpu2:.0f} cameras per core"
    )
    ks = [int(x) for x in args.scaling.split(",") if x]
    if ks:
        secs = max(args.seconds, 300.0)
        paths = [render(folder, 10.0, secs, seed=s, kind="noisy") for s in (1, 2, 3, 4)]
        frames = round(secs * 10)
        print(
            f"\n== threads vs processes ({secs:.0f} s noisy 10 fps sources, 2 fps analysis,"
            " as fast as possible; frames/s of wall time, best of 3)"
        )
        print("workers   threads fr/s   processes fr/s")
        for k in ks:
            th = max(scaling(paths, k, "threads", frames) for _ in range(3))
            pr = max(scaling(paths, k, "processes", frames) for _ in range(3))
            print(f"{k:7d}   {th:12.0f}   {pr:14.0f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
