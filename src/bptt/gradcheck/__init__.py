"""Gradient checking: the numerical checker (``numerical``) and the catalogue of every layer's
gradients that ``bptt gradcheck`` runs (``catalogue``)."""

from bptt.gradcheck.numerical import (
    CheckResult,
    check_function,
    check_loss,
    numerical_gradient,
    numerical_gradient_scalar,
    rel_error,
)

__all__ = [
    "CheckResult",
    "check_function",
    "check_loss",
    "numerical_gradient",
    "numerical_gradient_scalar",
    "rel_error",
]
