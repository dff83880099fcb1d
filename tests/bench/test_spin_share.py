#!/usr/bin/env python3
"""Unit tests of bench/spin_share.py's classification on hand-made perf script lines.

  python3 tests/bench/test_spin_share.py      (ctest runs it as spin_share_tool)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import spin_share as ss  # noqa: E402

GOMP = "7f00 gomp_barrier_wait_end (/usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0)"


def line(tid, t, text):
    return f"{tid} {t:.6f}:  {text}\n"


class Classify(unittest.TestCase):
    def test_each_class_and_the_symbols(self):
        lines = [
            # thread 1 waits while thread 2 is in a Winograd transform: imbalance
            line(1, 1.0000, GOMP), line(2, 1.0001, "4a00 inq::(anonymous namespace)::input_chunk<4> (/x/inq)"),
            # thread 1 waits while thread 2 is in the optimizer: a serial section
            line(1, 1.0100, GOMP), line(2, 1.0101, "4b00 inq::Sgd::step (/x/inq)"),
            # both wait
            line(1, 1.0200, GOMP), line(2, 1.0200, GOMP),
            # thread 1 works; thread 2 has no sample within the window of this one of thread 1's waits
            line(1, 1.0300, "4c00 inq::(anonymous namespace)::dot_block<4, 4> (/x/inq)"),
            line(1, 1.0500, GOMP), line(2, 1.0600, "4d00 inq::relu_backward (/x/inq)"),
        ]
        by_tid = {r[0]: r for r in ss.analyze(lines)}
        tid, n, classes, imbalance, serial = by_tid[1]
        self.assertEqual(n, 5)
        self.assertEqual(classes["other thread in a parallel kernel (imbalance)"], 1)
        self.assertEqual(classes["other thread in other code (serial section)"], 1)
        self.assertEqual(classes["both waiting"], 1)
        self.assertEqual(classes["other thread: no sample nearby"], 1)
        self.assertEqual(imbalance, {"inq::(anonymous namespace)::input_chunk<4>": 1})
        self.assertEqual(serial, {"inq::Sgd::step": 1})
        # thread 2 waited once, while thread 1 waited too
        self.assertEqual(by_tid[2][2]["both waiting"], 1)

    def test_one_thread_is_refused(self):
        with self.assertRaises(ValueError):
            ss.analyze([line(1, 1.0, GOMP)])


if __name__ == "__main__":
    unittest.main()
