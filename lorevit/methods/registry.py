"""The registry of methods: ``register_method(name, method_cls, options_cls)`` and what is built from it.

The built-in names are the torch-free :data:`lorevit.config.METHOD_NAMES` (PEFT's enum): registering a
built-in whose name is missing there is refused, and :func:`check_builtins` checks every name there got a
method. Users register their own methods with the same call; their names are then valid config values.
A method's options are a dataclass (fields with defaults and, in ``metadata["help"]``, help; validation in
``__post_init__``); a config sets them with ``method_options`` (``--method-options '{rank: 8}'``), and the
built-ins' options also take the flat config keys of the same name (``--n-global 8``).
"""
from __future__ import annotations

import dataclasses
import keyword
import re
from typing import Any

from lorevit.config import METHOD_NAMES, Config, coerce, field_default, register_method_name, unregister_method_name
from lorevit.errors import ConfigError, UserError
from lorevit.methods.base import Method, NoOptions

METHODS: dict[str, type[Method]] = {}  # name → method class, in registration order
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class MethodRegistrationError(UserError, ValueError):
    """A method that cannot be registered (its name, class or options); the message says why."""


def register_method(name: str, method_cls: type[Method], options_cls: type | None = None, *,
                    builtin: bool = False) -> type[Method]:
    """Make ``method_cls`` the method ``name`` (config key ``method``), with options ``options_cls`` (a dataclass).

    Refused with a :class:`MethodRegistrationError`: a name that is taken or not lower-case (``my-method``),
    a class that is no :class:`~lorevit.methods.base.Method`, options that are not a dataclass, a dataclass
    whose fields lack defaults (a method must build from its defaults), or a built-in not in ``METHOD_NAMES``.
    """
    options_cls = NoOptions if options_cls is None else options_cls
    if not isinstance(name, str) or not _NAME.match(name):
        raise MethodRegistrationError(f"register_method: {name!r} is not a method name; use lower-case letters, "
                                      "digits and - . _ (e.g. 'my-lora')")
    if name in METHODS:
        raise MethodRegistrationError(f"register_method: a method named {name!r} is already registered "
                                      f"({METHODS[name].__module__}.{METHODS[name].__qualname__}); choose another name")
    if not (isinstance(method_cls, type) and issubclass(method_cls, Method)):
        raise MethodRegistrationError(f"register_method({name!r}): {method_cls!r} is not a subclass of "
                                      "lorevit.methods.Method")
    if not (isinstance(options_cls, type) and dataclasses.is_dataclass(options_cls)):
        raise MethodRegistrationError(f"register_method({name!r}): options {options_cls!r} must be a dataclass "
                                      "class (@dataclasses.dataclass), one field per option")
    no_default = [f.name for f in dataclasses.fields(options_cls)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if no_default:
        raise MethodRegistrationError(f"register_method({name!r}): option(s) {no_default} of {options_cls.__name__} "
                                      "have no default; every option needs one")
    if builtin and name not in METHOD_NAMES:
        raise MethodRegistrationError(f"built-in method {name!r} is missing from lorevit.config.METHOD_NAMES")
    method_cls.name, method_cls.options_cls = name, options_cls
    METHODS[name] = method_cls
    register_method_name(name)
    return method_cls


def unregister_method(name: str) -> None:
    """Take a method registered from outside lorevit out again (tests, notebooks); built-ins stay."""
    if name in METHOD_NAMES:
        raise MethodRegistrationError(f"unregister_method: {name!r} is a built-in method")
    if name not in METHODS:
        raise MethodRegistrationError(f"unregister_method: no method named {name!r} is registered")
    del METHODS[name]
    unregister_method_name(name)


def check_builtins() -> None:
    """Every name of the torch-free list has a method (run once the built-ins are registered)."""
    missing = [n for n in METHOD_NAMES if n not in METHODS]
    if missing:
        raise MethodRegistrationError(f"lorevit.config.METHOD_NAMES lists {missing}, which no module registers")


def method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"method: {name!r} is not one of {', '.join(METHODS)}")
    return METHODS[name]


def option_fields(name: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(method_class(name).options_cls))


def build_options(name: str, values: dict[str, Any] | None = None) -> Any:
    """The options of method ``name`` from ``values`` (missing ones take their defaults), each value checked
    against its field's type; an unknown option or a value the dataclass refuses is one ConfigError."""
    fields = {f.name: f for f in option_fields(name)}
    # an option named like a Python keyword (ProGrad's ``lambda``) is the field ``lambda_``
    values = {(k + "_" if keyword.iskeyword(k) and k + "_" in fields else k): v for k, v in (values or {}).items()}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        valid = ", ".join(fields) or "none"
        raise ConfigError(f"method_options: {unknown} are not options of method {name!r} (its options: {valid})")
    checked = {k: coerce(f"method_options.{k}", v, str(fields[k].type)) for k, v in values.items()}
    try:
        return method_class(name).options_cls(**checked)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"method_options of {name!r}: {err}") from None


def options_from(name: str, flat: dict[str, Any], method_options: dict[str, Any] | None = None) -> Any:
    """The options of method ``name``: the flat keys in ``flat`` named like one of its options (``n_global``:
    the built-ins' config keys; other keys are ignored), then ``method_options`` over them."""
    values = {f.name: flat[f.name] for f in option_fields(name) if f.name in flat}
    values.update(method_options or {})
    return build_options(name, values)


def options_from_config(cfg: Config) -> Any:
    """A run's method options: the flat config keys named like an option, then ``method_options``."""
    return options_from(cfg.method, cfg.to_dict(), cfg.method_options)


def describe_options(name: str) -> list[dict[str, Any]]:
    """Each option of method ``name``: its name, type, default and help (``lorevit train --print-config``)."""
    return [{"name": f.name, "type": str(f.type), "default": field_default(f), "help": f.metadata.get("help", "")}
            for f in option_fields(name)]
