"""Student mistakes are the student's: each fails its tests with feedback naming the file and the fix.

Whatever goes wrong from the moment a driver asks for a student function until it returns (a
missing or misnamed function, a name bound to a value, a signature the course's call cannot bind
to, an exception raised with or without a line of the student's files on the stack, a wrong
return type, an import of the course's older layout) fails the test; hidden tests show only the
harness's first line.  "autograder error" is kept for faults of the harness itself.
"""
from __future__ import annotations

import ast
import importlib
import sys
import types
from dataclasses import dataclass

import pytest
import torch

from autograder.sandbox.calls import CALL_PHRASE, call_student, signature_of
from autograder.staff.corpus import expectation_problems, load_corpus
from autograder.errors import InvalidReturn, StudentCall
from autograder.sandbox.import_hints import import_hint
from autograder.q6.course import GRADED, OLDER_LAYOUTS, PACKAGE_EXPORTS, SAMPLE
from autograder.q6.drivers import as_array, as_float
from autograder.results import GradingResults, TestResult
from autograder.runner import grade
from autograder.sandbox.worker import export_from_package
from conftest import FIXTURES, REFERENCE, TEMPLATE

FAULTS = FIXTURES / "faults"
COURSE_SAMPLE = "sample(model, start_text, config, length, temperature=None, temperature_horizon=1)"
HIDDEN = ": run the public tests locally to see details"


def module_with(**names) -> types.ModuleType:
    module = types.ModuleType("submission.sample")
    module.__dict__.update(names)
    return module


def call_sample(module: types.ModuleType):
    """``sample`` called exactly as drive_sample calls it."""
    return call_student(module, SAMPLE, "model", "start", "config", 128, temperature=None, temperature_horizon=1)


# -- the course's signatures ------------------------------------------------------------------
@pytest.mark.parametrize("folder", [REFERENCE, TEMPLATE], ids=["reference", "template"])
def test_the_course_signatures_are_those_of_the_reference_and_the_template(folder):
    for expected in GRADED:
        tree = ast.parse((folder / expected.file).read_text())
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == expected.name]
        assert len(defs) == 1, f"{folder.name}/{expected.file} defines {expected.name} {len(defs)} times"
        assert signature_of(defs[0]) == expected.signature, f"{folder.name}/{expected.file}: {expected}"
    assert str(SAMPLE) == COURSE_SAMPLE


# -- call_student ---------------------------------------------------------------------------
def _exact(model, start_text, config, length, temperature=None, temperature_horizon=1):
    return "drawn"


def _extra_default(model, start_text, config, length, temperature=None, temperature_horizon=1, verbose=False):
    return "drawn"


def _star_args(*args, **kwargs):
    return "drawn"


def _keywords(model, start_text, config, length, **options):
    return "drawn"


class _CallableObject:
    def __call__(self, model, start_text, config, length, temperature=None, temperature_horizon=1):
        return "drawn"


@pytest.mark.parametrize("fn", [_exact, _extra_default, _star_args, _keywords, _CallableObject()],
                         ids=["course", "extra-default", "star-args", "keywords", "callable-object"])
def test_any_signature_the_course_call_binds_to_is_called(fn):
    assert call_sample(module_with(sample=fn)) == "drawn"


@pytest.mark.parametrize("params, why", [
    ("model, start_text, config", "too many positional arguments"),
    ("model, start_text, config, length, temperature=None", "got an unexpected keyword argument 'temperature_horizon'"),
    ("model, start_text, config, *, length, temperature=None, temperature_horizon=1", "too many positional arguments"),
])
def test_a_signature_the_course_call_cannot_bind_to_shows_both(params, why):
    namespace: dict = {}
    exec(f"def sample({params}):\n    raise AssertionError('never called')", namespace)
    with pytest.raises(StudentCall) as caught:
        call_sample(module_with(sample=namespace["sample"]))
    assert str(caught.value) == "sample.py cannot be called as the course's sample()"
    assert caught.value.detail == (f"sample.py: sample({params}) cannot be called as the course's {COURSE_SAMPLE} "
                                   f"({why}); give sample() the course's signature")
    assert caught.value.cause is None


def test_a_missing_function_is_named_with_the_nearest_name_defined():
    with pytest.raises(StudentCall) as caught:
        call_sample(module_with(sample_tokens=_exact, torch=None))
    assert str(caught.value) == "sample.py does not define sample()"
    assert caught.value.detail == ("sample.py defines sample_tokens, not sample: "
                                   f"define it as the course does, `def {COURSE_SAMPLE}:`")


def test_a_name_bound_to_a_value_is_not_a_function():
    with pytest.raises(StudentCall) as caught:
        call_sample(module_with(sample=3))
    assert str(caught.value) == "sample.py does not define sample() as a function"
    assert caught.value.detail.startswith("sample.py binds sample to an int, not a function")


def _raises(*args, **kwargs):
    raise ValueError("probabilities do not sum to 1")


def _exits(*args, **kwargs):
    raise SystemExit(0)


def _lookup_raises(name):
    raise RuntimeError("computed at lookup")


