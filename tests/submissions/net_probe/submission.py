"""Hostile: tries to reach a server on the host's loopback and a public address."""

import socket

from harness.api import Detection


class NetProbe:
    def __init__(self, port: int = 0) -> None:
        self.port = port

    def detect(self, model, clean):
        reached = []
        for host, port in (("127.0.0.1", self.port), ("1.1.1.1", 53)):
            try:
                with socket.create_connection((host, port), timeout=2):
                    reached.append(f"{host}:{port}")
            except OSError:
                pass
        return Detection(score=1.0 if reached else 0.0, extra={"reached": reached})
