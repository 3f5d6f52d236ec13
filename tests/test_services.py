"""The suite's own servers start even when another process takes the port picked for them
between the probe and the bind (scripts/services.py)."""

import os
import socket
import subprocess

import redis

import scripts.services as services


def test_a_server_whose_port_was_taken_meanwhile_starts_on_another(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # someone else's server, on the port about to be handed to ours
    ports = iter([taken.getsockname()[1]])
    real_free_port = services.free_port
    monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        with services.RedisServer() as server:
            assert server.port != taken.getsockname()[1]
            assert redis.Redis.from_url(server.url).ping()
    finally:
        taken.close()


def test_a_process_that_is_gone_is_not_the_one_listening_on_a_port():
    """A server that exits because its port was taken, while its start is checked, must not pass
    for the one listening there: someone else is, and the start has to go again on a new port."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: /proc has nothing of it left
    try:
        assert not services._listens(gone.pid, taken.getsockname()[1])
        assert services._listens(os.getpid(), taken.getsockname()[1])
    finally:
        taken.close()
