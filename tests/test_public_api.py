"""The public API is curated: a sorted ``__all__`` that names exactly what users import."""

from __future__ import annotations

import importlib

import pytest

import microdb
from microdb import errors

EXPECTED = {
    "AutoSavingDict", "Change", "ChangesExpiredError", "CorruptDatabaseError", "DatabaseClosedError", "Document", "DocumentError",
    "DocumentNotFound", "DuplicateKeyError", "FormatVersionError", "LockTimeout", "MicroDB",
    "MicroDBError", "Query", "QueryError", "ReadOnlyError", "Result", "SchemaError", "StorageError", "Table",
    "TransactionError", "UnsupportedFeature", "UpdateError", "ValidationError", "__version__", "register_type", "where",
    "FilterLimits", "untrusted_filter", "encode", "decode", "dumps", "loads", "FileCheck", "check_file",
}


def test_all_is_sorted_and_complete() -> None:
    """``microdb.__all__`` is sorted, importable, and exactly the public names."""
    assert microdb.__all__ == sorted(microdb.__all__)
    assert set(microdb.__all__) == EXPECTED
    for name in microdb.__all__:
        assert hasattr(microdb, name)


@pytest.mark.parametrize(
    "module", ["microdb.storage", "microdb.errors", "microdb.query", "microdb.operations", "microdb.serialization",
     "microdb.tagged", "microdb.query.untrusted", "microdb.aio", "microdb.changes", "microdb.feed"]
)
def test_submodule_all_is_sorted_and_importable(module: str) -> None:
    """Each public module's ``__all__`` is sorted and every name in it exists."""
    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), name


def test_error_tree() -> None:
    """Every error derives from MicroDBError and from the matching built-in exception."""
    builtin = {
        "DatabaseClosedError": RuntimeError,
        "TransactionError": RuntimeError,
        "DocumentError": TypeError,
        "DocumentNotFound": KeyError,
        "DuplicateKeyError": ValueError,
        "QueryError": ValueError,
        "SchemaError": ValueError,
        "UpdateError": ValueError,
        "ValidationError": TypeError,
        "UnsupportedFeature": NotImplementedError,
        "ChangesExpiredError": LookupError,
        "StorageError": OSError,
        "CorruptDatabaseError": OSError,
        "FormatVersionError": OSError,
        "LockTimeout": TimeoutError,
        "ReadOnlyError": PermissionError,
    }
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MicroDBError)
        if name != "MicroDBError":
            assert issubclass(cls, builtin[name]), name
            assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in the docstring"


def test_every_public_object_has_a_docstring() -> None:
    """Every public class, function and method has a one-line summary."""
    missing = []
    for name in microdb.__all__:
        obj = getattr(microdb, name)
        if name.startswith("__"):
            continue
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if isinstance(obj, type):
            for attr, value in vars(obj).items():
                if attr.startswith("_") or not callable(value):
                    continue
                if not (getattr(value, "__doc__", "") or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_py_typed_is_shipped() -> None:
    """The package ships py.typed for type checkers."""
    from importlib.resources import files

    assert files("microdb").joinpath("py.typed").is_file()
