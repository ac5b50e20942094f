"""tools/azurite.py's two modes, through the real queue SDK: on disk (the tests, `make run`) a
message is written under the location given; in memory (bench/notifications.py, which measures a
tail latency that Azurite's 5-second saves would distort) nothing is written anywhere, neither
under the location nor in Azurite's working directory, its default location."""

from __future__ import annotations

import pytest

from tools.azurite import start_azurite


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.mark.parametrize("in_memory", [False, True], ids=["on-disk", "in-memory"])
def test_a_queued_message_is_kept_where_the_mode_says(tmp_path, monkeypatch, in_memory: bool) -> None:
    from azure.storage.queue import QueueClient

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    location = tmp_path / "azurite"
    azurite = start_azurite(location, in_memory=in_memory)
    try:
        queue = QueueClient.from_connection_string(azurite.connection_string, "modes")
        queue.create_queue()
        queue.send_message("kept")
        assert [message.content for message in queue.receive_messages()] == ["kept"]
        written = files_under(location) + files_under(workdir)
    finally:
        azurite.stop()
    if in_memory:
        assert written == []
    else:
        assert any("queue" in name for name in written), written
