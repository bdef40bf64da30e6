"""The hidden ("-hidden") tests of question 6: students see pass/fail and a one-line hint."""
from autograder.q6 import checks
from autograder.q6.checks import SamplerScenario
from autograder.q6.testcase import Q6TestCase
from autograder.testing import graded


class TestHidden(Q6TestCase):
    @graded("6c-2-hidden")
    def test_6c_2_hidden(self):
        scenario = SamplerScenario(model="alternate", runs=12, prompt_len=23, length=40)
        self.report(checks.sampler_law(self, scenario, self.models))

    @graded("6d-1-hidden")
    def test_6d_1_hidden(self):
        self.report(checks.log_likelihood_values(self, "alternate", self.random_texts([2, 2, 3]), self.models))

    @graded("6d-2-hidden")
    def test_6d_2_hidden(self):
        self.report(checks.log_likelihood_values(self, "default", self.random_texts([1024, 517]), self.models))

    @graded("6d-3-hidden")
    def test_6d_3_hidden(self):
        texts, _ = self.snippets(n_random=2, n_natural=4)
        self.report(checks.log_likelihood_values(self, "text", texts, self.models))

    @graded("6e-1-hidden")
    def test_6e_1_hidden(self):
        texts, labels = self.snippets(n_random=20, n_natural=40)
        self.report(checks.classification_labels(self, "text", texts, labels))

    @graded("6f-2-hidden")
    def test_6f_2_hidden(self):
        direct = checks.temperature_law(self, "alternate", n_prompts=3, prompt_len=17, temperature=1.7,
                                        horizon=1, models=self.models)
        if not direct.passed:
            self.report(direct)
        scenario = SamplerScenario(model="alternate", runs=12, prompt_len=7, length=40, temperature=0.6)
        self.report(checks.sampler_law(self, scenario, self.models))

    @graded("6h-1-hidden")
    def test_6h_1_hidden(self):
        direct = checks.temperature_law(self, "alternate", n_prompts=2, prompt_len=12, temperature=0.8,
                                        horizon=2, models=self.models)
        if not direct.passed:
            self.report(direct)
        scenario = SamplerScenario(model="default", runs=6, prompt_len=8, length=4, temperature=0.9, horizon=2)
        self.report(checks.sampler_law(self, scenario, self.models))
