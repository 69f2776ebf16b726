"""Each failure raises the class of its CLI exit status, with the CLI's message."""

import numpy as np
import pytest

import cpipc


def test_a_missing_segment_is_not_found(name):
    with pytest.raises(cpipc.NotFound, match="no segment named"):
        cpipc.attach(name)
    with pytest.raises(cpipc.NotFound):
        cpipc.remove(name)
    assert cpipc.NotFound.exit_status == 3 and issubclass(cpipc.NotFound, cpipc.Error)


def test_a_bad_name_is_bad_input():
    with pytest.raises(cpipc.BadInput, match="invalid segment name"):
        cpipc.attach("no spaces/here")


@pytest.mark.parametrize("array", [np.zeros((5, 4), np.uint16), np.zeros((4, 5), np.uint8),
                                   np.zeros((10, 4), np.uint8)[::2], [[0] * 4] * 5])
def test_publishing_another_shape_dtype_or_layout_is_bad_input(name, array):
    with cpipc.Publisher(name, shape=(5, 4), dtype=np.uint8) as pub:
        with pytest.raises(cpipc.BadInput):
            pub.publish(array)
        assert pub.publish(np.zeros((5, 4), np.uint8))["frame_id"] == 1


def test_a_dtype_a_segment_cannot_hold_is_bad_input(name):
    for dtype in ["complex64", ">u2", "U4"]:
        with pytest.raises(cpipc.BadInput):
            cpipc.Publisher(name, shape=(2,), dtype=dtype)


def test_a_name_already_taken_is_an_error(name):
    with cpipc.Publisher(name, shape=(2,), dtype="uint8"):
        with pytest.raises(cpipc.Error, match="exists"):
            cpipc.Publisher(name, shape=(2,), dtype="uint8")


def test_list_segments_shows_a_publisher_and_remove_unlinks_it(name):
    pub = cpipc.Publisher(name, shape=(3, 2), dtype="int16", slots=2)
    entry = next(d for d in cpipc.list_segments() if d["name"] == name)
    assert entry["shape"] == (3, 2) and entry["dtype"] == "int16" and entry["slots"] == 2
    assert entry["state"] == "live" and entry["producer_alive"]
    cpipc.remove(name)
    assert name not in [d["name"] for d in cpipc.list_segments()]
    pub.close()  # its own unlink finds nothing: fine
