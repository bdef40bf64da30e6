"""The public ("-basic") tests of question 6: students see their full feedback and run them at home."""
from autograder.q6 import checks
from autograder.q6.checks import SamplerScenario
from autograder.q6.testcase import Q6TestCase
from autograder.testing import graded


class TestPublic(Q6TestCase):
    @graded("6c-0-basic")
    def test_6c_0_basic(self):
        self.report(checks.sample_shape(self, "default", prompt_len=10, length=128))

    @graded("6c-1-basic")
    def test_6c_1_basic(self):
        scenario = SamplerScenario(model="default", runs=16, prompt_len=10, length=32)
        self.report(checks.sampler_law(self, scenario, self.models))

    @graded("6d-0-basic")
    def test_6d_0_basic(self):
        self.report(checks.log_likelihood_values(self, "default", self.random_texts([10]), self.models))

    @graded("6e-0-basic")
    def test_6e_0_basic(self):
        texts, labels = self.snippets(n_random=3, n_natural=4)
        self.report(checks.classification_labels(self, "text", texts, labels))

    @graded("6f-0-basic")
    def test_6f_0_basic(self):
        self.report(checks.temperature_law(self, "default", n_prompts=4, prompt_len=10, temperature=0.5,
                                           horizon=1, models=self.models))

    @graded("6f-1-basic")
    def test_6f_1_basic(self):
        scenario = SamplerScenario(model="default", runs=16, prompt_len=10, length=32, temperature=0.95)
        self.report(checks.sampler_law(self, scenario, self.models))

    @graded("6h-0-basic")
    def test_6h_0_basic(self):
        self.report(checks.temperature_law(self, "default", n_prompts=2, prompt_len=10, temperature=0.95,
                                           horizon=2, models=self.models))
