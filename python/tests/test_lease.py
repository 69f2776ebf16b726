"""A lease is a read-only view into the segment, without a copy."""

import numpy as np
import pytest

import cpipc


def test_two_leases_of_one_frame_share_memory_and_are_read_only(name):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    with cpipc.Publisher(name, shape=data.shape, dtype=data.dtype) as pub, cpipc.attach(name) as seg:
        pub.publish(data)
        with seg.lease() as a, seg.lease() as b:
            assert np.shares_memory(a, b)  # both point into the one mapping: no copy
            assert not a.flags.writeable
            with pytest.raises(ValueError):
                a[0, 0] = 1
            assert (a == data).all()


def test_a_lease_is_valid_until_the_producer_takes_its_slot_back(name):
    with cpipc.Publisher(name, shape=(4,), dtype="int32", slots=1) as pub, cpipc.attach(name) as seg:
        pub.publish(np.arange(4, dtype=np.int32))
        lease = seg.lease()
        with lease as view:
            assert lease.valid() and view.tolist() == [0, 1, 2, 3]
            pub.publish(np.zeros(4, np.int32))  # one slot: the producer overwrites it anyway
            assert not lease.valid()
        assert not lease.valid()


def test_a_lease_view_outlives_its_segment_object_without_crashing(name):
    with cpipc.Publisher(name, shape=(16,), dtype="float64") as pub:
        pub.publish(np.ones(16))
        seg = cpipc.attach(name)
        lease = seg.lease()
        view = lease.view
        seg.close()
        del lease
        assert view.sum() == 16.0  # the mapping lives as long as the view
