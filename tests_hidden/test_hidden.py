"""The hidden ("-hidden") tests of question 6: students see pass/fail and a one-line hint.

Each test's body names its checks; their inputs are the test's ``params`` in assignment.yml, the answers
are fetched by autograder/q6/testcase.py and judged by autograder/q6/judge.py.
"""
from autograder.q6.testcase import Q6TestCase
from autograder.testing import graded


class TestHidden(Q6TestCase):
    @graded("6c-2-hidden")
    def test_6c_2_hidden(self):
        self.check_sampler_law()

    @graded("6d-1-hidden")
    def test_6d_1_hidden(self):
        self.check_log_likelihood()

    @graded("6d-2-hidden")
    def test_6d_2_hidden(self):
        self.check_log_likelihood()

    @graded("6d-3-hidden")
    def test_6d_3_hidden(self):
        self.check_log_likelihood()

    @graded("6e-1-hidden")
    def test_6e_1_hidden(self):
        self.check_classification()

    @graded("6f-2-hidden")
    def test_6f_2_hidden(self):
        self.check_temperature_scale()
        self.check_sampler_law()

    @graded("6h-1-hidden")
    def test_6h_1_hidden(self):
        self.check_temperature_scale()
        self.check_sampler_law()
