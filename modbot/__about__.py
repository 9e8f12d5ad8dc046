from importlib.util import find_spec

__version__ = "0.1.0"


def build() -> str:
    """How this install runs the per-event path: compiled by mypyc (``MODBOT_COMPILE=1``,
    see hatch_build.py) or as pure Python. Finds the module without importing it."""
    spec = find_spec("modbot.rules.engine")
    origin = spec.origin if spec is not None else None
    return "pure Python" if origin is None or origin.endswith(".py") else "compiled with mypyc"