@pytest.mark.parametrize("module, phrase, cause", [
    (module_with(sample=_raises), "raised ValueError", ValueError),
    (module_with(sample=_exits), "called exit()", SystemExit),
    (module_with(__getattr__=_lookup_raises), "raised RuntimeError", RuntimeError),
    (module_with(sample=len), "cannot be called as the course's sample()", type(None)),
], ids=["raises", "exits", "lookup-raises", "builtin"])
def test_whatever_calling_student_code_raises_is_a_student_call(module, phrase, cause):
    with pytest.raises(StudentCall) as caught:
        call_sample(module)
    assert str(caught.value) == f"sample.py {phrase}"
    assert type(caught.value.cause) is cause


def test_every_first_line_call_student_writes_is_recognised_as_the_harness_s():
    for phrase in ("does not define sample()", "does not define sample() as a function",
                   "cannot be called as the course's temperature_scale()"):
        assert CALL_PHRASE.fullmatch(phrase)
    assert not CALL_PHRASE.fullmatch("cannot be called as the course's sample(): LEAK-1024")


# -- wrong returns ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, why", [
    (torch.zeros(1, 3, dtype=torch.long).to_sparse(), "can't convert Sparse layout tensor to numpy"),
    (torch.empty(1, 3, dtype=torch.long, device="meta"), "Cannot copy out of meta tensor"),
], ids=["sparse", "meta"])
def test_a_tensor_whose_values_cannot_be_read_is_a_wrong_return(value, why):
    with pytest.raises(InvalidReturn) as caught:
        as_array(value, "sample()", integer=True)
    message = str(caught.value)
    assert message.startswith(f"sample() returned a Tensor of shape (1, 3) and dtype torch.int64 whose values cannot "
                              f"be read ({why}"), message
    assert message.endswith("; it must return a dense torch.Tensor on the CPU"), message


def test_a_number_on_the_meta_device_is_a_wrong_return():
    with pytest.raises(InvalidReturn, match=r"log_likelihood\(\) returned a Tensor .* cannot be read"):
        as_float(torch.empty(1, device="meta"), "log_likelihood()")


# -- import hints -----------------------------------------------------------------------------
def failed_import(tmp_path, monkeypatch, files: dict[str, str], module: str = "classifier") -> str:
    """The hint for importing ``submission.<module>`` from a package holding ``files``."""
    package = tmp_path / "submission"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        export_from_package(importlib.import_module("submission"), PACKAGE_EXPORTS)  # as a worker does
        importlib.import_module(f"submission.{module}")
    except ImportError as exc:
        return import_hint(exc, package.resolve(), OLDER_LAYOUTS)
    finally:
        for name in [n for n in sys.modules if n == "submission" or n.startswith("submission.")]:
            del sys.modules[name]
    raise AssertionError(f"submission.{module} imported")


LIKELIHOOD = "def log_likelihood(model, text):\n    return 0.0\n"


@pytest.mark.parametrize("statement, files, hint", [
    ("from questions.likelihood import log_likelihood", {"likelihood.py": LIKELIHOOD},
     "classifier.py imports questions.likelihood (the course's older layout); "
     "import it as `from submission.likelihood import log_likelihood`"),
    ("from hw1.likelihood import (\n    log_likelihood,\n)", {"likelihood.py": LIKELIHOOD},
     "classifier.py imports hw1.likelihood, which does not exist here; "
     "import it as `from submission.likelihood import log_likelihood`"),
    ("import questions.likelihood as ll", {"likelihood.py": LIKELIHOOD},
     "classifier.py imports questions.likelihood (the course's older layout); "
     "import it as `from submission import likelihood`"),
    ("from submission import log_prob", {"likelihood.py": LIKELIHOOD + "def log_prob(x):\n    return x\n"},
     "classifier.py imports log_prob from the package submission, which re-exports only the course's functions; "
     "import from the file that defines it: `from submission.likelihood import log_prob`"),
    ("from submission.likelihood import log_likelihood", {},
     "classifier.py imports submission.likelihood, but likelihood.py was not uploaded: upload it with classifier.py"),
    ("import transformers_not_installed", {},
     "classifier.py imports transformers_not_installed: no such module is installed, and the submission has no "
     "transformers_not_installed.py"),
], ids=["older-layout", "other-package-multiline", "older-layout-import", "package-init", "not-uploaded",
        "not-installed"])
def test_an_import_that_fails_gets_the_statement_to_write(tmp_path, monkeypatch, statement, files, hint):
    assert failed_import(tmp_path, monkeypatch, {"classifier.py": f"{statement}\n", **files}) == hint


def test_an_import_error_raised_by_other_code_gets_no_hint(tmp_path, monkeypatch):
    raising = "raise ImportError('no GPU here')\n"
    assert failed_import(tmp_path, monkeypatch, {"classifier.py": raising}) == ""


