"""The public ("-basic") tests of question 6: students see their full feedback and run them at home.

Each test's body names its checks; their inputs are the test's ``params`` in assignment.yml, the answers
are fetched by autograder/q6/testcase.py and judged by autograder/q6/judge.py.
"""
from autograder.q6.testcase import Q6TestCase
from autograder.testing import graded


class TestPublic(Q6TestCase):
    @graded("6c-0-basic")
    def test_6c_0_basic(self):
        self.check_sample_shape()

    @graded("6c-1-basic")
    def test_6c_1_basic(self):
        self.check_sampler_law()

    @graded("6d-0-basic")
    def test_6d_0_basic(self):
        self.check_log_likelihood()

    @graded("6e-0-basic")
    def test_6e_0_basic(self):
        self.check_classification()

    @graded("6f-0-basic")
    def test_6f_0_basic(self):
        self.check_temperature_scale()

    @graded("6f-1-basic")
    def test_6f_1_basic(self):
        self.check_sampler_law()

    @graded("6h-0-basic")
    def test_6h_0_basic(self):
        self.check_temperature_scale()
