import socket

import pytest


@pytest.fixture
def offline(monkeypatch):
    """Makes any network connection fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("The dataset build tried to use the network.")

    monkeypatch.setattr(socket.socket, "connect", refuse)