# -- no submission makes the harness fault ----------------------------------------------------
def test_a_test_that_could_not_be_graded_contradicts_any_manifest_verdict():
    entry = next(e for e in load_corpus().entries if e.correct and e.file == "likelihood.py")
    results = GradingResults(tests=[TestResult(
        name="6d-0-basic: log-likelihood", points=2.0, score=0.0, passed=False, test_id="6d-0-basic",
        harness_fault=True, output="autograder error: this test could not be graded; course staff have the details.")])
    problems = expectation_problems(entry, results, frozenset({"6d-0-basic"}))
    assert problems and problems[0].startswith("the harness faulted: 6d-0-basic: autograder error"), problems


@dataclass(frozen=True)
class Fault:
    fixture: str       # tests/fixtures/faults/<fixture>.py replaces the reference's file it is named after
    public: str
    hidden: str
    first_line: str    # the harness's line: all a hidden test shows of it
    feedback: str      # what the public test adds: the file and the fix


STUDENT_FAULTS = [
    Fault("sample_older_signature", "6c-0-basic", "6c-2-hidden", "sample.py cannot be called as the course's sample()",
          f"sample.py: sample(model, start_text, config) cannot be called as the course's {COURSE_SAMPLE} "
          "(too many positional arguments); give sample() the course's signature"),
    Fault("sample_not_a_function", "6c-0-basic", "6c-2-hidden", "sample.py does not define sample() as a function",
          f"sample.py binds sample to an int, not a function: define it as the course does, `def {COURSE_SAMPLE}:`"),
    Fault("likelihood_missing_function", "6d-0-basic", "6d-1-hidden", "likelihood.py does not define log_likelihood()",
          "likelihood.py defines loglikelihood, not log_likelihood: define it as the course does, "
          "`def log_likelihood(model, text):`"),
    Fault("classifier_older_layout", "6e-0-basic", "6e-1-hidden", "classifier.py failed to import: ModuleNotFoundError",
          "classifier.py imports questions.likelihood (the course's older layout); "
          "import it as `from submission.likelihood import log_likelihood`"),
    Fault("sample_torch_type_error", "6c-0-basic", "6c-2-hidden", "sample.py raised TypeError",
          'File "sample.py", line 10, in sample\n    token = torch.multinomial(probs, num_samples="1")\n'
          "TypeError: multinomial(): argument 'num_samples' must be int, not str"),
    Fault("likelihood_library_function", "6d-0-basic", "6d-1-hidden", "likelihood.py raised TypeError",
          "(raised in library code, with no line of likelihood.py on the stack: check what log_likelihood is bound to "
          "and the arguments your code passes to library functions)\n"
          "TypeError: cross_entropy_loss(): argument 'input' (position 1) must be Tensor"),
    Fault("likelihood_wrong_return", "6d-0-basic", "6d-1-hidden",
          "likelihood.py returned a value that cannot be graded",
          "log_likelihood() returned a list; it must return a Python float"),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault", STUDENT_FAULTS, ids=lambda f: f.fixture)
def test_a_student_mistake_fails_its_tests_with_the_file_and_the_fix(fault, submission_from):
    replaced = fault.fixture.split("_", 1)[0] + ".py"
    results, _ = grade(submission_from({replaced: FAULTS / f"{fault.fixture}.py"}),
                       only=frozenset({fault.public, fault.hidden}))
    assert not [t.name for t in results.harness_faults]
    tests = {t.test_id or t.name: t for t in results.tests}
    assert set(tests) == {fault.public, fault.hidden}, "only the graded tests: no autograder-error test"
    assert all(not t.passed and t.score == 0 for t in tests.values())
    public = tests[fault.public].output
    assert public.startswith(fault.first_line + "\n") and fault.feedback in public, public
    assert tests[fault.hidden].output == fault.first_line.split(":", 1)[0] + HIDDEN


@pytest.mark.slow
def test_a_fault_of_a_driver_before_the_student_call_is_an_autograder_error(monkeypatch, submission_from):
    from autograder.q6.testcase import Q6TestCase

    def shape_of_a_malformed_request(t):
        t.student("sample", {"prompts": []})  # no model named: drive_sample fails before calling sample()

    monkeypatch.setattr(Q6TestCase, "check_sample_shape", shape_of_a_malformed_request)
    results, _ = grade(submission_from(), only=frozenset({"6c-0-basic", "6d-0-basic"}))
    tests = {t.test_id or t.name: t for t in results.tests}
    could_not = "autograder error: this test could not be graded; course staff have the details."
    assert tests["6c-0-basic"].output == could_not
    assert tests["6c-0-basic"].score == 0 and tests["6d-0-basic"].passed
    staff = tests["autograder error (staff detail)"]
    assert staff.visibility == "hidden" and "KeyError: 'model'" in staff.output and "drive_sample" in staff.output


def test_the_package_re_exports_the_courses_functions_as_its_init_does(tmp_path, monkeypatch):
    """``from submission import log_likelihood`` works as with the course's package __init__."""
    files = {"classifier.py": "from submission import log_likelihood\n", "likelihood.py": LIKELIHOOD}
    with pytest.raises(AssertionError, match="imported"):
        failed_import(tmp_path, monkeypatch, files)
