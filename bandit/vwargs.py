"""Allowlist of Vowpal Wabbit arguments a policy's configuration may add.

Only learning hyperparameters pass. Options that read or write files
(``-d``, ``-f``, ``-i``, ``--cache_file``, ``--readable_model``,
``--invert_hash``, ...) and options that change the problem type or the
exploration reduction are rejected, because the policy sets those itself.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence

__all__ = ["ALLOWED_OPTIONS", "validate_vw_args"]

# Option name -> whether it takes a value. Short aliases map to the long name.
ALLOWED_OPTIONS: dict[str, bool] = {
    "--learning_rate": True,
    "--power_t": True,
    "--initial_t": True,
    "--decay_learning_rate": True,
    "--l1": True,
    "--l2": True,
    "--noconstant": False,
    "--adaptive": False,
    "--normalized": False,
    "--invariant": False,
    "--sgd": False,
    "--coin": False,
    "--freegrad": False,
    "--ftrl": False,
    "--ftrl_alpha": True,
    "--ftrl_beta": True,
    "--hash": True,
    "--ignore": True,
    "--ignore_linear": True,
    "--keep": True,
    "--loss_function": True,
    "--cb_type": True,
}
_ALIASES = {"-l": "--learning_rate"}
_VALUES = {
    "--cb_type": {"ips", "dr", "dm", "mtr"},
    "--hash": {"strings", "all"},
    "--loss_function": {"squared", "classic", "huber"},
}
_NUMERIC = {
    "--learning_rate",
    "--power_t",
    "--initial_t",
    "--decay_learning_rate",
    "--l1",
    "--l2",
    "--ftrl_alpha",
    "--ftrl_beta",
}


def validate_vw_args(args: str | Sequence[str]) -> tuple[str, ...]:
    """Check extra VW arguments against the allowlist.

    Parameters
    ----------
    args : str or sequence of str
        Arguments as one shell-like string or as tokens, for example
        ``"--learning_rate 0.1 --l2 1e-6"``.

    Returns
    -------
    tuple of str
        Normalized tokens, long option names only.

    Raises
    ------
    ValueError
        Naming the first rejected option or invalid value.
    """
    tokens = shlex.split(args) if isinstance(args, str) else list(args)
    result: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not isinstance(token, str):
            raise TypeError(f"VW argument tokens must be str, got {type(token).__name__}")
        name, has_inline, inline_value = token.partition("=")
        name = _ALIASES.get(name, name)
        if name not in ALLOWED_OPTIONS:
            raise ValueError(
                f"VW option {name!r} is not allowed in configuration: only learning hyperparameters "
                f"({', '.join(sorted(ALLOWED_OPTIONS))}) may be set; file, problem-type and exploration "
                "options are set by the policy itself"
            )
        takes_value = ALLOWED_OPTIONS[name]
        if takes_value:
            if has_inline:
                value = inline_value
            elif i + 1 < len(tokens):
                i += 1
                value = tokens[i]
            else:
                raise ValueError(f"VW option {name!r} needs a value")
            _check_value(name, value)
            result.extend([name, value])
        else:
            if has_inline:
                raise ValueError(f"VW option {name!r} takes no value, got {inline_value!r}")
            result.append(name)
        i += 1
    return tuple(result)


def _check_value(name: str, value: str) -> None:
    if name in _VALUES and value not in _VALUES[name]:
        raise ValueError(f"VW option {name} must be one of {sorted(_VALUES[name])}, got {value!r}")
    if name in _NUMERIC:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"VW option {name} needs a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"VW option {name} must be finite, got {value!r}")
    if name in ("--ignore", "--ignore_linear", "--keep") and not (len(value) >= 1 and value.isalnum()):
        raise ValueError(f"VW option {name} needs namespace letters, got {value!r}")
