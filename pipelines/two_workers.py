"""Multi-host training on one machine: N ``hvitgan-tf train`` processes joined by ``TF_CONFIG``
(docs/method.md §10), the rehearsal for N real hosts.

    python -m pipelines.two_workers --out runs/two-workers --preset tiny --steps 4
    python -m pipelines.two_workers --hosts gpu-a:2222,gpu-b:2222 --print-commands \\
        --out runs/pcam --data pcam-h5:/data/pcam --preset pcam96

Every option except ``--out`` and this module's own (``--workers``, ``--hosts``,
``--print-commands``) is passed to ``hvitgan-tf train`` unchanged. Each process gets
``TF_CONFIG = {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}``, so
``--strategy auto`` picks ``MultiWorkerMirroredStrategy`` and the runner's custom loop (Keras
``fit`` fails under that strategy: docs/keras3-notes.md §2.6). Worker 0 is the chief: it alone
writes the run folder (checkpoints, logs, samples) and the export; the others compute and sync.
On one machine all workers get the same ``--out``; on several hosts each host passes its own
path, and only the chief's matters (put it on storage that outlives the job).

The global batch (``--batch-size``) is split over the workers; a run with N workers computes
what one device computes with the same global batch (tests/training/test_distributed.py).
With ``--print-commands`` nothing is started: the per-host commands are printed instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from typing import List, Sequence

from hvitgan_tf.errors import UserError


def free_ports(count: int, host: str = "127.0.0.1") -> List[int]:
    """Ports the OS reports free now (a tiny race remains until the workers bind them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(workers: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (``host:port``)."""
    return json.dumps({"cluster": {"worker": list(workers)},
                       "task": {"type": "worker", "index": index}})


def train_command(out: str, train_args: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "hvitgan_tf.cli.main", "train", "--out", out, *train_args]


def _pump(stream, prefix: str, sink):
    for line in iter(stream.readline, ""):
        sink.write(f"{prefix} {line}")
        sink.flush()
    stream.close()


def launch(workers: Sequence[str], out: str, train_args: Sequence[str], *,
           timeout: float = None) -> List[int]:
    """Start one ``hvitgan-tf train`` per worker address, stream their output with a
    ``[worker i]`` prefix, wait; returns their exit codes. If one fails, the others (which
    would wait for it forever in the next collective) are stopped."""
    processes, pumps = [], []
    for index in range(len(workers)):
        env = {**os.environ, "TF_CONFIG": tf_config(workers, index)}
        process = subprocess.Popen(train_command(out, train_args), env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        pump = threading.Thread(target=_pump, args=(process.stdout, f"[worker {index}]",
                                                    sys.stdout), daemon=True)
        pump.start()
        pumps.append(pump)
    codes = [None] * len(processes)
    try:
        while None in codes:
            for index, process in enumerate(processes):
                if codes[index] is None:
                    try:
                        codes[index] = process.wait(timeout=1.0)
                    except subprocess.TimeoutExpired:
                        continue
                    if codes[index] != 0:
                        _stop(processes)
            if timeout is not None:
                timeout -= 1.0
                if timeout <= 0:
                    _stop(processes)
                    raise UserError("the workers did not finish in time; stopped them")
    except KeyboardInterrupt:
        _stop(processes)
        raise
    for pump in pumps:
        pump.join(timeout=5)
    return [process.wait() for process in processes]


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def make_parser():
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.two_workers", allow_abbrev=False,
        description="Run 'hvitgan-tf train' as a MultiWorkerMirroredStrategy cluster: one "
                    "process per worker on this machine, or print the per-host commands. "
                    "Other options go to 'hvitgan-tf train'.")
    parser.add_argument("--out", required=True, help="run folder (written by worker 0 only)")
    parser.add_argument("--workers", type=int, default=2,
                        help="workers to start on 127.0.0.1 (ignored with --hosts)")
    parser.add_argument("--hosts", help="host:port,host:port,... of the workers (first is "
                                        "the chief); default: --workers local ports")
    parser.add_argument("--print-commands", action="store_true",
                        help="print each worker's command instead of running them here")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before giving up")
    return parser


def main(argv=None):
    args, train_args = make_parser().parse_known_args(argv)
    try:
        if args.hosts:
            workers = [host.strip() for host in args.hosts.split(",") if host.strip()]
        else:
            if args.workers < 2:
                raise UserError("--workers must be at least 2 (one worker is plain "
                                "'hvitgan-tf train')")
            workers = [f"127.0.0.1:{port}" for port in free_ports(args.workers)]
        if len(workers) < 2:
            raise UserError("--hosts needs at least two host:port entries")
        if args.print_commands:
            for index in range(len(workers)):
                command = ["hvitgan-tf", "train", "--out", args.out, *train_args]
                print(f"# on {workers[index].rsplit(':', 1)[0]}"
                      f"{' (chief)' if index == 0 else ''}:")
                print(f"TF_CONFIG={shlex.quote(tf_config(workers, index))} "
                      + " ".join(shlex.quote(part) for part in command))
            return
        print(f"starting {len(workers)} workers ({', '.join(workers)}); worker 0 is the "
              f"chief and writes {args.out}", flush=True)
        codes = launch(workers, args.out, train_args, timeout=args.timeout)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if any(codes):
        print(f"Error: worker exit codes {codes}", file=sys.stderr)
        failed = next(code for code in codes if code)
        sys.exit(failed if failed > 0 else 1)  # a negative code is a signal
    print(f"all {len(workers)} workers finished; the run is in {args.out}")


if __name__ == "__main__":
    main()
