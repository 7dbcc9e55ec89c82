"""The project's packaging metadata, as a fresh `pip install` reads it."""

from __future__ import annotations

import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_is_read_without_deprecation_warnings() -> None:
    # A fresh install builds with the newest setuptools, which warns (three times, on every
    # install) about metadata written in a form it has deprecated.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.metadata.get_name() == "opsplane"
    assert dist.metadata.license_expression == "Apache-2.0"
