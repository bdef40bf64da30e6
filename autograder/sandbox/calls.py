"""Calling a submission's function from a driver: the lookup, the signature check and the call.

Everything that goes wrong from the moment a driver asks for a student function until that
function returns is the student's: a missing name, a name bound to something that cannot be
called, a signature the driver's arguments do not bind to, and anything the call raises
(``SystemExit`` included), even from inside a library with no line of the student's files on
the stack.  ``call_student`` turns each into a ``StudentCall``; the worker reports it as a
crash.  Faults in a driver's own code before or after the call stay faults of the harness.

A ``StudentCall``'s first line is written here from the function's name alone (what hidden
tests show); ``CALL_PHRASE`` is how the harness side recognises those lines.
"""
from __future__ import annotations

import ast
import difflib
import inspect
import re
from dataclasses import dataclass
from types import ModuleType

from autograder.errors import StudentCall

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,60}"
# The first lines (after the file's name) that call_student writes.
CALL_PHRASE = re.compile(rf"does not define {_NAME}\(\)( as a function)?|cannot be called as the course's {_NAME}\(\)")
SHOWN_CHARS = 300   # the longest signature of the student's quoted back
_ABSENT = object()


@dataclass(frozen=True)
class Expected:
    """A function the assignment asks for: the file that defines it, its name and its signature."""

    file: str
    name: str
    signature: inspect.Signature

    @classmethod
    def parse(cls, file: str, text: str) -> "Expected":
        """From the course's own spelling, e.g. ``"f(model, text)"``."""
        try:
            node = ast.parse(f"def {text}: pass").body[0]
        except SyntaxError as exc:
            raise ValueError(f"{text!r} is not a function signature: {exc.msg}") from None
        return cls(file, node.name, signature_of(node))

    def __str__(self) -> str:
        return f"{self.name}{self.signature}"


def signature_of(node: ast.FunctionDef) -> inspect.Signature:
    """The signature a ``def`` node declares, for parameters with literal defaults."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + list(args.defaults)
    kind = inspect.Parameter
    params = [kind(a.arg, kind.POSITIONAL_ONLY if i < len(args.posonlyargs) else kind.POSITIONAL_OR_KEYWORD,
                   default=d if d is kind.empty else ast.literal_eval(d))
              for i, (a, d) in enumerate(zip(positional, defaults))]
    if args.vararg:
        params.append(kind(args.vararg.arg, kind.VAR_POSITIONAL))
    params += [kind(a.arg, kind.KEYWORD_ONLY, default=kind.empty if d is None else ast.literal_eval(d))
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        params.append(kind(args.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(params)


def raised_phrase(exc: BaseException) -> str:
    """The first line's words for an exception of student code: its type's name, nothing of its message."""
    return "called exit()" if isinstance(exc, SystemExit) else f"raised {type(exc).__name__}"


def call_student(module: ModuleType, expected: Expected, *args, **kwargs):
    """``expected.name`` of the student's ``module`` called with exactly these arguments.

    Raises ``StudentCall`` when the name is missing or not callable, when its signature cannot
    take these arguments (both signatures are shown), or when the call raises anything.
    """
    try:  # looking the function up and reading its signature may run student code too
        fn = getattr(module, expected.name, _ABSENT)
        problem = _problem(module, fn, expected, args, kwargs)
    except BaseException as exc:  # noqa: BLE001 - whatever student code raises is the student's
        raise StudentCall(expected.file, expected.name, raised_phrase(exc), cause=exc) from None
    if problem is not None:
        raise StudentCall(expected.file, expected.name, *problem)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included
        raise StudentCall(expected.file, expected.name, raised_phrase(exc), cause=exc) from None


def _problem(module: ModuleType, fn, expected: Expected, args: tuple, kwargs: dict) -> tuple[str, str] | None:
    """(first line, detail) of why ``fn`` cannot be called as the course calls it, or None."""
    name, file = expected.name, expected.file
    if fn is _ABSENT:
        near = difflib.get_close_matches(name, [n for n in dir(module) if not n.startswith("_")], n=1)
        found = f"defines {near[0]}, not {name}" if near else f"has no function {name}"
        return f"does not define {name}()", f"{file} {found}: define it as the course does, `def {expected}:`"
    if not callable(fn):
        kind = type(fn).__name__
        return (f"does not define {name}() as a function",
                f"{file} binds {name} to {'an' if kind[:1] in 'aeiou' else 'a'} {kind}, not a function: "
                f"define it as the course does, `def {expected}:`")
    try:
        theirs = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # no signature to read (some builtins): the call itself will tell
    try:
        theirs.bind(*args, **kwargs)
    except TypeError as exc:
        shown = str(theirs)
        shown = shown if len(shown) <= SHOWN_CHARS else shown[:SHOWN_CHARS] + "...)"
        return (f"cannot be called as the course's {name}()",
                f"{file}: {name}{shown} cannot be called as the course's {expected} ({exc}); "
                f"give {name}() the course's signature")
    return None
