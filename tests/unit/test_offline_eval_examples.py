"""The docstring examples of the offline evaluation package run."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module_name", ["offline_eval.evaluate"])
def test_docstring_examples_run(module_name):
    # The package exports a function named evaluate, which shadows the
    # submodule as an attribute, so the module is looked up by name.
    module = importlib.import_module(module_name)
    failures, tried = doctest.testmod(module, raise_on_error=False)
    assert tried > 0
    assert failures == 0
