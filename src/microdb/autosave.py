"""Placeholder replaced by the durable AutoSavingDict."""
class AutoSavingDict(dict):  # type: ignore[type-arg]
    pass
