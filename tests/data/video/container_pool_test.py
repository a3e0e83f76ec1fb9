import pytest

from keras_cbm.data.video.container_pool import DECODER_FRAMES
from keras_cbm.data.video.container_pool import TABLE_BYTES_PER_FRAME
from keras_cbm.data.video.container_pool import ContainerPool
from keras_cbm.data.video.container_pool import idle_bytes
from tests.data.video.index_videos import SIZE
from tests.data.video.index_videos import write_video

UNBOUNDED = 2**40


@pytest.fixture()
def paths(tmp_path):
    return [write_video(str(tmp_path / name), 6) for name in ("a.mp4", "b.avi")]


def test_an_idle_container_is_reused_and_the_oldest_closed(paths):
    pool = ContainerPool(max_files=1, max_bytes=UNBOUNDED)
    with pool.open(paths[0]) as (first, _):
        with pool.open(paths[0]) as (second, _):
            assert second is not first  # In use: another one.
    with pool.open(paths[0]) as (again, _):
        assert again in (first, second)
    with pool.open(paths[1]) as (other, _):
        assert other not in (first, second)
    assert len(pool.idle) == 1


def test_idle_containers_are_bounded_by_their_estimated_memory(paths):
    with ContainerPool(1, UNBOUNDED).open(paths[0]) as (_, stream):
        mp4_bytes = idle_bytes(stream)
    # The MP4 counts its frames: its sample table counts too.
    frame_bytes = SIZE * SIZE * 3 // 2
    assert mp4_bytes == DECODER_FRAMES * frame_bytes + 6 * TABLE_BYTES_PER_FRAME
    pool = ContainerPool(max_files=10, max_bytes=mp4_bytes)
    with pool.open(paths[0]) as (mp4, _):
        pass
    with pool.open(paths[1]) as (avi, _):
        pass
    assert list(pool.idle.values()) == [(avi, avi.streams.video[0])]
    # Alone, a container above the bound is still kept.
    pool = ContainerPool(max_files=10, max_bytes=1)
    with pool.open(paths[0]) as (mp4, _):
        pass
    assert len(pool.idle) == 1


def test_a_failed_reader_closes_its_container(paths):
    pool = ContainerPool(max_files=2, max_bytes=UNBOUNDED)
    with pytest.raises(RuntimeError):
        with pool.open(paths[0]):
            raise RuntimeError("decoding failed")
    assert not pool.idle


def test_a_changed_file_is_opened_again(paths):
    pool = ContainerPool(max_files=2, max_bytes=UNBOUNDED)
    with pool.open(paths[0]) as (first, _):
        pass
    write_video(paths[0], 9)
    with pool.open(paths[0]) as (second, stream):
        assert second is not first and stream.frames == 9
