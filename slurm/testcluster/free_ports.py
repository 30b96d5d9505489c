#!/usr/bin/env python
"""Print a base port P with P+OFFSET free on 127.0.0.1 for every OFFSET given (default 0 1 2 3), for a private
test cluster: slurmctld P, slurmd P+1 (node i: P+1+10*(i-1)), slurmdbd P+2, MariaDB P+3 (start.sh's knobs).

    python slurm/testcluster/free_ports.py            # four ports
    python slurm/testcluster/free_ports.py 0 1 2 3 11 # and a second node's slurmd
"""
from __future__ import annotations

import random
import socket
import sys


def free_base_port(offsets: tuple[int, ...] = (0, 1, 2, 3), low: int = 12000, high: int = 29000) -> int:
    for _ in range(200):
        base = random.randrange(low, high)
        try:
            for offset in offsets:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no base port in {low}-{high} with ports +{', +'.join(map(str, offsets))} free on 127.0.0.1")


if __name__ == "__main__":
    print(free_base_port(tuple(int(a) for a in sys.argv[1:]) or (0, 1, 2, 3)))
