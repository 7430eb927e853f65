"""The floor of a large transfer between two processes: 100 MiB over loopback TCP.

    python -m bench.channel [--mib 100] [--repeat 7]

A trio process sends the bytes to a process that ``recv_into``\\ s them,
then waits for a one-byte answer, the way a node serves a copy to another
(non-blocking ``os.write`` of what the socket takes, woken by the socket
becoming writable). Each way of sending is one row, timed from the first
write to the answer; the first repeat warms up and is left out of the
median:

- ``writes``: the bytes alone, as Ray and Dask send a value;
- ``writes+tag``: each piece tagged as it goes, with the transport's own
  :class:`~ownership.runtime.auth.FrameMac` (the receiver checks the tag
  the same way): what every frame of ours pays;
- ``writes+thread-tag``: the tag computed in a thread beside the writes;
- ``sendfile`` / ``sendfile+tag``: the bytes sent from a tmpfs file (a
  node's segment) with ``os.sendfile`` instead of written from memory,
  the tag then read from the file's mapping.

The remote get row (``ownership bench --rows remote_get``) moves the same
100 MiB with control messages around it; this is what it cannot go below.
"""

from __future__ import annotations

import argparse
import mmap
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Sequence

MODES = ("writes", "writes+tag", "writes+thread-tag", "sendfile", "sendfile+tag")
_KEY = bytes(range(32))


def _receiver(port: int, nbytes: int, repeat: int, tagged: bool) -> None:
    from ownership.runtime.auth import FrameMac

    mac = FrameMac(_KEY)
    sock = socket.create_connection(("127.0.0.1", port))
    view = memoryview(bytearray(nbytes))
    for _ in range(repeat):
        pieces = mac.begin()
        got = 0
        while got < nbytes:
            n = sock.recv_into(view[got:], min(nbytes - got, 1 << 20))
            if n == 0:
                raise SystemExit("the sender closed the connection early")
            if tagged:
                pieces.update(view[got : got + n])
            got += n
        sock.sendall(b"k")
    sock.close()


async def _send(mode: str, nbytes: int, repeat: int) -> list[float]:
    import trio

    from ownership.runtime.auth import FrameMac

    mac = FrameMac(_KEY)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_receiver, args=(listener.getsockname()[1], nbytes, repeat, "tag" in mode))
    proc.start()
    conn, _ = await listener.accept()
    with tempfile.NamedTemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as f:
        chunk = os.urandom(1 << 20)
        for _ in range(nbytes // len(chunk)):
            f.write(chunk)
        f.write(chunk[: nbytes % len(chunk)])
        f.flush()
        fd = f.fileno()
        with mmap.mmap(fd, nbytes, prot=mmap.PROT_READ) as mapped:
            data = memoryview(mapped) if mode.startswith("sendfile") else memoryview(bytearray(mapped))
            times: list[float] = []
            for _ in range(repeat):
                pieces = mac.begin()
                t0 = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    if mode == "writes+thread-tag":
                        nursery.start_soon(trio.to_thread.run_sync, pieces.update, data)
                    sent = 0
                    while sent < nbytes:
                        try:
                            if mode.startswith("sendfile"):
                                n = os.sendfile(conn.fileno(), fd, sent, nbytes - sent)
                            else:
                                n = os.write(conn.fileno(), data[sent:])
                        except BlockingIOError:
                            await trio.lowlevel.wait_writable(conn)
                            continue
                        if mode in ("writes+tag", "sendfile+tag"):
                            pieces.update(data[sent : sent + n])
                        sent += n
                pieces.tag()
                await conn.recv(1)
                times.append(time.perf_counter() - t0)
            data.release()
    conn.close()
    proc.join()
    return times


def main(argv: Sequence[str] | None = None) -> int:
    import trio

    parser = argparse.ArgumentParser(prog="python -m bench.channel", description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100, help="MiB per transfer (default 100)")
    parser.add_argument("--repeat", type=int, default=7, help="transfers per way of sending, the first a warm-up (default 7)")
    args = parser.parse_args(argv)
    if args.mib < 1 or args.repeat < 2:
        parser.error("--mib must be at least 1 and --repeat at least 2")
    nbytes = args.mib * 2**20
    print(f"{args.mib} MiB over loopback TCP, {os.cpu_count()} cores, medians of {args.repeat - 1}")
    for mode in MODES:
        times = trio.run(_send, mode, nbytes, args.repeat)[1:]
        ms = statistics.median(times) * 1e3
        print(f"  {mode:<18} {ms:7.1f} ms  {nbytes / (ms / 1e3) / 1e9:5.2f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
