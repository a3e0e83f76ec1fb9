import pytest

from keras_cbm.data.container_pool import ContainerPool
from tests.data.video_files import write_video


@pytest.fixture()
def paths(tmp_path):
    return [write_video(str(tmp_path / name), 6) for name in ("a.mp4", "b.avi")]


def test_an_idle_container_is_reused_and_the_oldest_closed(paths):
    pool = ContainerPool(size=1)
    with pool.open(paths[0]) as (first, _):
        with pool.open(paths[0]) as (second, _):
            assert second is not first  # In use: another one.
    with pool.open(paths[0]) as (again, _):
        assert again in (first, second)
    with pool.open(paths[1]) as (other, _):
        assert other not in (first, second)
    assert len(pool.idle) == 1


def test_a_failed_reader_closes_its_container(paths):
    pool = ContainerPool(size=2)
    with pytest.raises(RuntimeError):
        with pool.open(paths[0]):
            raise RuntimeError("decoding failed")
    assert not pool.idle


def test_a_changed_file_is_opened_again(paths):
    pool = ContainerPool(size=2)
    with pool.open(paths[0]) as (first, _):
        pass
    write_video(paths[0], 9)
    with pool.open(paths[0]) as (second, stream):
        assert second is not first and stream.frames == 9
