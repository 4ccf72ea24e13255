"""Systems under test that implement :class:`minimax.validate.target.Target`."""

from minimax.validate.targets.digits import DigitsPayload, DigitsTarget

__all__ = ["DigitsPayload", "DigitsTarget"]
